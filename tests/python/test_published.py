"""The paper's published results ship with linpert and show beside a run on the paper's data, never mixed in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, SHARED, make_pseudobulk

from linpert import benchmark, published
from linpert.cli import _print_summary
from linpert.report import write_report


def test_results_hold_every_dataset_model_and_seed_with_linperts_names():
    table = published.results()
    assert list(table.columns) == ["dataset", "split", "seed", "model", "perturbation", "set", "l2", "pearson_delta",
                                   "r2", "figure"]
    assert set(table["dataset"]) == set(published.DATASETS)
    norman = published.results("norman")
    assert set(norman["model"]) == {"no_change", "additive", "scgpt", "scfoundation", "gears", "cpa", "geneformer",
                                    "uce", "scbert"}
    assert set(norman["seed"]) == {1, 2, 3, 4, 5} and set(norman["set"]) == {"test", "val"}
    assert norman.groupby("seed")["perturbation"].nunique().eq(62).all()  # half of the 124 doubles scored per seed
    assert {"mean", "linear"} <= set(published.results("adamson")["model"])


def test_the_papers_headline_numbers():
    means = published.results("norman").groupby("model")["l2"].mean()
    assert means["additive"] / means["no_change"] == pytest.approx(0.492, abs=1e-3)  # additive/no-change L2 ≈ 0.49
    classes = published.interactions("interaction_classes").set_index("class")["pairs"]
    assert classes.drop("additive").sum() == 5035 and classes["buffering"] == 2878 and classes["synergy"] == 761
    curves = published.interactions("tpr_fdp")
    assert set(curves["model"]) >= {"no_change", "scgpt", "gears"}
    assert set(published.interactions()) == {"tpr_fdp", "interaction_classes", "top_predictions"}
    usage = published.resources()
    assert {"elapsed", "max_mem_kbytes"} <= set(usage["metric"]) and "linear" in set(usage["model"])


@pytest.mark.skipif(not (SHARED / "reference" / "paper-source-data").is_dir(), reason="needs ../shared")
def test_the_shipped_tables_are_the_conversion_of_the_source_data():
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert", REPO / "scripts" / "convert_published.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    source = SHARED / "reference" / "paper-source-data"
    assert set(convert.TABLES) == set(published.TABLES)
    for name, build in convert.TABLES.items():
        pd.testing.assert_frame_equal(build(source), published.table(name), obj=name)

    # every sheet of the source data is a table, or repeats one (the Panel A sheets of the Pearson-delta files)
    converted = {(f, s) for f, s in _sheets_read(convert, source)}
    every = {(path.name, sheet) for path in source.glob("*.xlsx") for sheet in pd.ExcelFile(path).sheet_names}
    repeats = {("suppl-pearson_delta_performance.xlsx", "Panel A"): "perturbation_prediction.xlsx",
               ("suppl-pearson_delta_performance_single_pert.xlsx", "Panel A"): "single_perturbation_prediction.xlsx"}
    assert every - converted == set(repeats)
    for (file, sheet), original in repeats.items():
        pd.testing.assert_frame_equal(pd.read_excel(source / file, sheet_name=sheet),
                                      pd.read_excel(source / original, sheet_name=sheet))


def _sheets_read(convert, source):
    """The (file, sheet) pairs the converter reads, recorded by running it."""
    seen, real = [], pd.read_excel

    def recording(path, sheet_name=0, **kwargs):
        names = pd.ExcelFile(path).sheet_names
        seen.append((path.name, names[sheet_name] if isinstance(sheet_name, int) else sheet_name))
        return real(path, sheet_name=sheet_name, **kwargs)

    convert.pd.read_excel = recording
    try:
        for build in convert.TABLES.values():
            build(source)
    finally:
        convert.pd.read_excel = real
    return seen


def test_fig2c_holds_every_linear_model_variant_and_agrees_with_fig2a():
    table = published.results("replogle_k562")
    variants = {"linear", "linear_go_pert", "linear_rpe1_pert", "linear_random_gene", "linear_random_pert",
                "linear_scfoundation_gene", "linear_scgpt_gene", "uce33"}
    assert variants <= set(table.loc[table["figure"].str.contains("2c"), "model"])
    assert set(published.MODEL_SPECS) <= set(published.results()["model"])
    assert len(published.results().query("split == 'simulation' and figure.str.contains('2c')")) == 22_144
    assert {"train", "test", "val"} == set(table["set"])
    curves = published.l2_by_n("norman")
    assert set(curves["sorted_by"]) == {"expr", "de"} and curves["n"].max() > 19_000  # over all genes


def test_the_published_summary_averages_over_the_runs_own_perturbations():
    from linpert.metrics._registry import summarise

    scored = published.results("adamson").query("set != 'train'")
    run = scored.query("model == 'linear' and figure == '2a,2c'").head(7)  # seven of the paper's perturbations
    beside = published.summary("adamson", rows=run).set_index("model")
    assert (beside["n"] == 7).all() and {"mean", "linear", "scgpt", "linear_go_pert", "uce33"} <= set(beside.index)
    expected = summarise(scored.merge(run[["seed", "perturbation"]]).drop(columns="figure")).set_index("model")
    pd.testing.assert_series_equal(beside["l2_mean"], expected["l2_mean"])


def test_unknown_dataset_and_table():
    with pytest.raises(ValueError, match="published no results for 'nope'; its datasets are: norman"):
        published.results("nope")
    with pytest.raises(ValueError, match="Unknown table 'x'"):
        published.interactions("x")


def test_fidelity_is_the_largest_l2_difference_on_matched_rows():
    additive = published.results("norman").query("model == 'additive'")
    assert published.fidelity(additive, "norman")["max_abs_l2_diff"].item() == 0.0
    shifted = additive.assign(l2=additive["l2"] + np.linspace(0, 0.25, len(additive)))
    extra = additive.head(3).assign(perturbation="NOT+PUBLISHED", l2=1e6)  # not published: left out
    table = published.fidelity(pd.concat([shifted, extra]), "norman")
    assert table["n"].item() == len(additive) and table["max_abs_l2_diff"].item() == pytest.approx(0.25)


def test_a_run_on_a_papers_dataset_shows_the_published_models_apart(tmp_path, capsys):
    result = benchmark.run(make_pseudobulk(), split="double", seeds=[1], models=["additive"], dataset="norman",
                           out=tmp_path / "run", progress=False, interactions=False)
    assert set(result.summary["model"]) == {"additive"}  # the run's own table holds only what ran
    assert (result.published["source"] == "published").all() and "scgpt" in set(result.published["model"])
    # simulated perturbations share none with the paper: its summary is over its own, and says so
    assert (result.published["perturbations"] == "the paper's (none shared with this run)").all()
    assert result.fidelity is None  # simulated perturbations: nothing to compare
    assert (tmp_path / "run" / "published" / "summary.csv").is_file()
    _print_summary(result)
    printed = capsys.readouterr().out
    assert "Published by Ahlmann-Eltze et al. 2025 (not run here; linpert.published)" in printed
    report = write_report(tmp_path / "run", tmp_path / "report.html").read_text()
    assert "Published results (not run here)" in report and "CC BY 4.0" in report


def test_a_run_elsewhere_has_no_published_numbers():
    result = benchmark.run(make_pseudobulk(), split="double", seeds=[1], models=["additive"], progress=False,
                           interactions=False)
    assert result.published is None and result.fidelity is None


def test_the_fidelity_line_is_printed(capsys):
    additive = published.results("norman").query("model == 'additive' and seed == 1")
    result = benchmark.BenchmarkResult(additive, pd.DataFrame(), published.summary("norman").head(0),
                                       published=published.summary("norman"),
                                       fidelity=published.fidelity(additive, "norman"))
    _print_summary(result)
    assert "Fidelity: the largest difference between this run's per-perturbation L2 and the published one is 0 " \
           "(additive; 62 rows of additive compared)." in capsys.readouterr().out


def test_figures_of_a_run_on_a_papers_dataset_draw_the_published_models_apart(tmp_path):
    from linpert.plot import beeswarm_l2, tpr_fdp
    from linpert.plot._style import PUBLISHED_COLOUR

    run = tmp_path / "run"
    benchmark.run(make_pseudobulk(), split="double", seeds=[1], models=["no_change", "additive"], dataset="norman",
                  out=run, progress=False)
    fig = beeswarm_l2(run)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:2] == ["No change", "Additive"] and {"scgpt (published)", "Additive (published)"} <= set(labels)
    assert any(a.get_gid() == "published-divider" for a in ax.lines)
    best = [a.get_gid() for a in ax.collections + ax.lines if str(a.get_gid()).startswith("best:")]
    assert best == ["best:additive"]  # a published model never counts as the run's best
    assert len(beeswarm_l2(run, published=False).axes[0].get_xticklabels()) == 2
    curves = {line.get_gid(): line for line in tpr_fdp(run).axes[0].lines}
    # additive predicts no interactions: no curve of its own, a note instead (its published curve is the paper's)
    assert "tpr:additive" not in curves and "tpr:no_change" in curves
    assert any("predicts no interactions" in t.get_text() for t in tpr_fdp(run).axes[0].texts)
    assert curves["published:scgpt"].get_color() == PUBLISHED_COLOUR
    assert curves["published:no_change"].get_linestyle() == "--"


def test_the_forest_plot_of_a_single_perturbation_run_adds_the_published_ratios(tmp_path):
    from linpert.plot import forest

    run = tmp_path / "run"
    benchmark.run(make_pseudobulk(), split="simulation", seeds=[1], models=["mean", "linear"], dataset="adamson",
                  out=run, progress=False)
    labels = [t.get_text() for t in forest(run).axes[0].get_yticklabels()]
    assert labels[0] == "Linear model" and "scgpt (published)" in labels and "Linear model (published)" in labels
    assert len(forest(run, published=False).axes[0].get_yticklabels()) == 1

"""linpert.plot: every figure drawn from a real (tiny) run folder, checked against the tables it draws."""

from __future__ import annotations

import shutil
import warnings
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest
from conftest import make_pseudobulk

from linpert import benchmark, plot
from linpert.interactions import locfdr
from linpert.metrics import forest_table, prediction_spread, top_expressed_genes
from linpert.plot._style import swarm_offsets, thinned

N_GENES = 131  # a point of linpert.metrics.l2_grid, so L2 over all read-out genes is on the curve
DOUBLE_FIGURES = {
    "l2_beeswarm", "pearson_delta", "observed_vs_predicted", "l2_by_n", "prediction_spread", "resources",
    "interaction_classes", "locfdr_histogram", "tpr_fdp", "precision_recall_roc", "deviation_scatter", "scorecard",
    "dataset_overview", "deviation_qq", "class_mosaic", "gene_predictions",
}
SINGLE_FIGURES = {"l2_beeswarm", "pearson_delta", "forest", "resources", "observed_vs_predicted", "l2_by_n",
                  "prediction_spread", "scorecard", "dataset_overview"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A double run with interactions (30 doubles) and a single-perturbation run with the mean baseline."""
    root = tmp_path_factory.mktemp("runs")
    doubles = make_pseudobulk(n_genes=200, n_singles=12, n_doubles=30, seed=0)
    singles = make_pseudobulk(n_genes=200, n_singles=40, n_doubles=0, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark.run(doubles, split="double", seeds=[1, 2], models=["no_change", "additive", "linear"],
                      out=root / "double", n_genes=N_GENES, progress=False, interactions=True)
        benchmark.run(singles, split="simulation", seeds=[1, 2], models=["mean", "linear"], out=root / "single",
                      n_genes=N_GENES, progress=False)
    return {"double": plot.RunFolder(root / "double"), "single": plot.RunFolder(root / "single"),
            "data": doubles}


def _by_gid(fig, prefix):
    return {a.get_gid(): a for ax in fig.axes for a in [*ax.lines, *ax.collections] if
            (a.get_gid() or "").startswith(prefix)}


def test_swarm_offsets_never_overlap_and_stay_central():
    assert swarm_offsets([0.0, 0.0, 0.0], diameter=1.0).tolist() == [0.0, 1.0, -1.0]
    y = np.random.default_rng(0).normal(size=300) * 20
    x = swarm_offsets(y, diameter=2.0)
    distance = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(distance, np.inf)
    assert distance.min() >= 2.0 - 1e-9
    assert np.abs(x).max() < 2.0 * 300 / 4  # a swarm, not a line


def test_a_thinned_cloud_draws_the_same_pixels():
    """deviation_scatter draws a million pairs as tiny grey points; one point per cell of a grid finer than the
    pixels must look the same, with extremes and non-finite values handled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=200_000), rng.normal(size=200_000)
    x[:5] = np.nan
    tx, ty = thinned(x, y)
    assert len(tx) < len(x) / 2 and np.isfinite(tx).all()
    assert tx.max() == np.nanmax(x) and ty.min() == np.nanmin(y)  # a lone extreme is the first in its cell

    def pixels(px, py):
        fig = Figure(figsize=(3, 3), dpi=150)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.scatter(px, py, s=2, color="#c8c8c8", linewidths=0)
        ax.set(xlim=(-5, 5), ylim=(-5, 5))
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)

    differ = np.abs(pixels(x, y) - pixels(tx, ty)).max(axis=-1) > 40
    assert differ.mean() < 0.002  # a 100-cell grid differs in 15 % of the pixels
    assert thinned(np.arange(3.0), np.arange(3.0))[0].tolist() == [0.0, 1.0, 2.0]


def test_beeswarm_draws_every_value_and_the_means(runs):
    results = runs["double"].results
    fig = plot.beeswarm_l2(runs["double"])
    means = results.groupby("model")["l2"].mean()
    lines = _by_gid(fig, "mean:")
    assert set(lines) == {f"mean:{m}" for m in means.index}
    for model, mean in means.items():
        segments = lines[f"mean:{model}"].get_segments()[0]
        np.testing.assert_allclose(segments[:, 1], mean)
    assert set(_by_gid(fig, "best:")) == {f"best:{means.idxmin()}"}
    drawn = np.sort(np.concatenate([c.get_offsets()[:, 1] for c in fig.axes[0].collections if c.get_gid() is None]))
    np.testing.assert_allclose(drawn, np.sort(results["l2"].to_numpy()))


def test_pearson_delta_marks_the_highest_mean_and_skips_no_change(runs):
    results = runs["double"].results
    fig = plot.pearson_delta(results)
    means = results.groupby("model")["pearson_delta"].mean().dropna()
    assert set(_by_gid(fig, "mean:")) == {f"mean:{m}" for m in means.index}  # no change has none
    assert set(_by_gid(fig, "best:")) == {f"best:{means.idxmax()}"}


def test_forest_points_are_the_log2_mean_ratios(runs):
    expected = forest_table(runs["single"].results, reference="mean")
    pd.testing.assert_frame_equal(runs["single"].forest, expected)  # the stored table is forest_table's
    fig = plot.forest(runs["single"])
    for _, row in expected.iterrows():
        point = _by_gid(fig, f"forest:{row['model']}")[f"forest:{row['model']}"]
        np.testing.assert_allclose(point.get_xdata(), [np.log2(row["mean"])])
    table = pd.DataFrame({"dataset": "d", "model": ["a", "b"], "reference": "mean", "mean": [0.8, 1.02],
                          "lower": [0.7, 0.95], "upper": [0.9, 1.1]})
    points = _by_gid(plot.forest(table), "forest:")
    assert points["forest:a"].get_alpha() == 1.0 and points["forest:b"].get_alpha() < 1.0  # b's interval holds 1
    with pytest.raises(ValueError, match="columns"):
        plot.forest(table.drop(columns="upper"))


def test_observed_values_and_null_without_the_stored_files(runs, tmp_path):
    """Older run folders lack observed.parquet and null.json: both are rebuilt from the interaction calls."""
    shutil.copytree(runs["double"].root, tmp_path / "old")
    (tmp_path / "old" / "observed.parquet").unlink()
    (tmp_path / "old" / "interactions" / "null.json").unlink()
    old = plot.RunFolder(tmp_path / "old")
    stored = runs["double"].observed
    pd.testing.assert_frame_equal(old.observed, stored.loc[old.observed.index], check_names=False)
    for key, value in runs["double"].null.items():
        assert old.null[key] == pytest.approx(value, rel=1e-9)


def test_observed_values_are_the_pseudobulk_on_the_readout_genes(runs):
    data = runs["data"]
    observed = runs["double"].observed
    ctrl = np.asarray(data["ctrl"].X).ravel()
    genes = data.var_names[top_expressed_genes(ctrl, n_genes=N_GENES)]
    assert list(observed.columns) == list(genes)
    rows = list(observed.index)
    np.testing.assert_allclose(observed.loc[rows].to_numpy(), np.asarray(data[rows].X)[:, data.var_names.get_indexer(genes)])
    np.testing.assert_allclose(observed.loc["ctrl"].to_numpy(), ctrl[data.var_names.get_indexer(genes)])


def test_l2_by_n_runs_over_all_genes_and_meets_the_scored_l2_at_the_read_out_genes(runs):
    run, data = runs["double"], runs["data"]
    fig = plot.l2_by_n(run, n_genes=N_GENES)
    means = run.results.groupby("model")["l2"].mean()
    for model, mean in means.items():
        line = _by_gid(fig, f"l2_by_n:expression:{model}")[f"l2_by_n:expression:{model}"]
        at_readout = list(line.get_xdata()).index(N_GENES)  # the read-out genes are the top expressed ones
        np.testing.assert_allclose(line.get_ydata()[at_readout], mean, rtol=1e-10)
    # past the read-out genes, over all 200 (Extended Data Figs 2b, 8b), to 191, the grid's last point: no change's
    # L2 is |obs − ctrl| over the 191 most expressed genes, or over the 191 largest changes
    ctrl = np.asarray(data["ctrl"].X).ravel()
    changes = [np.asarray(data[p].X).ravel() - ctrl for p in run.results.query("model == 'no_change'")["perturbation"]]
    top = np.argsort(-ctrl, kind="stable")[:191]
    expected = {"expression": np.mean([np.linalg.norm(c[top]) for c in changes]),
                "de": np.mean([np.linalg.norm(np.sort(np.abs(c))[::-1][:191]) for c in changes])}
    for order, value in expected.items():
        line = _by_gid(fig, f"l2_by_n:{order}:no_change")[f"l2_by_n:{order}:no_change"]
        assert line.get_xdata()[-1] == 191 > N_GENES
        np.testing.assert_allclose(line.get_ydata()[-1], value, rtol=1e-10)
    table = run.l2_by_n
    assert (table["genes"] == "all").all() and table["se"].notna().any()


def test_prediction_spread_marks_the_observed_mean_sd(runs):
    run = runs["double"]
    fig = plot.prediction_spread(run)
    seeds = sorted({s for s, _ in run.prediction_files})
    sds = []
    for seed in seeds:
        pred, obs, _ = run.paired(seed, "linear")
        sds.append(prediction_spread(pred.to_numpy(), obs.to_numpy())["sd_obs"].to_numpy())
        np.testing.assert_allclose(sds[-1], obs.to_numpy().std(axis=0, ddof=1))
    line = _by_gid(fig, "truth_mean")["truth_mean"]
    np.testing.assert_allclose(line.get_xdata()[0], np.mean(np.concatenate(sds)))


def test_observed_vs_predicted_titles_carry_the_scores(runs):
    run = runs["double"]
    fig = plot.observed_vs_predicted(run)
    perturbation = fig.get_suptitle().split(" ")[0]
    row = run.results.query("seed == 1 and model == 'additive' and perturbation == @perturbation").iloc[0]
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("Additive") and f"L2 = {row['l2']:.2f}" in t and f"{row['pearson_delta']:.2f}" in t
               for t in titles)
    with pytest.raises(ValueError, match="observed= and control="):
        plot.observed_vs_predicted({"additive": pd.Series([1.0], index=["g"])})


def test_tpr_fdp_lines_are_the_stored_curves(runs):
    table = runs["double"].interaction_table("tpr_fdp")
    lines = _by_gid(plot.tpr_fdp(runs["double"]), "tpr:")
    for model, part in table.groupby("model"):
        line = lines[f"tpr:{model}"]
        np.testing.assert_allclose(line.get_xdata(), part["fdp"])
        np.testing.assert_allclose(line.get_ydata(), part["tpr"])


def test_ranking_curves_integrate_to_the_stored_aucs(runs):
    run = runs["double"]
    curves = plot.ranking_curves(run.pairs, max_points=10**7)
    auc = run.interaction_table("auc").set_index(["model", "seed"])
    for (model, seed), part in curves.groupby(["model", "seed"]):
        area = np.sum(np.diff(part["fpr"]) * (part["recall"].to_numpy()[1:] + part["recall"].to_numpy()[:-1]) / 2)
        np.testing.assert_allclose(area, auc.loc[(model, seed), "roc_auc"], rtol=1e-9)
    fig = plot.precision_recall_roc(run)
    summary = run.interaction_table("auc_summary").set_index(["model", "metric"])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    mean, se = summary.loc[("linear", "auprc"), ["mean", "se"]]
    assert f"Linear model ({mean:.2f} ± {se:.2f})" in legend


def test_interaction_classes_and_top_predictions(runs):
    run = runs["double"]
    calls = run.interaction_table("calls")
    fig = plot.interaction_classes(run)
    heights = [b.get_height() for b in fig.axes[0].patches]
    expected = calls["class"].value_counts().reindex(["buffering", "synergy", "opposite", "other"], fill_value=0)
    assert heights == expected.tolist()
    top = run.interaction_table("top_classes")
    fig = plot.deviation_scatter(run)
    for model, part in top.groupby("model"):
        drawn = [c for gid, c in _by_gid(fig, f"top:{model}:").items()]
        offsets = np.concatenate([c.get_offsets() for c in drawn])
        assert len(offsets) == len(part)
        np.testing.assert_allclose(np.sort(offsets[:, 1]), np.sort(part["predicted_deviation"]))


def test_locfdr_histogram_uses_the_fit_of_the_calls(runs):
    run = runs["double"]
    calls = run.interaction_table("calls")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = locfdr(calls["deviation"].to_numpy(), backend="python")
    np.testing.assert_allclose(fit.fdr, calls["fdr"], atol=1e-6)  # the refit is the fit the calls used
    null = run.null
    np.testing.assert_allclose([null["delta"], null["sigma"], null["p0"]], fit.fp0.loc["mlest", ["delta", "sigma", "p0"]])
    assert (null["lower"], null["upper"]) == (calls["lower"].iloc[0], calls["upper"].iloc[0])
    fig = plot.locfdr_histogram(run)
    bars = fig.axes[0].patches
    total = np.add.reduceat([b.get_height() for b in bars], [0, len(bars) // 2])
    assert total.sum() == pytest.approx(len(calls))
    with pytest.raises(ValueError, match="null="):
        plot.locfdr_histogram(calls["deviation"].to_numpy())


def test_resources_points_are_the_timings(runs):
    timings = runs["single"].timings
    points = _by_gid(plot.resources(runs["single"]), "seconds:")
    for model, part in timings.groupby("model"):
        np.testing.assert_allclose(points[f"seconds:{model}"].get_ydata(), part["fit_seconds"] + part["predict_seconds"])


def test_write_figures_writes_what_applies(runs):
    for kind, expected in (("double", DOUBLE_FIGURES), ("single", SINGLE_FIGURES)):
        paths = plot.write_figures(runs[kind])
        folder = runs[kind].root / "figures"
        assert {p.name for p in paths} == {f"{n}.{f}" for n in expected for f in ("png", "svg")}
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)  # no temp files left
        for path in paths:
            if path.suffix == ".png":
                assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            else:
                assert ElementTree.parse(path).getroot().tag.endswith("svg")
    with pytest.raises(ValueError, match="format"):
        plot.write_figures(runs["single"], formats=("gif",))


def test_figures_and_a_report_inside_the_run_folder_are_reused_while_nothing_changes(runs, tmp_path, capsys):
    """linpert run writes its report into the run folder, after the figures: that must not make them look stale."""
    from linpert.cli import _figures_and_report

    folder = shutil.copytree(runs["double"].root, tmp_path / "run")
    shutil.rmtree(folder / "figures", ignore_errors=True)
    _figures_and_report([folder], folder / "report.html", title="t")
    drawn = {p: p.stat().st_mtime_ns for p in [folder / "report.html", *(folder / "figures").iterdir()]}
    assert len(drawn) == 2 * len(DOUBLE_FIGURES) + 1
    capsys.readouterr()
    _figures_and_report([folder], folder / "report.html", title="t")
    assert f"Reused 0 finished cells, {len(DOUBLE_FIGURES)} figures and the report" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in drawn} == drawn
    # drawn again, a figure is the same bytes in either format (SVG ids from a fixed salt): nothing to rewrite
    (folder / "results.parquet").touch()
    plot.write_figures(folder)
    assert {p: p.stat().st_mtime_ns for p in drawn if p.parent.name == "figures"} == \
        {p: t for p, t in drawn.items() if p.parent.name == "figures"}


def test_figures_started_early_are_drawn_once_and_waited_for(runs, tmp_path):
    """linpert run starts the figures of the scores before the interaction analysis; write_figures draws the rest."""
    folder = shutil.copytree(runs["double"].root, tmp_path / "run")
    shutil.rmtree(folder / "figures", ignore_errors=True)
    started = plot.start_figures(folder)
    early = DOUBLE_FIGURES - set(plot._write.INTERACTION_FIGURES)
    assert set(started.names) == early
    paths = plot.write_figures(folder, started=started)
    assert sorted(p.name for p in paths) == sorted(f"{n}.{f}" for n in DOUBLE_FIGURES for f in ("png", "svg"))
    assert sorted(p.name for p in (folder / "figures").iterdir()) == sorted(p.name for p in paths)
    assert plot.start_figures(folder) is None  # nothing to start while they are current
    # new interaction tables make only the interaction figures stale
    (folder / "interactions" / "auc.csv").write_text((folder / "interactions" / "auc.csv").read_text())
    assert plot._write.figures_current(folder, names=sorted(early))
    assert not plot._write.figures_current(folder)


def test_a_folder_that_is_no_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished linpert run folder"):
        plot.beeswarm_l2(tmp_path)


def test_the_scorecard_heat_map_shows_every_metric_and_stars_the_best(runs):
    from linpert.metrics import METRICS

    card = runs["single"].scorecard
    fig = plot.scorecard_heatmap(runs["single"])
    ax = fig.axes[0]
    from_pseudobulk = [name for name, metric in METRICS.items() if not metric.needs_cells]  # a run without cells
    assert [t.get_text() for t in ax.get_xticklabels()] == ["l2", "pearson_delta", "r2", *from_pseudobulk]
    stars = [t.get_text() for t in ax.texts if t.get_text().endswith(" *")]
    assert len(stars) >= len(from_pseudobulk) + 3  # at least one best per column
    best_l2 = card.loc[card["l2"].idxmin(), "model"]
    assert "l2" in card.set_index("model").at[best_l2, "best_in"].split(", ")


def test_log_axes_label_their_ticks_as_plain_numbers(runs):
    """l2_by_n, resources and locfdr_histogram use log axes; their ticks read 0.1, 10, 1,000 (no mathtext, whose
    parser cost every run's figures a second)."""
    drawn = {"l2_by_n": (plot.l2_by_n(runs["double"], n_genes=N_GENES), "x"),
             "resources": (plot.resources(runs["single"]), "y"),
             "locfdr_histogram": (plot.locfdr_histogram(runs["double"]), "y")}
    for name, (fig, axis) in drawn.items():
        plot.figure_bytes(fig, "png")  # tick labels are set when the figure is drawn
        ax = fig.axes[0]
        labels = [t.get_text() for t in (ax.get_xticklabels() if axis == "x" else ax.get_yticklabels())]
        assert labels and all("$" not in label for label in labels), (name, labels)
        assert all(float(label.replace(",", "")) >= 0 for label in labels if label), (name, labels)  # 0.1, 1,000


# -- the figures of the paper's Extended Data: dataset overview, QQ plot, chosen genes, transfer, class mosaic ----
def test_dataset_overview_tells_the_size_and_marks_the_control(runs, monkeypatch):
    run, data = runs["double"], runs["data"]
    fig = plot.dataset_overview(run)
    table = next(a for ax in fig.axes for a in ax.tables if a.get_gid() == "dataset-table")
    cells = {table[r, 0].get_text().get_text() for r in range(1, 9) if (r, 0) in table.get_celld()}
    assert {"200", f"{N_GENES}", "12", "30", "1"} <= cells  # genes, read-out genes, singles, doubles, control
    control = _by_gid(fig, "overview:control")["overview:control"]
    assert len(control.get_offsets()) == 1
    assert len(_by_gid(fig, "overview:double")["overview:double"].get_offsets()) == 30
    # without umap-learn, the first two principal components, and the axes say so
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "umap" else real_import(name, *a, **k))
    fallback = plot.dataset_overview(run)
    assert [ax.get_xlabel() for ax in fallback.axes if ax.get_xlabel()] == ["PC 1"]
    coords = np.vstack([c.get_offsets() for c in fallback.axes[1].collections])
    observed = run.observed.to_numpy()
    u, d, _ = np.linalg.svd(observed - observed.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(np.sort(np.abs(coords[:, 0])), np.sort(np.abs(u[:, 0] * d[0])), rtol=1e-10)


def test_deviation_qq_draws_the_fitted_null_as_its_line(runs):
    run = runs["double"]
    fig = plot.deviation_qq(run)
    line = _by_gid(fig, "null-line")["null-line"]
    x, y = line.get_xdata(), line.get_ydata()
    assert (y[1] - y[0]) / (x[1] - x[0]) == pytest.approx(run.null["sigma"], rel=1e-12)
    assert y[0] - run.null["sigma"] * x[0] == pytest.approx(run.null["delta"], abs=1e-12)


def test_gene_predictions_show_each_models_prediction_of_the_chosen_genes(runs):
    run = runs["double"]
    pairs = run.pairs[run.pairs["seed"] == 1]
    genes = plot._extended.chosen_genes(pairs)
    counts = pairs.drop_duplicates(["perturbation", "gene"]).groupby("gene")["interaction"].sum()
    assert counts[genes[0]] == counts.max() and len(genes) == 2
    fig = plot.gene_predictions(run)
    for model in ("no_change", "linear"):
        marks = _by_gid(fig, f"predicted:{genes[0]}:{model}")[f"predicted:{genes[0]}:{model}"]
        part = pairs[(pairs["gene"] == genes[0]) & (pairs["model"] == model)].sort_values("observed", kind="stable")
        np.testing.assert_array_equal(marks.get_offsets()[:, 1], part["predicted"].to_numpy())
    with pytest.raises(ValueError, match="not read-out genes"):
        plot.gene_predictions(run, genes=["NOT_A_GENE"])


def test_class_mosaic_widths_count_the_predictions_and_heights_the_observed_classes(runs):
    run = runs["double"]
    top = run.interaction_table("top_classes")
    fig = plot.class_mosaic(run)
    bars = _bars(fig, "mosaic:linear:")
    part = top[top["model"] == "linear"]
    for predicted, group in part.groupby("predicted_class"):
        mine = {gid: bar for gid, bar in bars.items() if gid.split(":")[2] == predicted}
        assert sum(bar.get_height() for bar in mine.values()) == pytest.approx(1.0)
        assert next(iter(mine.values())).get_width() == pytest.approx(len(group) / len(part))
        for gid, bar in mine.items():
            assert bar.get_height() == pytest.approx((group["observed_class"] == gid.split(":")[3]).mean())
    assert not any(gid.startswith("mosaic:additive") for gid in _bars(fig, "mosaic:"))  # no interactions predicted


def _bars(fig, prefix):
    return {p.get_gid(): p for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith(prefix)}


def test_transfer_error_relates_the_transfer_models_error_to_the_cell_lines_difference(tmp_path):
    from linpert.models import TransferModel

    target = make_pseudobulk(n_genes=120, n_singles=40, n_doubles=0, seed=4)
    reference = make_pseudobulk(n_genes=120, n_singles=40, n_doubles=0, seed=5)
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark.run(target, split="simulation", seeds=[1], n_genes=80, out=run, progress=False,
                      models=["mean", ("transfer", TransferModel(reference=reference, n_components=5))])
    assert "transfer_error" in plot.figure_names(run)
    folder = plot.RunFolder(run)
    np.testing.assert_array_equal(folder.reference_control("transfer").to_numpy(), np.asarray(reference["ctrl"].X)[0])
    assert folder.reference_control("mean") is None
    fig = plot.transfer_error(run)
    points = _by_gid(fig, "transfer:transfer")["transfer:transfer"].get_offsets()
    scores = folder.results.query("model == 'transfer'").set_index("perturbation")["pearson_delta"]
    readout = set(folder.observed.columns)
    expected = [scores[p] for p in scores.index if p.split("+")[0] in readout and np.isfinite(scores[p])]
    np.testing.assert_allclose(np.sort(points[:, 1]), np.sort(expected))


def test_labels_that_clean_to_one_file_name_are_read_back_as_their_own(tmp_path):
    """``a/b`` and ``a_b`` become distinct files (the store adds a suffix); the figures read each label's own."""
    from linpert.models import FunctionModel

    pb = make_pseudobulk(n_genes=60, n_singles=8, n_doubles=12, seed=2)

    def shifted(by):
        return FunctionModel(fit=lambda train: np.asarray(train["ctrl"].X).ravel() + by,
                             predict=lambda ctrl, conditions: np.tile(ctrl, (len(conditions), 1)))

    out = tmp_path / "run"
    benchmark.run(pb, split="double", seeds=[1], models=[("a/b", shifted(0.0)), ("a_b", shifted(1.0))], out=out,
                  progress=False, interactions=False, n_genes=40)
    run = plot.RunFolder(out)
    ctrl = np.asarray(pb["ctrl"].X).ravel()[top_expressed_genes(np.asarray(pb["ctrl"].X).ravel(), n_genes=40)]
    for label, by in (("a/b", 0.0), ("a_b", 1.0)):
        predicted = run.predictions[(1, label)].to_numpy()
        np.testing.assert_allclose(predicted, np.tile(ctrl + by, (len(predicted), 1)), rtol=1e-12)


def test_a_process_that_drew_the_dataset_overview_can_still_fork_figure_workers(runs, tmp_path, monkeypatch):
    """umap-learn's numba code runs on the workqueue layer: on OpenMP's, the next fork() would abort the child."""
    monkeypatch.setenv("LINPERT_NUMBA", "0")  # linpert's own kernels off: the overview still sets the layer
    plot.dataset_overview(runs["double"])
    copy = tmp_path / "copy"
    shutil.copytree(runs["double"].root, copy)
    shutil.rmtree(copy / "figures", ignore_errors=True)
    assert len(plot.write_figures(copy, workers=2)) == 2 * len(DOUBLE_FIGURES)

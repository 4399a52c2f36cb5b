import pandas as pd
import pytest

from linpert.cli import main


def test_run_on_a_pseudobulk_file(pseudobulk, tmp_path, capsys):
    path = tmp_path / "toy.h5ad"
    pseudobulk.write_h5ad(path)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--seeds", "1,2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "additive" in printed and "linear" in printed and str(out.resolve()) in printed
    results = pd.read_csv(out / "results.csv")
    assert set(results["model"]) == {"no_change", "additive", "linear"}  # auto: the data has doubles
    assert set(results["seed"]) == {1, 2}
    assert (results["dataset"] == "toy").all()


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.h5ad"), "--quiet"]) == 2
    assert "neither a published dataset" in capsys.readouterr().err
    existing = tmp_path / "bulk.h5ad"
    existing.write_text("mine")
    assert main(["pseudobulk", "cells.h5ad", str(existing)]) == 2
    assert "does not overwrite" in capsys.readouterr().err
    assert existing.read_text() == "mine"


@pytest.mark.slow
def test_demo_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    first = capsys.readouterr().out
    double = pd.read_csv(out / "double" / "results.csv")
    single = pd.read_csv(out / "single" / "results.csv")
    assert set(double["model"]) == {"no_change", "additive", "linear"} and set(double["seed"]) == {1, 2, 3, 4, 5}
    assert set(single["model"]) == {"mean", "linear", "transfer"} and set(single["seed"]) == {1, 2}
    assert double.groupby("seed")["perturbation"].nunique().eq(62).all()  # 124 doubles: half to train, half scored
    summary = double.groupby("model")["l2"].mean()
    assert summary["additive"] < summary["no_change"]  # the simulated doubles are mostly additive
    single_summary = single.groupby("model")["l2"].mean()
    assert single_summary["linear"] < single_summary["mean"]  # low-rank effects: the linear model learns them
    assert single_summary["transfer"] < single_summary["linear"]  # the same effects in another cell line: transfer
    assert (out / "data" / "simulated-replogle-seed0-line1.pseudobulk.h5ad").is_file()
    drawn = {p: p.stat().st_mtime_ns for p in [out / "report.html", *out.glob("*/figures/*")]}
    assert len(drawn) == 53  # 26 figures (16 of the double run, 10 of the single) as PNG and SVG, and the report
    assert main(["demo", "--out", str(out), "--quiet"]) == 0  # a second run reuses everything and says so
    second = capsys.readouterr().out
    assert second.splitlines()[-1] == first.splitlines()[-1]
    assert "Reused 21 finished cells, 26 figures and the report: unchanged since the last run" in second
    assert {p: p.stat().st_mtime_ns for p in drawn} == drawn  # nothing redrawn


def test_run_on_cells_hands_them_to_models_that_train_on_cells(tmp_path, monkeypatch):
    from linpert.adapters import EmbeddingDecoder
    from linpert.datasets import simulate

    cells = simulate("norman", n_genes=120, n_singles=8, n_doubles=6, cells_per_condition=8, n_control_cells=40)
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    seen = []

    def fit(self, train, **kwargs):
        seen.append(self.cells)
        raise RuntimeError("stop here")

    monkeypatch.setattr(EmbeddingDecoder, "fit", fit)
    with pytest.raises(RuntimeError, match="stop here"):
        main(["run", str(path), "--models", "geneformer", "--seeds", "1", "--out", str(tmp_path / "o"), "--quiet"])
    assert seen == [str(path)]


def test_version(capsys):
    from linpert import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"linpert {__version__}"


def test_preset_is_the_papers_on_its_datasets_and_linperts_elsewhere_and_a_spec_wins(monkeypatch, tmp_path):
    """--preset auto: the paper's settings on the paper's data, linpert's own on a user's; GEARS on Norman under the
    paper's is scFoundation's fork (downloaded once); a model's own preset=... is left alone."""
    import linpert.adapters
    from linpert.cli import _apply_preset
    from linpert.models import resolve_models, split_model_specs

    fork, go = tmp_path / "GEARS", tmp_path / "go"
    go.mkdir()
    monkeypatch.setattr(linpert.adapters, "gears_fork", lambda progress: fork)
    specs = split_model_specs(f"additive,gears(go_files={go}),cpa,own=cpa(preset=paper)")

    def applied(choice, dataset):
        models = resolve_models(specs)
        _apply_preset(models, specs, choice, dataset, progress=False)
        return {label: (getattr(model, "preset", None), getattr(model, "code", None)) for label, model in models}

    on_norman = applied("auto", "norman")
    assert on_norman["gears"] == ("paper", fork) and on_norman["cpa"][0] == "paper"
    on_file = applied("auto", "cells")
    assert on_file["gears"] == ("linpert", None) and on_file["cpa"][0] == "linpert"
    assert on_file["own"][0] == "paper"  # its spec named it
    assert applied("paper", "cells")["gears"] == ("paper", None)  # the fork is the paper's choice for Norman only
    assert applied("linpert", "norman")["gears"] == ("linpert", None)
    assert on_norman["additive"] == (None, None)

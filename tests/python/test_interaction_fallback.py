"""The interaction analysis is never skipped silently: locfdr's options, its documented fallback, and the note."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_pseudobulk

from linpert import benchmark
from linpert.cli import _locfdr_options, _print_summary
from linpert.interactions import LOCFDR_FALLBACKS, LocfdrError, call_interactions
from linpert.report import write_report


def heavy_tailed(seed: int = 0):
    """Doubles whose deviations from additivity have Student-t (2 df) tails: R's default locfdr fit stops on them."""
    bulk = make_pseudobulk(n_genes=300, n_singles=14, n_doubles=60, seed=seed)
    rng = np.random.default_rng(seed)
    row = {name: i for i, name in enumerate(bulk.obs_names)}
    X = bulk.X.copy()
    for name in bulk.obs_names[bulk.obs["kind"] == "double"]:
        a, b = name.split("+")
        additive = X[row[f"{a}+ctrl"]] + X[row[f"{b}+ctrl"]] - X[row["ctrl"]]
        X[row[name]] = additive + rng.standard_t(2, bulk.n_vars) * 0.05
    bulk.X = X
    return bulk


def test_the_default_fit_fails_and_the_documented_fallback_is_used_and_recorded():
    bulk = heavy_tailed()
    with pytest.raises(LocfdrError, match="singular"):
        call_interactions(bulk, n_genes=300, backend="python", fallback=False)
    calls = call_interactions(bulk, n_genes=300, backend="python")
    assert calls.settings == LOCFDR_FALLBACKS[0] == {"pct": 0.01}
    assert calls.fallback.startswith("locfdr(R's defaults) failed:") and calls.n_interactions > 0


def test_explicit_options_are_used_and_never_replaced():
    bulk = heavy_tailed()
    calls = call_interactions(bulk, n_genes=300, backend="python", locfdr_args={"pct": 0.01, "df": 5})
    assert calls.settings == {"pct": 0.01, "df": 5} and calls.fallback is None
    with pytest.raises(LocfdrError, match=r"could not be fitted: locfdr\(bre=20\) failed.*--locfdr"):
        call_interactions(bulk, n_genes=300, backend="python", locfdr_args={"bre": 20})


def test_a_run_records_the_fallback_and_says_so(tmp_path, capsys):
    result = benchmark.run(heavy_tailed(), split="double", seeds=[1], models=["additive"], n_genes=300,
                           out=tmp_path / "run", progress=False)
    assert result.interactions is not None
    assert "with the paper's settings (R's defaults) could not fit" in result.interaction_note
    null = json.loads((tmp_path / "run" / "interactions" / "null.json").read_text())
    assert null["settings"] == {"pct": 0.01} and null["fallback"].startswith("locfdr(R's defaults) failed")
    _print_summary(result)
    assert "so the interaction calls use locfdr(pct=0.01)" in capsys.readouterr().out
    report = write_report(tmp_path / "run", tmp_path / "report.html").read_text()
    assert '<p class="alert"><strong>Note:</strong> locfdr with the paper&#x27;s settings' in report
    assert "so the interaction calls use locfdr(pct=0.01)" in report


def test_an_analysis_that_cannot_run_leaves_an_unmistakable_note(tmp_path, capsys):
    with pytest.warns(RuntimeWarning, match=r"could not run"):
        result = benchmark.run(heavy_tailed(), split="double", seeds=[1], models=["additive"], n_genes=300,
                               out=tmp_path / "run", progress=False, locfdr_args={"bre": 20})
    assert result.interactions is None and result.interaction_note.startswith(
        "The genetic-interaction analysis (Fig. 1c-f) could not run")
    _print_summary(result)
    assert "NOTE: The genetic-interaction analysis (Fig. 1c-f) could not run" in capsys.readouterr().out
    report = write_report(tmp_path / "run", tmp_path / "report.html").read_text()
    assert "could not run" in report and 'class="alert"' in report
    # a later run that succeeds removes the note
    benchmark.run(heavy_tailed(), split="double", seeds=[1], models=["additive"], n_genes=300, out=tmp_path / "run",
                  progress=False, locfdr_args={"pct": 0.01})
    assert not (tmp_path / "run" / "interactions" / "note.txt").exists()


def test_locfdr_options_on_the_command_line():
    assert _locfdr_options("bre=60, pct=0.01,nulltype=1") == {"bre": 60, "pct": 0.01, "nulltype": 1}
    assert _locfdr_options(None) is None
    with pytest.raises(ValueError, match="--locfdr takes name=value pairs of bre, df, pct, pct0 and nulltype"):
        _locfdr_options("breaks=60")

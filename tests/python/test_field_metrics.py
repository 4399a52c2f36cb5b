"""The field's metrics: checked against Arc's cell-eval on the same numbers, and carried through the runner."""

from __future__ import annotations

import json
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, make_pseudobulk

from linpert import benchmark
from linpert.cli import main
from linpert.metrics import (
    METRICS,
    centroid_accuracy,
    discrimination_score,
    mae,
    mse,
    pearson_delta,
    pearson_delta_perturbed,
    register_metric,
    scorecard,
)


def screen(seed=0, n=60, g=300, signal=0.3):
    """Observed singles with a strong target effect, and predictions that keep ``signal`` of each effect."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(g)]
    ctrl = rng.gamma(2, 0.5, g)
    obs = ctrl + rng.normal(0, 0.5, (n, g)) * (rng.random((n, g)) < 0.3)
    obs[np.arange(n), np.arange(n)] += 3
    pred = ctrl + signal * (obs - ctrl) + rng.normal(0, 1.0, (n, g))
    index = [f"{gene}+ctrl" for gene in genes[:n]]
    return pd.DataFrame(pred, index, genes), pd.DataFrame(obs, index, genes), ctrl


@pytest.mark.slow
def test_discrimination_scores_equal_cell_evals_on_the_same_numbers(tmp_path):
    from linpert.adapters._environment import ensure_venv

    pred, obs, ctrl = screen()
    names = [c.removesuffix("+ctrl") for c in obs.index]  # cell-eval names a perturbation by its target gene
    np.savez(tmp_path / "in.npz", predicted=pred.to_numpy(), observed=obs.to_numpy(), control=ctrl,
             perturbations=np.array(names, dtype=str), genes=np.asarray(obs.columns, dtype=str))
    python = ensure_venv(["cell-eval==0.8.2"], name="cell-eval") / "bin" / "python"
    subprocess.run([str(python), str(REPO / "benchmarks" / "peers" / "cell_eval_peer.py"), str(tmp_path / "in.npz"),
                    str(tmp_path / "out.json")], check=True, capture_output=True)
    theirs = json.loads((tmp_path / "out.json").read_text())
    for metric in ("l1", "l2", "cosine"):
        ours = discrimination_score(pred, obs, control=ctrl, metric=metric).to_numpy()
        np.testing.assert_allclose(ours, theirs[f"discrimination_{metric}"]["values"], rtol=0, atol=1e-9)
        assert 0.5 < ours.mean() < 1 and ours.min() < 1  # the ranks vary: the check is not a trivial all-ones


def test_discrimination_rewards_the_specific_prediction_not_the_average():
    pred, obs, ctrl = screen()
    perfect = discrimination_score(obs, obs, control=ctrl)
    average = pd.DataFrame(np.tile(obs.mean().to_numpy(), (len(obs), 1)), obs.index, obs.columns)
    assert (perfect == 1).all()
    # L2 prefers the average (it sits near every profile) to a noisy but specific prediction; discrimination does not
    assert np.linalg.norm(average - obs, axis=1).mean() < np.linalg.norm(pred - obs, axis=1).mean()
    assert discrimination_score(average, obs, control=ctrl).mean() < discrimination_score(pred, obs, control=ctrl).mean()
    # rows the model could not predict are NaN, and do not change the others' ranks
    holes = pred.copy()
    holes.iloc[0] = np.nan
    scores = discrimination_score(holes, obs, control=ctrl)
    assert np.isnan(scores.iloc[0]) and scores.iloc[1:].equals(discrimination_score(pred, obs, control=ctrl)[1:])


def test_the_target_gene_is_left_out():
    obs = pd.DataFrame([[5.0, 1, 0], [0, 5.0, 0], [0, 0, 5.0]], index=["A+ctrl", "B+ctrl", "C+ctrl"],
                       columns=["A", "B", "C"])
    pred = obs.copy()
    pred.loc["A+ctrl"] = [0.0, 1, 0]  # right everywhere but on its own target, which the guide sets
    assert discrimination_score(pred, obs, control=np.zeros(3))["A+ctrl"] == 1
    assert discrimination_score(pred, obs, control=np.zeros(3), exclude_target=False)["A+ctrl"] == pytest.approx(2 / 3)


def test_systema_metrics_measure_against_the_perturbed_reference():
    pred, obs, ctrl = screen(signal=1.0)
    reference = obs.mean()
    assert (centroid_accuracy(obs, obs, reference=reference) == 1).all()
    shifted = pearson_delta_perturbed(pred, obs, reference=reference)
    by_hand = [pearson_delta(p, o, reference.to_numpy()) for p, o in zip(pred.to_numpy(), obs.to_numpy())]
    np.testing.assert_allclose(shifted, by_hand)
    average = pd.DataFrame(np.tile(reference.to_numpy(), (len(obs), 1)), obs.index, obs.columns)
    assert pearson_delta_perturbed(average, obs, reference=reference).isna().all()  # no signal beyond the shared
    np.testing.assert_allclose(mae(pred, obs), np.abs(pred - obs).mean(axis=1))
    np.testing.assert_allclose(mse(pred, obs), np.square(pred - obs).mean(axis=1))


def test_bad_input_to_the_field_metrics():
    pred, obs, ctrl = screen(n=5)
    with pytest.raises(ValueError, match=r"The predictions' perturbations differ.*misses 1 \(e.g. G4\+ctrl\)"):
        discrimination_score(pred.iloc[:4], obs, control=ctrl)
    with pytest.raises(ValueError, match="has 1 extra"):
        mae(pd.concat([pred, pred.iloc[:1].rename(index=lambda _: "X+ctrl")]), obs)
    with pytest.raises(ValueError, match="metric must be one of l1, l2, cosine"):
        discrimination_score(pred, obs, control=ctrl, metric="l3")
    with pytest.warns(RuntimeWarning, match="needs at least 3 perturbations to rank, got 2: NaN"):
        assert discrimination_score(pred.iloc[:2], obs.iloc[:2], control=ctrl).isna().all()
    with pytest.raises(TypeError, match="must be a conditions × genes DataFrame or AnnData"):
        discrimination_score(pred.to_numpy(), obs, control=ctrl)


def test_the_runner_adds_every_registered_metric_and_a_scorecard(tmp_path):
    result = benchmark.run(make_pseudobulk(), split="simulation", seeds=[1], models=["mean", "linear"],
                           out=tmp_path / "run", progress=False)
    from_pseudobulk = {name for name, metric in METRICS.items() if not metric.needs_cells}
    assert from_pseudobulk <= set(result.results.columns) and "de_overlap" not in result.results
    card = pd.read_csv(tmp_path / "run" / "scorecard.csv")
    assert list(card["model"]) == ["mean", "linear"] and "best_in" in card
    mean = result.results[result.results["model"] == "mean"]
    assert mean["discrimination_l1"].between(0, 1).all()
    # only the paper's on request, and a resumed run adds the others without refitting
    plain = benchmark.run(make_pseudobulk(), split="simulation", seeds=[1], models=["mean", "linear"], metrics=[],
                          progress=False)
    assert not set(METRICS) & set(plain.results.columns)
    with pytest.raises(ValueError, match=r"Unknown metric\(s\) \['nope'\]; known: l2, pearson_delta, r2, discr"):
        benchmark.run(make_pseudobulk(), split="simulation", seeds=[1], models=["mean"], metrics=["nope"])
    with pytest.raises(ValueError, match="de_overlap needs cells .* only a pseudobulk was given: pass the cells"):
        benchmark.run(make_pseudobulk(), split="simulation", seeds=[1], models=["mean"], metrics=["de_overlap"])


def test_a_registered_metric_reaches_the_results_the_scorecard_and_the_cli(tmp_path, capsys):
    register_metric("max_abs_error", lambda s: np.nanmax(np.abs(s.predicted - s.observed).to_numpy(), axis=1),
                    higher_is_better=False, description="largest error")
    try:
        result = benchmark.run(make_pseudobulk(), split="simulation", seeds=[1], models=["mean", "linear"],
                               progress=False)
        assert result.results["max_abs_error"].gt(0).all()
        assert "max_abs_error" in scorecard(result.results).columns
        path = tmp_path / "pb.h5ad"
        make_pseudobulk().write_h5ad(path)
        assert main(["run", str(path), "--split", "simulation", "--seeds", "1", "--metrics",
                     "discrimination_l1,max_abs_error", "--out", str(tmp_path / "cli"), "--quiet"]) == 0
        table = pd.read_csv(tmp_path / "cli" / "results.csv")
        assert {"discrimination_l1", "max_abs_error"} <= set(table.columns) and "mae" not in table.columns
        assert "Scorecard (mean per model" in capsys.readouterr().out
    finally:
        del METRICS["max_abs_error"]
    with pytest.raises(ValueError, match="needs a new identifier"):
        register_metric("l2", lambda s: s, higher_is_better=False)


def test_a_prediction_without_an_effect_has_no_cosine_rank_and_no_centroid():
    pred, obs, ctrl = screen()
    no_change = pd.DataFrame(np.tile(ctrl, (len(obs), 1)), obs.index, obs.columns)
    assert discrimination_score(no_change, obs, control=ctrl, metric="cosine").isna().all()  # 0/0, not a rank of 1
    assert discrimination_score(no_change, obs, control=ctrl, metric="l1").notna().all()
    assert centroid_accuracy(no_change, obs, reference=ctrl).isna().all()


def test_a_run_on_cells_reports_calibrated_scores(tmp_path):
    import linpert

    cells = linpert.datasets.simulate("replogle", n_genes=300, n_singles=40, cells_per_condition=16,
                                      n_control_cells=200, seed=2)
    bulk = linpert.pseudobulk(cells)
    result = benchmark.run(bulk, split="simulation", seeds=[1], models=["mean", "linear"], cells=cells,
                           out=tmp_path / "run", progress=False)
    table = result.calibrated
    assert {"scaled", "lower", "upper", "above_0", "reason"} <= set(table.columns)
    mean = table[table["model"] == "mean"]
    assert (mean["scaled"].dropna() == 0).all() and mean["scaled"].notna().sum() >= 4  # the reference is 0
    # where half a condition's 8 cells cannot beat the reference, the scale is NaN with the reason, never inverted
    undefined = table[table["scaled"].isna()]
    assert (undefined["reason"].str.contains("does not beat the reference")).all()
    assert (tmp_path / "run" / "calibrated.csv").is_file()
    # the DE-gene overlap is computed from the cells, and calibrated like the others
    assert result.results["de_overlap"].dropna().between(0, 1).all() and result.results["de_overlap"].notna().any()
    assert "de_overlap" in set(table["metric"])
    assert benchmark.run(bulk, split="simulation", seeds=[1], models=["mean"], progress=False).calibrated is None


def test_the_cell_level_work_of_a_cell_file_is_kept_in_the_run_folder_and_reused_while_the_file_is_unchanged(
        tmp_path, monkeypatch):
    import os

    import linpert

    cells = linpert.datasets.simulate("replogle", n_genes=300, n_singles=40, cells_per_condition=16,
                                      n_control_cells=200, seed=2)
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    bulk = linpert.pseudobulk(path)
    run = dict(split="simulation", seeds=[1], models=["mean", "linear"], cells=str(path), out=tmp_path / "run",
               progress=False)
    first = benchmark.run(bulk, **run)
    calls = []
    spy = lambda real: lambda *args, **kwargs: calls.append(real.__name__) or real(*args, **kwargs)  # noqa: E731
    for name in ("replicate_ceiling", "differential_expression"):
        monkeypatch.setattr(linpert.metrics, name, spy(getattr(linpert.metrics, name)))
    again = benchmark.run(bulk, **run)
    assert calls == []  # neither the DE tests nor the ceiling ran again
    pd.testing.assert_frame_equal(again.results, first.results)
    pd.testing.assert_frame_equal(again.calibrated, first.calibrated)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # the file as if rewritten
    touched = benchmark.run(bulk, **run)
    assert sorted(calls) == ["differential_expression", "replicate_ceiling"]
    pd.testing.assert_frame_equal(touched.calibrated, first.calibrated)
    (tmp_path / "run" / "from_cells" / "ceiling.parquet").write_bytes(b"damaged")  # the key matches, the table not
    calls.clear()
    pd.testing.assert_frame_equal(benchmark.run(bulk, **run).calibrated, first.calibrated)
    assert sorted(calls) == ["differential_expression", "replicate_ceiling"]

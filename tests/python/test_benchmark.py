import json

import numpy as np
import pandas as pd
import pytest

from linpert import benchmark
from linpert._io import read_matrix
from linpert.metrics import top_expressed_genes
from linpert.models import Additive, NoChange
from linpert.splits import double_split


def test_double_benchmark_numbers_match_a_direct_computation(pseudobulk):
    result = benchmark.run(pseudobulk, split="double", seeds=[1, 2], models=["no_change", "additive"], n_genes=100,
                           progress=False)
    res = result.results
    assert len(res) == 2 * 2 * 10  # seeds × models × (test ∪ val: the 10 of 20 doubles not in train)
    assert set(res["set"]) == {"test", "val"}

    ctrl = pseudobulk["ctrl"].X.ravel()
    top = top_expressed_genes(ctrl, n_genes=100)
    row = res[(res["model"] == "additive") & (res["seed"] == 2)].iloc[0]
    a, b = row["perturbation"].split("+")
    additive = pseudobulk[f"{a}+ctrl"].X.ravel() + pseudobulk[f"{b}+ctrl"].X.ravel() - ctrl
    observed = pseudobulk[row["perturbation"]].X.ravel()
    assert row["l2"] == pytest.approx(np.sqrt(np.sum((additive[top] - observed[top]) ** 2)))
    assert row["pearson_delta"] == pytest.approx(np.corrcoef(additive[top] - ctrl[top], observed[top] - ctrl[top])[0, 1])

    split = double_split(pseudobulk.obs_names, seed=2)
    assert set(res.loc[res["seed"] == 2, "perturbation"]) == set(split.test) | set(split.val)
    assert res.loc[res["model"] == "no_change", "pearson_delta"].isna().all()  # undefined for a constant change

    summary = result.summary.set_index("model")
    assert summary.loc["additive", "l2_mean"] < summary.loc["no_change", "l2_mean"]
    assert summary.loc["additive", "n"] == 20
    assert set(result.timings.columns) >= {"fit_seconds", "predict_seconds", "peak_mib"}




def test_interrupted_run_resumes_without_redoing_finished_cells(pseudobulk, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = []
    real_fit = Additive.fit

    def flaky_fit(self, train):
        calls.append(len(calls))
        if len(calls) == 3:  # the third cell of the grid: interrupted as by Ctrl-C
            raise KeyboardInterrupt
        return real_fit(self, train)

    monkeypatch.setattr(Additive, "fit", flaky_fit)
    with pytest.raises(KeyboardInterrupt):
        benchmark.run(pseudobulk, split="double", seeds=[1, 2, 3], models=["additive"], out=out, progress=False)
    finished = sorted(p.name for p in (out / "cells").glob("*.parquet"))
    assert finished == ["seed1__additive.parquet", "seed2__additive.parquet"]
    assert not list(out.rglob("*.tmp"))  # no half-written file left behind

    calls.clear()
    result = benchmark.run(pseudobulk, split="double", seeds=[1, 2, 3], models=["additive"], out=out, progress=False)
    assert len(calls) == 1  # only seed 3 was fitted again
    stored = pd.read_parquet(out / "results.parquet")
    assert len(stored) == len(result.results) == 3 * 10
    assert stored.duplicated(["seed", "model", "perturbation"]).sum() == 0
    assert json.loads((out / "splits" / "double_seed1.json").read_text())
    assert (out / "predictions" / "seed1__additive.parquet").exists()


def test_a_folder_of_another_run_is_refused_not_overwritten(pseudobulk, tmp_path):
    out = tmp_path / "run"
    benchmark.run(pseudobulk, split="double", seeds=[1], models=["no_change"], out=out, progress=False)
    before = (out / "results.csv").read_bytes()
    other = pseudobulk.copy()
    other.X = other.X + 1.0
    with pytest.raises(FileExistsError, match="different run.*data"):
        benchmark.run(other, split="double", seeds=[1], models=["no_change"], out=out, progress=False)
    assert (out / "results.csv").read_bytes() == before
    # adding a model to the same run is fine and keeps the finished cells
    result = benchmark.run(pseudobulk, split="double", seeds=[1], models=["no_change", "additive"], out=out,
                           progress=False)
    assert set(result.results["model"]) == {"no_change", "additive"}


class HalfBlind(NoChange):
    """Cannot predict perturbations of genes whose name ends in an odd digit."""

    def predict(self, conditions):
        pred = super().predict(conditions)
        for i, name in enumerate(pred.obs_names):
            if name != "ctrl" and int(name.split("+")[0][-1]) % 2:
                pred.X[i] = np.nan
                pred.obs.iloc[i, pred.obs.columns.get_loc("reason")] = "odd gene"
        return pred


def test_single_benchmark_scores_only_what_every_model_predicts(pseudobulk):
    singles = pseudobulk[pseudobulk.obs["kind"] != "double"].copy()
    result = benchmark.run(singles, split="simulation", seeds=[1], models=["mean", ("half", HalfBlind())],
                           n_genes=50, progress=False)
    res = result.results
    assert set(res["model"]) == {"mean", "half"}
    assert res["l2"].notna().all()
    assert not any(int(p.split("+")[0][-1]) % 2 for p in res["perturbation"])
    assert result.restriction["n_dropped"] > 0
    assert result.restriction["reasons"] == {"half: odd gene": result.restriction["n_dropped"]}


def test_bad_inputs(pseudobulk):
    with pytest.raises(TypeError, match="pseudobulk AnnData"):
        benchmark.run(pseudobulk.X, progress=False)
    with pytest.raises(ValueError, match="no 'ctrl' row"):
        benchmark.run(pseudobulk[1:].copy(), progress=False)
    with pytest.raises(ValueError, match="unique.*no_change"):
        benchmark.run(pseudobulk, models=["no_change", "no_change"], progress=False)
    with pytest.raises(TypeError, match="Cannot use 42 as a model"):
        benchmark.run(pseudobulk, models=[42], progress=False)


def with_planted_interactions(pb):
    """The toy pseudobulk with strong deviations from additivity on 12 genes of 5 doubles."""
    pb = pb.copy()
    doubles = list(pb.obs_names[pb.obs["kind"] == "double"])[:5]
    for i, name in enumerate(doubles):
        pb.X[pb.obs_names.get_loc(name), 20 * i : 20 * i + 12] += 1.0 if i % 2 else -1.0
    return pb


def test_double_benchmark_scores_interactions_and_writes_them(pseudobulk, tmp_path, monkeypatch):
    from linpert.interactions import call_interactions, tpr_fdp_curve

    pb = with_planted_interactions(pseudobulk)
    out = tmp_path / "run"
    seen = []  # on_scored comes once the scores are written, before the interaction analysis (the CLI draws then)
    result = benchmark.run(pb, split="double", seeds=[1, 2], models=["no_change", "additive"], out=out, n_genes=100,
                           progress=False, interactions=True, on_scored=lambda folder: seen.append(
                               (folder, (folder / "results.parquet").is_file(), (folder / "interactions").exists())))
    assert seen == [(out, True, False)]
    calls = result.interaction_calls
    assert len(calls.table) == 20 * 100  # every double (not only the scored ones) × read-out genes
    assert calls.n_interactions >= 5  # the planted deviations on read-out genes
    expected = call_interactions(pb, n_genes=100)
    pd.testing.assert_frame_equal(calls.table, expected.table)

    auc = result.interactions.auc
    # additive predicts no interactions (its deviations are rounding): no ranked rows, and the folder says so
    assert len(auc) == 2 and set(auc["model"]) == {"no_change"} and result.interactions.no_interactions == ("additive",)
    assert json.loads((out / "interactions" / "no_interactions.json").read_text()) == ["additive"]
    # no_change, seed 1, by hand from the calls: its predicted deviation is ctrl − additive
    split = double_split(pb.obs_names, seed=1)
    part = calls.table[calls.table["perturbation"].isin(split.scored)]
    curve = tpr_fdp_curve(part["interaction"], part["ctrl"], part["additive"])
    got = result.interactions.curves.query("model == 'no_change' and seed == 1")["tpr"].to_numpy()
    np.testing.assert_allclose(got, curve["tpr"].to_numpy(), rtol=1e-5, equal_nan=True)

    folder = out / "interactions"
    for name in ("calls.parquet", "tpr_fdp.csv", "auc.csv", "auc_summary.csv", "top_classes.csv", "recurrence.csv"):
        assert (folder / name).exists(), name
    stored = pd.read_csv(folder / "auc.csv")
    np.testing.assert_allclose(stored["auprc"], auc["auprc"], equal_nan=True)
    null = json.loads((folder / "null.json").read_text())
    assert (null["lower"], null["upper"]) == (calls.lower, calls.upper)
    assert null["delta"] == calls.locfdr.fp0.loc["mlest", "delta"] and null["estimate"] == "mlest"

    # a resumed run never refits and recomputes the same summaries from the stored predictions
    monkeypatch.setattr(NoChange, "fit", lambda self, train: pytest.fail("refitted"))
    monkeypatch.setattr(Additive, "fit", lambda self, train: pytest.fail("refitted"))
    again = benchmark.run(pb, split="double", seeds=[1, 2], models=["no_change", "additive"], out=out, n_genes=100,
                          progress=False, interactions=True)
    pd.testing.assert_frame_equal(again.interactions.tpr_fdp, result.interactions.tpr_fdp)
    pd.testing.assert_frame_equal(again.interactions.auc, result.interactions.auc)


def test_interactions_option_defaults_and_bad_use(pseudobulk):
    few = pseudobulk[[n for n in pseudobulk.obs_names if pseudobulk.obs.loc[n, "kind"] != "double"]
                     + list(pseudobulk.obs_names[pseudobulk.obs["kind"] == "double"][:10])].copy()
    assert benchmark.run(few, seeds=[1], models=["no_change"], n_genes=50, progress=False).interactions is None
    off = benchmark.run(pseudobulk, seeds=[1], models=["no_change"], n_genes=50, progress=False, interactions=False)
    assert off.interaction_calls is None and off.interactions is None
    singles = pseudobulk[pseudobulk.obs["kind"] != "double"].copy()
    with pytest.raises(ValueError, match="interactions=True needs the double split"):
        benchmark.run(singles, split="simulation", seeds=[1], models=["mean"], n_genes=50, progress=False,
                      interactions=True)


def test_single_run_writes_forest_and_observed(pseudobulk, tmp_path):
    singles = pseudobulk[pseudobulk.obs["kind"] != "double"].copy()
    out = tmp_path / "single"
    result = benchmark.run(singles, split="simulation", seeds=[1, 2], models=["mean", "linear(n_components=3)"],
                           n_genes=50, out=out, progress=False)
    from linpert.metrics import forest_table

    expected = forest_table(result.results, reference="mean")
    pd.testing.assert_frame_equal(result.forest, expected)
    pd.testing.assert_frame_equal(pd.read_csv(out / "forest.csv"), expected, check_dtype=False)
    observed = read_matrix(out / "observed.parquet")
    tidy = pd.read_parquet(out / "observed.parquet")  # plain to any reader: one row per condition and gene
    assert list(tidy.columns) == ["perturbation", "gene", "value"] and len(tidy) == observed.size
    assert observed.shape == (singles.n_obs, 50)
    np.testing.assert_array_equal(observed.loc["ctrl"].to_numpy(), singles["ctrl"].X.ravel()[top_expressed_genes(
        singles["ctrl"].X.ravel(), n_genes=50)])
    no_mean = benchmark.run(singles, split="simulation", seeds=[1], models=["linear(n_components=3)"], n_genes=50,
                            progress=False)
    assert no_mean.forest is None


def test_models_named_by_spec(pseudobulk):
    result = benchmark.run(pseudobulk, split="double", seeds=[1],
                           models=["additive", "lm5=linear(n_components=5, ridge=1)"], n_genes=50, progress=False)
    assert set(result.results["model"]) == {"additive", "lm5"}
    with pytest.raises(ValueError, match="Unknown model 'lineer'"):
        benchmark.run(pseudobulk, models=["lineer"], progress=False)
    with pytest.raises(ValueError, match="does not end with '\\)'"):
        benchmark.run(pseudobulk, models=["linear(ridge=1"], progress=False)


# -- the judge scores by name, never by position ------------------------------------------------------------
class Shuffled(Additive):
    """The additive model's prediction with its rows and genes in reverse order (names kept right)."""

    def predict(self, conditions):
        pred = super().predict(conditions)
        return pred[::-1, ::-1].copy()


def test_predictions_are_scored_by_name_whatever_their_order(pseudobulk):
    plain = benchmark.run(pseudobulk, split="double", seeds=[1], models=["additive"], progress=False,
                          interactions=False).results
    shuffled = benchmark.run(pseudobulk, split="double", seeds=[1], models=[("additive", Shuffled())],
                             progress=False, interactions=False).results
    pd.testing.assert_frame_equal(plain, shuffled)


def test_rows_without_a_prediction_get_a_reason(pseudobulk):
    class Silent(Additive):
        def predict(self, conditions):
            pred = super().predict(conditions)
            pred.X[0] = np.nan
            del pred.obs["reason"]
            return pred

    res = benchmark.run(pseudobulk, split="double", seeds=[1], models=[("silent", Silent())], progress=False,
                        interactions=False).results
    assert res["reason"].iloc[0] == "silent gave no prediction (no reason given)" and np.isnan(res["l2"].iloc[0])
    assert (res["reason"].iloc[1:] == "").all()


class Nothing(Additive):
    """Predicts nothing: every row NaN, with a reason."""

    def predict(self, conditions):
        pred = super().predict(conditions)
        pred.X[:] = np.nan
        pred.obs["reason"] = "no luck"
        return pred


def test_a_model_that_predicts_nothing_never_empties_the_others_silently(pseudobulk):
    models = ["mean", ("empty", Nothing())]
    with pytest.raises(ValueError, match=r"leaves nothing: empty predicted none .*common_only=False"):
        benchmark.run(pseudobulk, split="simulation", seeds=[1], models=models, progress=False)
    res = benchmark.run(pseudobulk, split="simulation", seeds=[1], models=models, common_only=False,
                        progress=False).results
    assert res.loc[res["model"] == "mean", "l2"].notna().all() and res.loc[res["model"] == "empty", "l2"].isna().all()


def test_the_common_restriction_names_the_model_behind_it(pseudobulk):
    with pytest.warns(RuntimeWarning, match=r"left out because of additive \(\d+ rows\)"):
        result = benchmark.run(pseudobulk, split="simulation", seeds=[1], models=["mean", "additive"],
                               progress=False)
    assert result.restriction["n_dropped"] > 0 and len(result.results) > 0


def test_memory_tracing_waits_for_a_kernel_running_in_another_thread(pseudobulk):
    """Each fit's memory is traced with tracemalloc, whose start and stop can crash CPython before 3.12 while another
    thread allocates without the GIL (python/cpython#128679), as a compiled kernel's workers do: measured, a run
    with the DE tests and the ceiling in a thread beside the fits crashed in 3 of 4 runs, and in none of 8 once the
    tracing waited for the kernels."""
    import threading

    from linpert._compiled import between_kernels

    finished = threading.Event()
    with between_kernels():  # as if a kernel were running in another thread
        runner = threading.Thread(target=lambda: (benchmark.run(pseudobulk, split="double", seeds=[1],
                                                                models=["no_change"], n_genes=50, progress=False,
                                                                interactions=False), finished.set()))
        runner.start()
        assert not finished.wait(1.0)  # the first fit does not start tracing meanwhile
    runner.join(120)
    assert finished.is_set()

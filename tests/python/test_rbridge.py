"""The Python side of the R package's bridge (inst/python/linpert_rbridge.py): transport, and calls to linpert.

R sends numbers as little-endian buffers and the rest as lists and strings; these tests play R's part with the same
payloads (what R/bridge.R builds), so every converter is checked to give back what went in and every call to give
what linpert's own function gives.
"""

import importlib.util
import json
import sys
import warnings

import anndata
import numpy as np
import pandas as pd
import pytest
from conftest import REPO, make_pseudobulk
from scipy import sparse

import linpert
from linpert import _r, benchmark
from linpert.interactions import call_interactions


@pytest.fixture(scope="module")
def bridge():
    """The bridge module; loading it tells linpert that R is not usable (no second R inside R), undone afterwards."""
    r_available = _r.r_available
    folder = str(REPO / "inst" / "python")
    sys.path.insert(0, folder)  # as reticulate's import_from_path does: the bridge imports linpert_rmemory beside it
    try:
        spec = importlib.util.spec_from_file_location("linpert_rbridge", f"{folder}/linpert_rbridge.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    yield module
    _r.r_available = r_available


def r_takes(bridge, sent):
    """The means of a to_r() pseudobulk as R takes them (outside R: a raw buffer), conditions x genes row by row."""
    return bridge.numbers(bridge.take(sent["x"]["outbox"])["x"])


def as_r_sends(frame_payload, row_names=None):
    """What R's .frame_to_python() sends for the table Python's frame_to_r() gave it."""
    sent = {key: frame_payload[key] for key in ("columns", "types", "names")}
    return {**sent, "row_names": row_names}


def test_a_pseudobulk_crosses_to_r_and_back_unchanged(bridge):
    pb = make_pseudobulk()
    pb.uns["linpert"] = {"source": "test", "n_cells": 1250, "gene_key": None}
    sent = bridge.to_r(pb)
    # R takes x as genes x conditions and writes its matrix back column by column: the same bytes
    values = bytearray(r_takes(bridge, sent).tobytes())
    back = bridge.pseudobulk_from_r(values, sent["obs_names"], sent["var_names"], n_cells=sent["n_cells"],
                                    provenance=json.dumps(sent["provenance"]))
    np.testing.assert_array_equal(back.X, pb.X)
    pd.testing.assert_frame_equal(back.obs, pb.obs.astype({"kind": object}), check_index_type=False)
    assert list(back.var_names) == list(pb.var_names)
    assert back.uns["linpert"] == pb.uns["linpert"]


def test_a_pseudobulk_from_r_is_linperts_own(bridge):
    """The bridge builds nothing itself: the result is linpert.as_pseudobulk's."""
    pb = make_pseudobulk()
    sent = bridge.to_r(pb)
    values = bytearray(r_takes(bridge, sent).tobytes())
    back = bridge.pseudobulk_from_r(values, sent["obs_names"], sent["var_names"], gene_id=sent["var_names"])
    own = linpert.as_pseudobulk(pb.X, pb.obs_names, pb.var_names, gene_ids=pb.var_names)
    pd.testing.assert_frame_equal(back.obs, own.obs)
    pd.testing.assert_frame_equal(back.var, own.var)
    assert (back.obs["n_cells"] == 0).all()


def test_a_pseudobulk_from_r_with_non_canonical_names_is_refused_with_the_fix(bridge):
    x = bytearray(np.arange(4.0).tobytes())
    with pytest.raises(ValueError, match=r"'ctrl\+A' instead of 'A\+ctrl'.*pseudobulk\(\)"):
        bridge.pseudobulk_from_r(x, ["ctrl", "ctrl+A"], ["A", "B"])


def test_r_cells_arrive_as_the_same_matrix_dense_and_sparse(bridge):
    rng = np.random.default_rng(0)
    dense = rng.poisson(0.5, size=(5, 4)).astype(float)
    # dense: R's genes x cells matrix, column by column
    got = bridge.cells_by_genes(bytearray(dense.tobytes()), 5, 4)
    np.testing.assert_array_equal(got, dense)
    # sparse: a dgCMatrix of genes x cells is, slot for slot, the CSR of cells x genes
    csr = sparse.csr_matrix(dense)
    got = bridge.cells_by_genes(bytearray(csr.data.tobytes()), 5, 4, indices=bytearray(csr.indices.astype("<i4")),
                                indptr=bytearray(csr.indptr.astype("<i4")))
    np.testing.assert_array_equal(got.toarray(), dense)


def test_an_anndata_crosses_to_r_and_back_unchanged(bridge):
    rng = np.random.default_rng(1)
    X = sparse.random(6, 5, density=0.4, format="csr", random_state=2)
    cells = anndata.AnnData(
        X=X,
        obs=pd.DataFrame({"condition": ["ctrl", "ctrl", "A+ctrl", "A+ctrl", "A+B", "A+B"],
                          "n_counts": rng.integers(1, 100, 6), "score": rng.normal(size=6),
                          "kept": [True, False] * 3}, index=[f"c{i}" for i in range(6)]),
        var=pd.DataFrame({"gene_name": list("VWXYZ")}, index=[f"ENSG{i}" for i in range(5)]),
        layers={"counts": rng.poisson(1.0, size=(6, 5)).astype(float)},
        uns={"note": "kept", "array": np.arange(3)},
    )
    sent = bridge.anndata_to_r(cells)

    def as_r_returns(m):  # R takes Python's matrix_to_r() (as buffers, outside R) and sends its slots back
        parts = bridge.take(m["outbox"], None)
        if m["sparse"]:
            return {"x": parts["x"], "indices": parts["i"], "indptr": parts["p"], "n_cells": m["nrow"],
                    "n_genes": m["ncol"]}
        return {"x": parts["x"], "n_cells": m["nrow"], "n_genes": m["ncol"]}

    back = bridge.anndata_from_r(
        {name: as_r_returns(m) for name, m in sent["assays"].items()},
        as_r_sends(sent["obs"], sent["obs_names"]),
        as_r_sends(sent["var"], sent["var_names"]),
        uns=json.dumps(sent["uns"]),
    )
    np.testing.assert_array_equal(back.X.toarray(), X.toarray())
    np.testing.assert_array_equal(back.layers["counts"], cells.layers["counts"])
    pd.testing.assert_frame_equal(back.obs, cells.obs, check_dtype=False)
    pd.testing.assert_frame_equal(back.var, cells.var)
    assert back.uns == {"note": "kept", "array": [0, 1, 2]}


def test_tables_cross_with_their_types_and_missing_values(bridge):
    table = pd.DataFrame({"x": [1.5, np.nan], "n": [1, 2], "ok": [True, False], "name": ["a", None],
                          "genes": [("A", "B"), ("C",)]})
    sent = bridge.frame_to_r(table)
    assert sent["types"] == {"x": "double", "n": "integer", "ok": "logical", "name": "character",
                             "genes": "character"}
    back = bridge.frame_from_r(**as_r_sends(sent))
    pd.testing.assert_frame_equal(back, table.assign(genes=["A+B", "C"]))


def test_an_r_custom_model_is_held_to_the_model_contract(bridge):
    """R's custom_model(): fit gets the training pseudobulk as R gets it, predict returns genes x conditions."""
    pb = make_pseudobulk()
    seen = {}

    def fit(train):  # R keeps the state; here a dict plays R's environment
        seen["genes"] = train["var_names"]
        seen["ctrl"] = r_takes(bridge, train).reshape(train["n_obs"], train["n_vars"])[0]

    def predict(conditions):
        values = np.tile(seen["ctrl"], (len(conditions), 1))
        values[[c == "G1+G2" for c in conditions]] = np.nan  # the model cannot predict this one
        return bridge._buffer(values)  # R's genes x conditions matrix, column by column

    model = bridge.custom_model("ctrl_again", fit, predict)
    assert isinstance(model, linpert.models.FunctionModel)
    model.fit(pb)
    assert seen["genes"] == list(pb.var_names)
    pred = model.predict(["ctrl+G1", "G1+G2"])
    assert list(pred.obs_names) == ["G1+ctrl", "G1+G2"]  # canonical, in the requested order
    np.testing.assert_array_equal(pred.X[0], pb.X[0])
    assert pred.obs["reason"].tolist() == ["", "ctrl_again returned no finite value"]
    with pytest.raises(ValueError, match="ctrl"):
        model.fit(pb[1:])  # the training data is checked as for every model


def test_a_labelled_r_custom_model_resumes_and_an_unlabelled_function_model_does_not(bridge, tmp_path):
    pb = make_pseudobulk()

    def make():
        state = {}
        fit = lambda train: state.update(ctrl=r_takes(bridge, train)[: train["n_vars"]].copy())  # noqa: E731
        return bridge.custom_model("mine", fit, lambda names: bridge._buffer(np.tile(state["ctrl"], (len(names), 1))))

    run = dict(split="double", seeds=[1], out=tmp_path, progress=False, interactions=False)
    first = benchmark.run(pb, models=[("mine", make())], **run)
    again = benchmark.run(pb, models=[("mine", make())], **run)
    assert again.reused == 1 and again.results.equals(first.results)
    with pytest.raises(FileExistsError, match="cannot inspect.*a function among its parameters"):
        benchmark.run(pb, models=[make()], **run)


def test_predictions_and_scores_cross_as_linpert_computes_them(bridge):
    pb = make_pseudobulk()
    model = bridge.make_model("linear", {"n_components": 3.0})  # R's numbers arrive as floats
    bridge.fit_model(model, pb)
    sent = bridge.predict_model(model, ["G0+G1", "G2+ctrl"])
    own = linpert.models.make_model("linear", n_components=3).fit(pb).predict(["G0+G1", "G2+ctrl"])
    np.testing.assert_array_equal(bridge.numbers(sent["x"]).reshape(own.shape), own.X)
    assert sent["obs_names"] == list(own.obs_names) and sent["reason"] == ["", ""]
    obs = pb[["G0+G1", "G2+ctrl"]].X
    scored = bridge.score(sent["x"], bridge._buffer(obs), bridge._buffer(pb.X[0]), 2, pb.n_vars)
    expected = linpert.metrics.score(own.X, obs, pb.X[0])
    pd.testing.assert_frame_equal(bridge.frame_from_r(**as_r_sends(scored)), expected, check_dtype=False)


def test_a_split_crosses_to_r_and_back_unchanged(bridge, tmp_path):
    pb = make_pseudobulk()
    sent = bridge.make_split("double", list(pb.obs_names), 3.0, {})
    own = linpert.splits.make_split("double", list(pb.obs_names), seed=3)
    assert sent["test"] == list(own.test) and sent["hash"] == own.hash
    path = bridge.write_split(sent, str(tmp_path / "split.json"))
    assert bridge.read_split(path) == sent


def test_pythons_warnings_are_kept_for_r(bridge):
    pb = make_pseudobulk()
    bridge.take_warnings()
    bridge.additive_deviation(pb[[n for n in pb.obs_names if n != "G0+ctrl"]], 100)
    taken = bridge.take_warnings()
    assert any("G0" in message for message in taken)
    assert bridge.take_warnings() == []


@pytest.fixture(scope="module")
def simulated():
    cells = linpert.datasets.simulate("norman", n_genes=600, n_singles=24, n_doubles=40, cells_per_condition=300,
                                      n_control_cells=2000, seed=3)
    return linpert.pseudobulk(cells)


@pytest.mark.parametrize("rule", ["paper", "tail"])
def test_the_bridge_classifies_rs_fit_with_the_code_of_call_interactions(bridge, simulated, rule):
    """The R package fits locfdr in R and sends the fdr over the bridge, which only carries it to
    classify_deviations: the calls must equal call_interactions' on the same fit."""
    pb = simulated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # locfdr's misfit warning on this small histogram
        calls = call_interactions(pb, n_genes=200, backend="python", rule=rule)
    deviations = bridge.deviations(pb, 200)
    np.testing.assert_array_equal(bridge.numbers(deviations["z"]), calls.table["deviation"].to_numpy())
    answer = bridge.interaction_calls(deviations["key"], bridge._buffer(calls.locfdr.fdr), calls.locfdr.center,
                                      0.05, rule)
    table = bridge.frame_from_r(**as_r_sends(answer["table"]))
    assert (answer["lower"], answer["upper"]) == (calls.lower, calls.upper)
    assert answer["counts"] == {k: int(v) for k, v in calls.counts.items()}
    assert list(table["class"]) == list(calls.table["class"]) and calls.n_interactions > 0
    assert not bridge._DEVIATIONS  # taken: nothing stays behind

    # with the port, the null is fitted on the Python side: the same calls, nothing but the key sent
    key = bridge.deviations(pb, 200, send=False)["key"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        answer = bridge.python_calls(key, {}, 0.05, rule)
    table = bridge.frame_from_r(**as_r_sends(answer["table"]))
    np.testing.assert_array_equal(table["fdr"].to_numpy(), calls.table["fdr"].to_numpy())
    assert answer["null"]["delta"] == calls.locfdr.fp0.loc["mlest", "delta"]

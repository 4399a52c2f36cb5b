"""The golden values in inst/extdata/golden/, which tests/testthat/test-golden.R asserts too.

Both suites start from the same CSV pseudobulk and must reach the same split, scores and interaction thresholds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parents[2] / "inst" / "extdata" / "golden"


@pytest.fixture(scope="module")
def make_golden():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def expected():
    return json.loads((GOLDEN / "golden.json").read_text())


@pytest.fixture(scope="module")
def pb(make_golden):
    return make_golden.read_pseudobulk()


def test_double_split_of_seed_1(pb, expected):
    from linpert.splits import double_split

    split = double_split(pb.obs_names, seed=1)
    want = expected["double_split_seed1"]
    assert list(split.train) == want["train"]
    assert list(split.val) == want["val"]
    assert list(split.test) == want["test"]
    assert len(split.test) == 6 and len(split.val) == 6  # 24 doubles: 12 train, 6 test, 6 val


@pytest.mark.parametrize("model", ["no_change", "additive", "linear"])
def test_scores_per_model(pb, expected, model):
    from linpert.metrics import score, top_expressed_genes
    from linpert.models import make_model
    from linpert.splits import double_split

    want = expected["scores"][model]
    split = double_split(pb.obs_names, seed=1)
    ctrl = pb[pb.obs_names == "ctrl"].X.ravel()
    readout = top_expressed_genes(ctrl, n_genes=len(expected["readout_genes"]))
    assert list(pb.var_names[readout]) == expected["readout_genes"]
    scored = list(split.test + split.val)
    assert scored == want["perturbation"]
    fitted = make_model(model, **want["params"]).fit(pb[list(split.train)].copy())
    table = score(fitted.predict(scored).X[:, readout], pb[scored].X[:, readout], ctrl[readout])
    np.testing.assert_allclose(table["l2"], np.asarray(want["l2"], dtype=float), rtol=1e-10)
    # null in the JSON is NaN: no_change predicts ctrl, so its change from ctrl has no correlation
    np.testing.assert_allclose(table["pearson_delta"], np.asarray(want["pearson_delta"], dtype=float), rtol=1e-10)
    assert np.isnan(table["pearson_delta"]).all() == (model == "no_change")


def test_no_change_l2_is_the_distance_to_ctrl(pb, expected):
    # an independent reference for one golden column: no_change predicts ctrl, so l2 = ||obs - ctrl||
    want = expected["scores"]["no_change"]
    genes = expected["readout_genes"]
    ctrl = pb["ctrl", genes].X.ravel()
    l2 = [np.linalg.norm(pb[p, genes].X.ravel() - ctrl) for p in want["perturbation"]]
    np.testing.assert_allclose(l2, want["l2"], rtol=1e-10)


def test_additive_prediction_is_a_plus_b_minus_ctrl(pb, expected):
    want = expected["scores"]["additive"]
    genes = expected["readout_genes"]
    ctrl = pb["ctrl", genes].X.ravel()
    p = want["perturbation"][0]
    a, b = p.split("+")
    predicted = pb[f"{a}+ctrl", genes].X.ravel() + pb[f"{b}+ctrl", genes].X.ravel() - ctrl
    assert np.linalg.norm(predicted - pb[p, genes].X.ravel()) == pytest.approx(want["l2"][0], rel=1e-10)


def test_interaction_thresholds(pb, expected):
    from linpert.interactions import call_interactions

    want = expected["interactions"]
    calls = call_interactions(pb, n_genes=want["n_genes"], backend="python")
    assert len(calls.table) == want["n_pairs"] == 24 * 120
    assert calls.lower == pytest.approx(want["lower"], rel=1e-9)
    assert calls.upper == pytest.approx(want["upper"], rel=1e-9)
    assert calls.counts.to_dict() == want["counts"]
    # the thresholds are observed deviations, one on each side of zero
    assert want["lower"] < 0 < want["upper"]
    assert np.isclose(calls.table["deviation"], want["lower"], rtol=0, atol=1e-12).any()

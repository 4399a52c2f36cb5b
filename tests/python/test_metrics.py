"""Tests of linpert.metrics against numpy / scipy references and hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from linpert.metrics import (
    bootstrap_ratio,
    l2,
    l2_by_n,
    l2_grid,
    pearson_delta,
    prediction_spread,
    r2,
    score,
    top_expressed_genes,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    ctrl = rng.gamma(2.0, 1.0, size=200)
    obs = ctrl + rng.normal(0, 0.5, size=(12, 200))
    pred = ctrl + 0.6 * (obs - ctrl) + rng.normal(0, 0.3, size=(12, 200))
    return pred, obs, ctrl


# ------------------------------------------------------------------------------------------------ top genes
def test_top_expressed_genes_sorts_by_control_mean_with_ties_by_first_occurrence():
    ctrl = np.array([0.5, 2.0, 1.0, 2.0, 3.0, 1.0, np.nan])
    np.testing.assert_array_equal(top_expressed_genes(ctrl, n_genes=5), [4, 1, 3, 2, 5])
    np.testing.assert_array_equal(top_expressed_genes(ctrl, n_genes=100), [4, 1, 3, 2, 5, 0, 6])  # NaN last
    assert top_expressed_genes(ctrl, n_genes=0).size == 0
    assert top_expressed_genes(ctrl, n_genes=2).dtype.kind == "i"
    # agrees with R's rank(desc(x), ties = "first") <= n
    x = np.random.default_rng(1).integers(0, 5, size=50).astype(float)
    rank = stats.rankdata(-x, method="ordinal")  # ordinal = ties by first occurrence
    np.testing.assert_array_equal(np.sort(top_expressed_genes(x, n_genes=20)), np.flatnonzero(rank <= 20))
    with pytest.raises(ValueError, match="n_genes must be non-negative"):
        top_expressed_genes(ctrl, n_genes=-1)


# ------------------------------------------------------------------------------------- per-perturbation scores
def test_scalar_metrics_match_numpy_and_scipy(data):
    pred, obs, ctrl = data
    p, o = pred[0], obs[0]
    assert l2(p, o) == pytest.approx(np.linalg.norm(p - o), rel=1e-12)
    assert pearson_delta(p, o, ctrl) == pytest.approx(stats.pearsonr(p - ctrl, o - ctrl)[0], rel=1e-10)
    assert r2(p, o) == pytest.approx(np.corrcoef(p, o)[0, 1], rel=1e-10)
    # by hand: a 3-4-5 triangle
    assert l2(np.array([0.0, 0.0]), np.array([3.0, 4.0])) == 5.0


def test_nan_genes_are_dropped(data):
    pred, obs, ctrl = data
    p, o = pred[1].copy(), obs[1].copy()
    p[[3, 50]] = np.nan
    o[7] = np.nan
    keep = np.isfinite(p) & np.isfinite(o)
    assert l2(p, o) == pytest.approx(np.linalg.norm(p[keep] - o[keep]), rel=1e-12)
    expected = stats.pearsonr(p[keep] - ctrl[keep], o[keep] - ctrl[keep])[0]
    assert pearson_delta(p, o, ctrl) == pytest.approx(expected, rel=1e-10)
    assert r2(p, o) == pytest.approx(np.corrcoef(p[keep], o[keep])[0, 1], rel=1e-10)


def test_pearson_delta_is_undefined_for_the_no_change_prediction(data):
    _, obs, ctrl = data
    assert np.isnan(pearson_delta(ctrl.copy(), obs[0], ctrl))
    # a constant shift is constant too; r2 of absolute values is still defined
    assert np.isnan(pearson_delta(ctrl + 0.3, obs[0], ctrl))
    assert np.isfinite(r2(ctrl, obs[0]))


def test_score_is_the_row_wise_version(data):
    pred, obs, ctrl = data
    pred = pred.copy()
    pred[2, :40] = np.nan  # some genes without a prediction
    pred[5] = np.nan  # a perturbation the model could not predict
    pred[7] = ctrl  # no change
    table = score(pred, obs, ctrl)
    assert list(table.columns) == ["l2", "pearson_delta", "r2"] and len(table) == 12
    for i in range(12):
        if i == 5:
            assert table.iloc[i].isna().all()
            continue
        assert table["l2"][i] == pytest.approx(l2(pred[i], obs[i]), rel=1e-12)
        assert table["r2"][i] == pytest.approx(r2(pred[i], obs[i]), rel=1e-12)
        if i == 7:
            assert np.isnan(table["pearson_delta"][i])
        else:
            assert table["pearson_delta"][i] == pytest.approx(pearson_delta(pred[i], obs[i], ctrl), rel=1e-12)
    ok = np.isfinite(pred[2])
    assert table["r2"][2] == pytest.approx(stats.pearsonr(pred[2, ok], obs[2, ok])[0], rel=1e-10)


def test_score_rejects_mismatched_shapes(data):
    pred, obs, ctrl = data
    with pytest.raises(ValueError, match="Shapes do not match"):
        score(pred, obs[:, :10], ctrl)
    with pytest.raises(ValueError, match="control profile over those genes"):
        score(pred, obs, ctrl[:10])


# ---------------------------------------------------------------------------------------------------- L2 by n
def test_l2_grid_follows_the_papers_ranks():
    # c(1:100, seq(101, 1000, by = 10), seq(1001, 19264, by = 100))
    expected = np.concatenate([np.arange(1, 101), np.arange(101, 1001, 10), np.arange(1001, 19265, 100)])
    np.testing.assert_array_equal(l2_grid(19264), expected)
    assert l2_grid(19264)[-1] == 19201
    assert len(l2_grid(1000)) == 190 and l2_grid(1000)[-1] == 991
    np.testing.assert_array_equal(l2_grid(50), np.arange(1, 51))
    np.testing.assert_array_equal(l2_grid(1001)[-2:], [991, 1001])


def test_l2_by_n_orders_by_expression_or_by_change():
    rng = np.random.default_rng(3)
    ctrl = rng.gamma(2.0, 1.0, size=1234)
    obs = ctrl + rng.normal(0, 0.4, size=(3, 1234))
    pred = ctrl + rng.normal(0, 0.4, size=(3, 1234))
    pred[1, 10] = np.nan
    table = l2_by_n(pred, obs, ctrl)
    grid = l2_grid(1234)
    assert list(table.columns) == ["perturbation", "n", "l2"] and len(table) == 3 * len(grid)
    order = top_expressed_genes(ctrl, n_genes=1234)
    for i in range(3):
        got = table[table["perturbation"] == i].set_index("n")["l2"]
        # at n genes it is the L2 distance over the n most expressed genes
        for n in (1, 37, 100, 101, 991, 1001, 1201):
            assert got[n] == pytest.approx(l2(pred[i, order[:n]], obs[i, order[:n]]), rel=1e-12)
        assert got.is_monotonic_increasing
    de = l2_by_n(pred, obs, ctrl, order="de")
    for i in range(3):
        by_change = np.argsort(-np.abs(obs[i] - ctrl), kind="stable")
        got = de[de["perturbation"] == i].set_index("n")["l2"]
        for n in (1, 5, 251, 1101):
            assert got[n] == pytest.approx(l2(pred[i, by_change[:n]], obs[i, by_change[:n]]), rel=1e-12)
    # by hand: genes (ctrl 2, 1): squared errors 9 then 16
    hand = l2_by_n(np.array([1.0, 1.0]), np.array([4.0, 5.0]), np.array([2.0, 1.0]), order="de")
    assert hand["l2"].tolist() == [4.0, 5.0]  # |obs - ctrl| = 2, 4: the second gene comes first
    with pytest.raises(ValueError, match="order must be 'expression' or 'de'"):
        l2_by_n(pred, obs, ctrl, order="variance")


# --------------------------------------------------------------------------------------------------- spread
def test_prediction_spread_is_the_sd_across_perturbations(data):
    pred, obs, _ = data
    pred = pred.copy()
    pred[0, 3] = np.nan
    table = prediction_spread(pred, obs)
    assert list(table.columns) == ["sd_pred", "sd_obs"] and len(table) == 200
    np.testing.assert_allclose(table["sd_obs"], obs.std(axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(table["sd_pred"].drop(3), np.delete(pred.std(axis=0, ddof=1), 3), rtol=1e-12)
    assert table["sd_pred"][3] == pytest.approx(np.std(pred[1:, 3], ddof=1), rel=1e-12)
    # a model that predicts the same profile for everything has no spread
    np.testing.assert_allclose(prediction_spread(np.tile(obs[0], (5, 1)), obs[:5])["sd_pred"], 0, atol=1e-12)
    with pytest.raises(ValueError, match="must have the same shape"):
        prediction_spread(pred, obs[:3])


# ------------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_ratio_mean_and_interval():
    rng = np.random.default_rng(4)
    reference = rng.uniform(2.0, 6.0, size=300)
    values = reference * rng.normal(0.8, 0.2, size=300)
    out = bootstrap_ratio(values, reference, n_boot=4000, seed=1)
    ratio = values / reference
    assert out["n"] == 300
    assert out["mean"] == pytest.approx(ratio.mean(), rel=1e-12)  # closed form: the mean of the ratios
    # the 95 % interval is about ±1.96 standard errors of the mean
    se = ratio.std(ddof=1) / np.sqrt(ratio.size)
    assert out["upper"] - out["lower"] == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert out["se"] == pytest.approx(se, rel=0.1)
    assert out["lower"] < out["mean"] < out["upper"]
    # deterministic by seed
    again = bootstrap_ratio(values, reference, n_boot=4000, seed=1)
    pd.testing.assert_series_equal(out, again)
    other = bootstrap_ratio(values, reference, n_boot=4000, seed=2)
    assert other["lower"] != out["lower"]
    # a narrower ci is inside the wider one
    narrow = bootstrap_ratio(values, reference, n_boot=4000, seed=1, ci=0.5)
    assert out["lower"] < narrow["lower"] < narrow["upper"] < out["upper"]


def test_bootstrap_ratio_drops_nan_pairs_and_checks_input():
    out = bootstrap_ratio(np.array([1.0, np.nan, 2.0, 3.0]), np.array([2.0, 1.0, np.nan, 0.0]), n_boot=10)
    assert out["n"] == 1 and out["mean"] == 0.5 and out["lower"] == out["upper"] == 0.5
    empty = bootstrap_ratio(np.array([np.nan]), np.array([1.0]))
    assert empty["n"] == 0 and np.isnan(empty["mean"])
    # the default is the paper's 10,000 resamples and stays quick
    assert bootstrap_ratio(np.arange(1.0, 400.0), np.full(399, 2.0))["mean"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="must pair up one to one"):
        bootstrap_ratio(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="ci must lie between 0 and 1"):
        bootstrap_ratio(np.ones(3), np.ones(3), ci=95)

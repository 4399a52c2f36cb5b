import warnings

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import linpert
from linpert.interactions import (
    additive_deviation,
    auprc,
    average_curves,
    call_interactions,
    classify_observed,
    classify_prediction,
    evaluate_interactions,
    roc_auc,
    tpr_fdp_curve,
)


def tiny_pseudobulk():
    """ctrl, singles A, B, C and doubles A+B, A+C, and B+D whose single D is missing."""
    names = ["ctrl", "A+B", "A+C", "A+ctrl", "B+D", "B+ctrl", "C+ctrl"]
    X = np.array(
        [
            [1.0, 5.0, 2.0],  # ctrl
            [3.0, 5.5, 2.0],  # A+B
            [0.0, 4.0, 2.5],  # A+C
            [2.0, 5.0, 2.5],  # A
            [9.0, 9.0, 9.0],  # B+D
            [1.5, 6.0, 2.0],  # B
            [0.5, 4.5, 1.0],  # C
        ]
    )
    obs = pd.DataFrame(index=pd.Index(names, name="condition"))
    return anndata.AnnData(X, obs=obs, var=pd.DataFrame(index=["g1", "g2", "g3"]))


def test_deviation_table_matches_a_hand_computation_and_reports_missing_singles():
    with pytest.warns(UserWarning, match=r"1 double\(s\) left out.*B\+D \(no D\+ctrl\)"):
        table = additive_deviation(tiny_pseudobulk(), n_genes=2)
    # read-out genes: the 2 highest ctrl means, g2 (5.0) then g3 (2.0)
    assert table["gene"].tolist() == ["g2", "g3", "g2", "g3"]
    assert table["perturbation"].tolist() == ["A+B", "A+B", "A+C", "A+C"]
    # A+B, g2: ctrl 5, A 5, B 6 -> additive 6, observed 5.5 -> deviation -0.5
    # A+B, g3: ctrl 2, A 2.5, B 2 -> additive 2.5, observed 2 -> -0.5
    # A+C, g2: ctrl 5, A 5, C 4.5 -> 4.5, observed 4 -> -0.5;  A+C, g3: 2, 2.5, 1 -> 1.5, observed 2.5 -> +1
    np.testing.assert_allclose(table["additive"], [6.0, 2.5, 4.5, 1.5])
    np.testing.assert_allclose(table["deviation"], [-0.5, -0.5, -0.5, 1.0])
    np.testing.assert_allclose(table["single_b"], [6.0, 2.0, 4.5, 1.0])
    assert table.attrs["missing_singles"] == {"B+D": ["D+ctrl"]}

    explicit = additive_deviation(tiny_pseudobulk()[["ctrl", "A+ctrl", "B+ctrl", "A+B"]], genes=["g1"])
    assert explicit[["observed", "additive", "deviation"]].iloc[0].tolist() == [3.0, 2.5, 0.5]
    with pytest.raises(ValueError, match="Unknown read-out gene.*var_names"):
        additive_deviation(tiny_pseudobulk()[["ctrl", "A+ctrl", "B+ctrl", "A+B"]], genes=["nope"])
    with pytest.raises(ValueError, match="No double perturbation with both singles"), pytest.warns(UserWarning):
        additive_deviation(tiny_pseudobulk()[["ctrl", "A+ctrl", "B+D"]])


def test_observed_classes_for_every_rule_and_both_signs():
    lo, hi = -0.2, 0.2
    # (A, B, AB) with ctrl = 0; up: both singles +1 -> additive 2; down: mirrored
    cases = {
        (1.0, 1.0, 2.1): "additive",  # within the thresholds
        (1.0, 1.0, 1.0): "buffering",  # dev -1 < lower, AB between 0 and additive
        (1.0, 1.0, 3.0): "synergy",  # dev +1 > upper, beyond additive
        (1.0, 1.0, -1.0): "opposite",  # singles up, double down
        (-1.0, -1.0, -1.0): "buffering",  # ctrl > add, dev +1 > upper
        (-1.0, -1.0, -3.0): "synergy",  # ctrl > add, dev -1 < lower
        (-1.0, -1.0, 1.0): "opposite",
        (1.0, -0.5, 2.0): "other",  # singles point different ways
        (1.0, -0.5, -2.0): "other",
        (1.0, -0.5, 0.5): "additive",
    }
    a, b, ab = (np.array(v) for v in zip(*cases))
    got = classify_observed(np.zeros(len(cases)), a, b, ab, lower=lo, upper=hi)
    assert got.tolist() == list(cases.values())
    # shifting everything by a ctrl level changes nothing
    shifted = classify_observed(np.full(len(cases), 3.0), a + 3, b + 3, ab + 3, lower=lo, upper=hi)
    assert shifted.tolist() == got.tolist()


def test_predicted_classes_for_both_signs():
    ctrl = np.full(8, 1.0)
    additive = np.array([2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 1.0])
    predicted = np.array([1.5, 1.0, 2.5, 0.5, 0.5, -1.0, 1.5, 1.2])
    got = classify_prediction(ctrl, additive, predicted)
    assert got.tolist() == ["buffering", "buffering", "synergy", "opposite",
                            "buffering", "synergy", "opposite", "other"]
    assert classify_prediction(0.0, 1.0, np.nan).tolist() is None


def test_tpr_fdp_curve_by_hand():
    # ranked labels T F T F: tp 1 1 2 2, fp 0 1 1 2, fdp 0 .5 1/3 .5 -> by fdp: (0, .5) (1/3, 1) (.5, 1) (.5, 1)
    calls = np.array([True, False, True, False])
    curve = tpr_fdp_curve(calls, np.array([4.0, -3.0, 2.0, 1.0]), np.zeros(4), grid=np.array([0, 1 / 6, 0.4, 0.9]))
    np.testing.assert_allclose(curve["tpr"], [0.5, 0.75, 1.0, 1.0])

    # ties in fdp take the mean tpr (R's approx): labels F T: tp 0 1, fp 1 1, fdp 1 .5 -> (.5, .5), (1, .5)
    # labels F F T T: tp 0 0 1 2, fp 1 2 2 2, fdp 1 1 2/3 .5 -> sorted (.5,1/2)(2/3,1/2)(1,1/2)(1,1/2) after cummax
    curve = tpr_fdp_curve(np.array([False, False, True, True]), np.array([4.0, 3, 2, 1]), np.zeros(4),
                          grid=np.array([0.25, 0.5, 0.75, 1.0]))
    # below the first fdp (.5) R's yleft = 0; the cummax of tp over the fdp order: 2, 2, 2, 2 -> tpr 1
    np.testing.assert_allclose(curve["tpr"], [0.0, 1.0, 1.0, 1.0])

    # a tie where the mean matters: labels T F F T with scores (3, 2, 2, 1) -> fdp 0, .5, 2/3, .5
    # by fdp (stable): (0, 1) (.5, 1) (.5, 2) (2/3, 2) -> cummax tp 1 1 2 2 -> tpr .5 .5 1 1; fdp .5 -> mean .75
    curve = tpr_fdp_curve(np.array([True, False, False, True]), np.array([3.0, 2, 2, 1]), np.zeros(4),
                          grid=np.array([0.5, 0.25]))
    np.testing.assert_allclose(curve["tpr"], [0.75, 0.625])

    assert tpr_fdp_curve(np.zeros(3, bool), np.arange(3.0), np.zeros(3))["tpr"].isna().all()
    # a NaN prediction is never called: its positive costs recall
    curve = tpr_fdp_curve(np.array([True, True]), np.array([1.0, np.nan]), np.zeros(2), grid=np.array([0.0]))
    assert curve["tpr"].tolist() == [0.5]
    with pytest.raises(ValueError, match="one value per"):
        tpr_fdp_curve(np.array([True]), np.zeros(2), np.zeros(2))

    seeds = pd.concat([curve.assign(model="m", seed=1), curve.assign(model="m", seed=2, tpr=1.0)])
    assert average_curves(seeds)[["tpr", "n_seeds"]].iloc[0].tolist() == [0.75, 2]


def test_auprc_and_roc_auc_closed_forms():
    labels = np.array([True] * 3 + [False] * 5)
    perfect = np.arange(8.0)[::-1]
    assert auprc(labels, perfect, np.zeros(8)) == pytest.approx(1.0)
    assert roc_auc(labels, perfect, np.zeros(8)) == pytest.approx(1.0)
    reversed_ = -perfect
    assert roc_auc(labels, reversed_ + 100, np.zeros(8)) == pytest.approx(0.0)
    # reversed, P=3 positives after N=5 negatives: points (0, 0)x5, (k/(5+k), k/3), then the anchor (1, 0)
    p = np.array([0.0, 1 / 6, 2 / 7, 3 / 8])
    expected = -(np.sum((p[1:] + p[:-1]) / 2) / 3 - (p[-1] + 1) / 2)
    assert auprc(labels, reversed_ + 100, np.zeros(8)) == pytest.approx(expected)

    # ROC AUC is the Mann-Whitney U over #pos·#neg when scores are distinct
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.2
    score = rng.normal(size=300) + y + 10  # ranked by |score|: keep it positive
    u = stats.mannwhitneyu(score[y], score[~y]).statistic
    assert roc_auc(y, score, np.zeros(300)) == pytest.approx(u / (y.sum() * (~y).sum()))
    # precision not monotone (ranked T F T F): points (prec, rec) (1, .5) (.5, .5) (2/3, 1) (.5, 1) + anchor (1, 0),
    # by precision: (.5, 1) (.5, .5) (2/3, 1) (1, .5) (1, 0) -> -(.5·-.5 + 7/12·.5 + 5/6·-.5 + 1·-.5) = 0.875
    assert auprc(np.array([True, False, True, False]), np.array([4.0, 3, 2, 1]), np.zeros(4)) == pytest.approx(0.875)
    assert np.isnan(auprc(np.zeros(3, bool), np.arange(3.0), np.zeros(3)))
    assert np.isnan(roc_auc(np.ones(3, bool), np.arange(3.0), np.zeros(3)))


@pytest.fixture(scope="module")
def simulated():
    """Norman-like but small: 24 CRISPRa singles, 40 doubles, 300 cells each, interactions from saturation."""
    cells = linpert.datasets.simulate("norman", n_genes=600, n_singles=24, n_doubles=40, cells_per_condition=300,
                                      n_control_cells=2000, seed=3)
    return cells.uns["linpert_truth"], linpert.pseudobulk(cells)


def test_interactions_are_recovered_at_the_stated_fdr(simulated):
    truth, pb = simulated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # locfdr's misfit warning on this small histogram
        calls = call_interactions(pb, n_genes=200, backend="python")
    table = calls.table
    assert len(table) == 40 * 200 and calls.lower < 0 < calls.upper
    assert calls.counts.sum() == len(table) and calls.counts.drop("additive").sum() == calls.n_interactions
    assert table.loc[table["interaction"], "fdr"].max() < 0.2

    # The truth on the pseudobulk's scale: the noise-free expected pseudobulk's deviation from additivity, which the
    # genes' saturating responses (and log1p) create.
    expected = pd.DataFrame(truth["expected"], index=truth["conditions"], columns=pb.var_names)
    a = [f"{p.split('+')[0]}+ctrl" for p in table["perturbation"]]
    b = [f"{p.split('+')[1]}+ctrl" for p in table["perturbation"]]
    lookup = lambda rows: expected.values[expected.index.get_indexer(rows), expected.columns.get_indexer(table["gene"])]
    true_dev = lookup(table["perturbation"]) - (lookup(a) + lookup(b) - lookup(["ctrl"] * len(table)))
    called = table["interaction"].to_numpy()
    false_calls = called & (np.abs(true_dev) < 0.1)
    achieved_fdr = false_calls.sum() / called.sum()  # measured: 0 of 436
    assert achieved_fdr <= 0.05

    clear = np.abs(true_dev) > 0.5
    recall = (called & clear).sum() / clear.sum()  # measured: 208 of 209 = 99.5 %
    assert clear.sum() > 100 and recall >= 0.9
    # saturation: two drives together move a gene less than the sum of each alone, so buffering dominates the calls
    assert calls.counts["buffering"] > calls.counts["synergy"] + calls.counts["opposite"]

    # A model that predicts the observed doubles finds the interactions first; no change, which predicts buffering
    # everywhere, finds some (as in the paper, where it beat every deep model) but far fewer.
    doubles = table["perturbation"].unique()
    genes = table["gene"].unique()
    observed = pb[doubles, genes].to_df()
    no_change = pd.DataFrame(np.tile(pb["ctrl", genes].X, (len(doubles), 1)), index=doubles, columns=genes)
    result = evaluate_interactions(calls, {(1, "perfect"): observed, (1, "no_change"): no_change}, top_k=50,
                                   recurrence_k=20)
    curve = result.tpr_fdp.set_index(["model", "fdp"])["tpr"]
    # Ranked by |deviation|, a perfect model finds the calls first up to the asymmetry of the two thresholds (a
    # deviation between |lower| and upper ranks high but is no call): measured TPR 0.74 at FDP 0.01, 1 at FDP 0.1.
    assert curve.loc[("perfect", 0.01)] >= 0.7 and curve.loc[("perfect", 0.1)] == pytest.approx(1.0)
    assert curve.loc[("no_change", 0.1)] < 0.5
    assert curve.loc["no_change"].mean() < curve.loc["perfect"].mean()
    auc = result.auc.set_index("model")
    # measured: perfect AUPRC 0.987, ROC AUC 0.9993; no change 0.53 and 0.90
    assert auc.loc["perfect", "auprc"] > 0.95 and auc.loc["perfect", "roc_auc"] > 0.99
    assert 0.2 < auc.loc["no_change", "auprc"] < 0.8 * auc.loc["perfect", "auprc"]
    assert auc.loc["no_change", "roc_auc"] < auc.loc["perfect", "roc_auc"]
    top = result.top_classes
    assert (top["model"].value_counts() == 50).all()
    perfect_top = top[top["model"] == "perfect"]
    assert perfect_top["interaction"].all()  # the 50 largest observed deviations are all calls
    # for a perfect model the predicted class is the observed one (wherever the observed class is one of the three)
    same = perfect_top["observed_class"].isin(["buffering", "synergy", "opposite"])
    assert (perfect_top.loc[same, "predicted_class"] == perfect_top.loc[same, "observed_class"]).all()
    rec = result.recurrence
    truth_genes = rec[(rec["model"] == "ground_truth") & (rec["what"] == "gene")]
    assert truth_genes["n"].sum() == 20
    perfect_genes = rec[(rec["model"] == "perfect") & (rec["what"] == "gene")].set_index("name")["n"]
    assert perfect_genes.to_dict() == truth_genes.set_index("name")["n"].to_dict()


def test_additive_predicts_no_interactions_and_the_other_tables_stay_bit_identical(simulated):
    _, pb = simulated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # locfdr's misfit warning on this small histogram
        calls = call_interactions(pb, n_genes=200, backend="python")
    doubles = list(calls.table["perturbation"].unique())
    genes = list(calls.table["gene"].unique())
    singles = [n for n in pb.obs_names if "+" not in n or n.endswith("+ctrl")]
    # the additive model's own arithmetic, whose deviations from calls' A + B − ctrl are rounding (±1e-15)
    additive = linpert.models.Additive().fit(pb[singles].copy()).predict(doubles)[:, genes].to_df()
    deviation = additive.to_numpy() - calls.table.pivot(index="perturbation", columns="gene", values="additive").loc[
        doubles, genes].to_numpy()
    assert 0 < np.abs(deviation).max() < 1e-13  # the noise the earlier analysis ranked and classed
    rng = np.random.default_rng(0)
    observed = pb[doubles, genes].to_df()
    others = {(1, "noisy"): observed + rng.normal(0, 0.1, observed.shape), (2, "noisy"): observed,
              (1, "no_change"): pd.DataFrame(np.tile(pb["ctrl", genes].X, (len(doubles), 1)), index=doubles,
                                             columns=genes)}

    alone = evaluate_interactions(calls, others, top_k=50, recurrence_k=20)
    beside = evaluate_interactions(calls, {**others, (1, "additive"): additive, (2, "additive"): additive},
                                   top_k=50, recurrence_k=20)
    assert beside.no_interactions == ("additive",) and alone.no_interactions == ()
    for name in ("curves", "tpr_fdp", "auc", "auc_summary", "top_classes", "recurrence"):
        pd.testing.assert_frame_equal(getattr(beside, name), getattr(alone, name), check_exact=True, obj=name)
    assert set(beside.pairs["model"]) == {"noisy", "no_change", "additive"}  # its pairs stay, for the figures
    assert linpert.interactions.predicts_no_interactions(beside.pairs) == ["additive"]


def test_predicted_deviation_is_zero_only_within_rounding():
    from linpert.interactions import ZERO_DEVIATION, predicted_deviation

    additive = np.array([0.0, 1.0, 8.0, 8.0, 8.0])
    predicted = additive + np.array([1e-300, 1e-16, 7 * ZERO_DEVIATION, 9 * ZERO_DEVIATION, 1e-9])
    assert predicted_deviation(predicted, additive).tolist()[:3] == [0.0, 0.0, 0.0]
    assert (predicted_deviation(predicted, additive)[3:] > 0).all()


def test_top_predictions_are_the_head_of_a_stable_sort():
    """The top pairs per group are found by a partition, not a full sort: they must still be the head of a stable
    descending sort by |predicted − additive|, ties in table order, NaN predictions skipped, groups in sorted order."""
    from linpert.interactions import top_predictions

    rng = np.random.default_rng(0)
    n = 5000
    pairs = pd.DataFrame({"model": rng.choice(["b", "a", "c"], n), "seed": rng.integers(1, 3, n),
                          "gene": [f"g{i}" for i in range(n)], "ctrl": 0.0,
                          "additive": rng.choice([0.0, 1.0], n),
                          "predicted": rng.integers(-4, 5, n) / 2.0})  # few distinct values: ties everywhere
    pairs.loc[rng.choice(n, 300, replace=False), "predicted"] = np.nan
    for k, by in ((7, "model"), (40, ["model", "seed"]), (10_000, "model")):
        keys = [by] if isinstance(by, str) else by
        got = top_predictions(pairs, k=k, by=by)
        scored = pairs.assign(predicted_deviation=pairs["predicted"] - pairs["additive"]).dropna(subset=["predicted"])
        expected = (scored.assign(size=scored["predicted_deviation"].abs())
                    .sort_values([*keys, "size"], ascending=[True] * len(keys) + [False], kind="stable")
                    .groupby(keys, sort=False).head(k).drop(columns="size"))
        pd.testing.assert_frame_equal(got[expected.columns], expected.reset_index(drop=True))
        assert (got.groupby(keys)["rank"].agg(lambda r: (r.to_numpy() == np.arange(1, len(r) + 1)).all())).all()


def test_call_interactions_checks_its_input():
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        call_interactions(tiny_pseudobulk(), level=5)
    with pytest.raises(ValueError, match="no 'ctrl' row"):
        additive_deviation(tiny_pseudobulk()[1:])

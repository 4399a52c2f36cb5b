"""Tests of linpert.models: the baselines' closed forms, the linear model against a direct dense implementation of
the paper's equations (1)–(3), and the model contract checked once for every registered model."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import check_model_contract

from linpert.models import (
    MODELS,
    Additive,
    LinearModel,
    Mean,
    NoChange,
    make_model,
    pca_gene_scores,
    resolve_models,
)


# ------------------------------------------------------------------------------------------------------ helpers
def pseudobulk(X: np.ndarray, conditions: list[str], genes: list[str]) -> ad.AnnData:
    """A pseudobulk AnnData as linpert.pseudobulk writes it (ctrl first, then sorted)."""
    order = np.argsort([("" if c == "ctrl" else "~") + c for c in conditions], kind="stable")
    conditions = [conditions[i] for i in order]
    X = np.asarray(X, dtype=np.float64)[order]
    gene_lists = ["" if c == "ctrl" else "+".join(t for t in c.split("+") if t != "ctrl") for c in conditions]
    kinds = [["control", "single", "double"][min(len(g.split("+")) if g else 0, 2)] for g in gene_lists]
    obs = pd.DataFrame(
        {"genes": gene_lists, "kind": kinds, "n_cells": np.full(len(conditions), 50, dtype=np.int64)},
        index=pd.Index(conditions, name="condition"),
    )
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))


def random_training(seed: int = 0, n_genes: int = 40) -> ad.AnnData:
    """Random log expression: singles of measured genes, two doubles, and two singles of unmeasured genes."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    conditions = ["ctrl"] + [f"G{i}+ctrl" for i in range(0, 24, 2)] + ["G0+G2", "G4+G6", "X1+ctrl", "X2+G0"]
    X = rng.gamma(2.0, 1.0, size=n_genes) + rng.normal(0, 0.3, size=(len(conditions), n_genes))
    return pseudobulk(X, conditions, genes)


def reference_linear(train: ad.AnnData, conditions: list[str], G: np.ndarray, P_of: dict, ridge: float):
    """Equations (1)–(3) written out with explicit matrices and np.linalg.inv.

    ``G`` is genes × K (rows of genes without an embedding are NaN); ``P_of`` maps a gene to its perturbation
    embedding. A condition is embedded as the sum over its genes; ctrl as zero; a condition with a gene not in
    ``P_of`` is dropped from training and NaN in prediction.
    """
    names = list(train.obs_names)
    X = np.asarray(train.X)
    ctrl = X[names.index("ctrl")]
    dim = len(next(iter(P_of.values())))

    def embed(cond):
        genes = [g for g in cond.split("+") if g != "ctrl"]
        if any(g not in P_of for g in genes):
            return None
        return sum((np.asarray(P_of[g]) for g in genes), np.zeros(dim))

    kept = [(c, embed(c)) for c in names if embed(c) is not None]
    Y = np.stack([X[names.index(c)] - ctrl for c, _ in kept], axis=1)  # genes × n
    P = np.stack([p for _, p in kept], axis=1)  # L × n
    b = Y.mean(axis=1, keepdims=True)
    ok = np.isfinite(G).all(axis=1)
    Gk = G[ok]
    W = (
        np.linalg.inv(Gk.T @ Gk + ridge * np.eye(Gk.shape[1]))
        @ Gk.T
        @ (Y[ok] - b[ok])
        @ P.T
        @ np.linalg.inv(P @ P.T + ridge * np.eye(P.shape[0]))
    )
    out = np.full((len(conditions), X.shape[1]), np.nan)
    for i, cond in enumerate(conditions):
        p = embed(cond)
        if p is not None:
            out[i, ok] = Gk @ W @ p + b[ok, 0] + ctrl[ok]
    return out, [c for c, _ in kept]


def svd_scores(train: ad.AnnData, k: int) -> np.ndarray:
    """PCA scores of genes × conditions by a full dense SVD (the independent reference for pca_gene_scores)."""
    Xg = np.asarray(train.X).T
    U, s, _ = np.linalg.svd(Xg - Xg.mean(axis=0), full_matrices=False)
    return U[:, :k] * s[:k]


QUERY = ["G1+ctrl", "G30+ctrl", "G0+ctrl", "G1+G3", "G5+G7+G9", "ctrl", "X1+ctrl", "G1+X2"]


# ------------------------------------------------------------------------------------------------- baselines
def test_no_change_predicts_the_control_profile():
    train = random_training()
    pred = NoChange().fit(train).predict(["G0+ctrl", "NEW+ctrl", "G1+G3"])
    np.testing.assert_array_equal(pred.X, np.tile(train["ctrl"].X, (3, 1)))
    assert list(pred.obs["reason"]) == ["", "", ""]


def test_mean_is_the_row_mean_over_all_training_conditions_ctrl_included():
    train = random_training()
    pred = Mean().fit(train).predict(["NEW+ctrl", "ctrl"])
    expected = np.asarray(train.X).mean(axis=0)
    np.testing.assert_allclose(pred.X, np.tile(expected, (2, 1)), rtol=1e-14)
    # by hand on a tiny case
    tiny = pseudobulk(np.array([[0.0, 3.0], [3.0, 0.0], [6.0, 0.0]]), ["ctrl", "A+ctrl", "B+ctrl"], ["a", "b"])
    np.testing.assert_allclose(Mean().fit(tiny).predict(["C+ctrl"]).X, [[3.0, 1.0]])


def test_additive_sums_single_effects_for_any_number_of_genes():
    train = random_training()
    X = pd.DataFrame(np.asarray(train.X), index=train.obs_names)
    ctrl = X.loc["ctrl"].to_numpy()
    d = {g: X.loc[f"{g}+ctrl"].to_numpy() - ctrl for g in ["G0", "G2", "G4", "G6"]}
    pred = Additive().fit(train).predict(["G0+G2", "ctrl+G4", "G6+G4+G2", "ctrl", "G0+G1", "Z9+Z8+ctrl"])
    assert list(pred.obs_names) == ["G0+G2", "G4+ctrl", "G6+G4+G2", "ctrl", "G0+G1", "Z9+Z8"]
    # the observed double in training is not used: additive is A + B - ctrl
    np.testing.assert_allclose(pred.X[0], X.loc["G0+ctrl"] + X.loc["G2+ctrl"] - ctrl, rtol=1e-12)
    np.testing.assert_allclose(pred.X[1], X.loc["G4+ctrl"], rtol=1e-12)
    np.testing.assert_allclose(pred.X[2], ctrl + d["G6"] + d["G4"] + d["G2"], rtol=1e-12)
    np.testing.assert_allclose(pred.X[3], ctrl, rtol=0)
    assert np.isnan(pred.X[4]).all() and np.isnan(pred.X[5]).all()
    assert pred.obs["reason"].iloc[4] == "no training single for gene 'G1' (G1+ctrl)"
    assert "'Z9'" in pred.obs["reason"].iloc[5] and "'Z8'" in pred.obs["reason"].iloc[5]
    assert (pred.obs["reason"].iloc[:4] == "").all()


# ---------------------------------------------------------------------------------------------- linear model
def test_pca_gene_scores_match_a_dense_svd_up_to_column_signs():
    train = random_training()
    for X in (np.asarray(train.X).T, np.asarray(train.X)):  # more genes than conditions, and the other way round
        Xc = X - X.mean(axis=0)
        U, s, _ = np.linalg.svd(Xc, full_matrices=False)
        expected = U[:, :5] * s[:5]
        got = pca_gene_scores(X, 5)
        signs = np.sign((got * expected).sum(axis=0))
        np.testing.assert_allclose(got, expected * signs, atol=1e-9)
        # the sign convention: each column's largest-magnitude entry is positive
        assert (got[np.abs(got).argmax(axis=0), np.arange(5)] > 0).all()
    with pytest.raises(ValueError, match="n_components=50 is not between 1 and"):
        pca_gene_scores(np.asarray(train.X).T, 50)


def test_linear_model_equals_the_dense_equations():
    train = random_training()
    model = LinearModel(n_components=6, ridge=0.1).fit(train)
    G = svd_scores(train, 6)
    P_of = dict(zip(train.var_names, G))
    expected, kept = reference_linear(train, QUERY, G, P_of, 0.1)
    pred = model.predict(QUERY)
    np.testing.assert_allclose(pred.X, expected, rtol=1e-8, atol=1e-10)
    assert model.n_train_ == len(kept)
    # perturbations of genes that are not measured are dropped from training and NaN in prediction
    assert set(model.dropped_) == {"X1+ctrl", "X2+G0"}
    assert "not a measured gene" in model.dropped_["X1+ctrl"]
    reasons = pred.obs["reason"]
    expected_reason = "no perturbation embedding for gene 'X1': it is not a measured gene of the training data"
    assert reasons["X1+ctrl"] == expected_reason
    assert "'X2'" in reasons["G1+X2"]
    assert np.isfinite(pred.X[:6]).all()
    # ctrl's embedding is zero, so it is predicted as b + ctrl
    np.testing.assert_allclose(pred["ctrl"].X.ravel(), model.intercept_ + model.ctrl_, rtol=1e-12)


@pytest.mark.parametrize("ridge", [0.0, 0.1, 10.0])
def test_linear_model_equals_the_dense_equations_for_any_ridge(ridge):
    train = random_training(seed=3)
    pred = LinearModel(n_components=4, ridge=ridge).fit(train).predict(QUERY[:6])
    G = svd_scores(train, 4)
    expected, _ = reference_linear(train, QUERY[:6], G, dict(zip(train.var_names, G)), ridge)
    np.testing.assert_allclose(pred.X, expected, rtol=1e-7, atol=1e-9)


def test_linear_model_is_invariant_to_sign_flips_of_the_embedding():
    train = random_training(seed=1)
    default = LinearModel(n_components=5).fit(train)
    G = pd.DataFrame(pca_gene_scores(np.asarray(train.X).T, 5), index=train.var_names)
    flipped = G * np.array([1, -1, -1, 1, -1])
    model = LinearModel(n_components=5, gene_embedding=flipped, perturbation_embedding=flipped).fit(train)
    np.testing.assert_allclose(model.predict(QUERY[:6]).X, default.predict(QUERY[:6]).X, rtol=1e-10, atol=1e-12)
    # flipping W's sign pattern accordingly is what absorbs it
    np.testing.assert_allclose(np.abs(model.coef_), np.abs(default.coef_), rtol=1e-8, atol=1e-12)


def test_linear_model_recovers_rank_k_effects_far_better_than_mean():
    rng = np.random.default_rng(7)
    n_genes, rank = 300, 3
    genes = [f"G{i}" for i in range(n_genes)]
    G_true = rng.normal(size=(n_genes, rank))
    G_true -= G_true.mean(axis=0)  # PCA scores are centred over genes, so a centred G_true is in the model's class
    W_true = rng.normal(size=(rank, rank))
    ctrl = rng.uniform(1.0, 3.0, size=n_genes)
    targets = rng.choice(n_genes, size=120, replace=False)
    # a perturbation's effect is tied to its target gene's row of G_true
    effect = {g: G_true @ W_true @ G_true[g] for g in targets}
    conditions = ["ctrl"] + [f"G{g}+ctrl" for g in targets]
    X = np.stack([ctrl] + [ctrl + effect[g] for g in targets]) + rng.normal(0, 0.05, size=(121, n_genes))
    data = pseudobulk(X, conditions, genes)
    train_names = ["ctrl"] + [f"G{g}+ctrl" for g in targets[:80]]
    test_names = [f"G{g}+ctrl" for g in targets[80:]]
    train = data[train_names].copy()
    truth = np.asarray(data[test_names].X)

    def mean_l2(model):
        pred = model.fit(train).predict(test_names).X
        return np.sqrt(((pred - truth) ** 2).sum(axis=1)).mean()

    linear, mean = mean_l2(LinearModel(n_components=10)), mean_l2(Mean())
    assert linear < 0.3 * mean, (linear, mean)


def test_user_gene_embedding_with_missing_genes_and_other_dimension():
    train = random_training(seed=2)
    rng = np.random.default_rng(5)
    genes = list(train.var_names)
    present = [g for g in genes if g not in ("G3", "G37")]
    user = pd.DataFrame(rng.normal(size=(len(present) + 2, 7)), index=present + ["EXTRA1", "EXTRA2"])
    user.loc["G11"] = np.nan  # a non-finite embedding counts as missing
    model = LinearModel(n_components=4, gene_embedding=user).fit(train)
    assert sorted(model.missing_genes_) == ["G11", "G3", "G37"]
    pred = model.predict(QUERY[:6])
    G = user.reindex(genes).to_numpy()
    P = svd_scores(train, 4)  # P still comes from the training PCA
    expected, _ = reference_linear(train, QUERY[:6], G, dict(zip(genes, P)), 0.1)
    np.testing.assert_allclose(pred.X, expected, rtol=1e-8, atol=1e-10, equal_nan=True)
    missing = [genes.index(g) for g in ("G3", "G11", "G37")]
    assert np.isnan(pred.X[:, missing]).all()
    assert np.isfinite(np.delete(pred.X, missing, axis=1)).all()
    assert (pred.obs["reason"] == "").all()
    assert model.coef_.shape == (7, 4)


def test_user_perturbation_embedding_of_another_dimension():
    train = random_training(seed=4)
    rng = np.random.default_rng(6)
    # an embedding of perturbation targets, covering an unmeasured target (X1) but not G2 or G30
    targets = [f"G{i}" for i in range(0, 24, 2) if i != 2] + ["G1", "G5", "G7", "G9", "X1"]
    P_user = pd.DataFrame(rng.normal(size=(len(targets), 3)), index=targets)
    model = LinearModel(n_components=5, perturbation_embedding=P_user, ridge=0.5).fit(train)
    assert set(model.dropped_) == {"G2+ctrl", "G0+G2", "X2+G0"}
    assert "not in the index of perturbation_embedding" in model.dropped_["G2+ctrl"]
    query = ["G1+ctrl", "X1+ctrl", "G5+G7+G9", "ctrl", "G30+ctrl", "G2+G4"]
    pred = model.predict(query)
    G = svd_scores(train, 5)
    P_of = {g: P_user.loc[g].to_numpy() for g in targets}
    expected, _ = reference_linear(train, query, G, P_of, 0.5)
    np.testing.assert_allclose(pred.X, expected, rtol=1e-8, atol=1e-10, equal_nan=True)
    assert model.coef_.shape == (5, 3)
    assert pred.obs["reason"]["G30+ctrl"].startswith("no perturbation embedding for gene 'G30'")
    assert np.isnan(pred["G2+G4"].X).all() and np.isfinite(pred["X1+ctrl"].X).all()


def test_random_embeddings_are_rs_draws_per_condition_of_the_split():
    from linpert.embeddings._r_random import r_rnorm

    train = random_training(seed=5)
    query = ["G1+ctrl", "NEWGENE+ctrl", "G0+G2", "ctrl"]
    split = [*train.obs_names, "G1+ctrl", "NEWGENE+ctrl"]
    train.uns["linpert"] = {"split": {"seed": 11, "conditions": split}}  # what linpert.benchmark.run tells it
    a = LinearModel(n_components=4, gene_embedding="random", perturbation_embedding="random").fit(train)
    assert a.seed_ == 11  # the split's seed, as the paper's scripts
    b = LinearModel(n_components=4, gene_embedding="random", perturbation_embedding="random", seed=11).fit(train)
    c = LinearModel(n_components=4, gene_embedding="random", perturbation_embedding="random", seed=12).fit(train)
    np.testing.assert_array_equal(a.predict(query).X, b.predict(query).X)
    assert not np.allclose(a.predict(query).X, c.predict(query).X)
    assert a.dropped_ == {} and np.isfinite(a.predict(query).X).all()

    # R: set.seed(11); G <- matrix(rnorm(40 * 4), nrow = 40); P <- matrix(rnorm(4 * n), nrow = 4), one column per
    # condition of the split in code-point order, ctrl included
    G = r_rnorm(40 * 4, 11).reshape(4, 40).T
    np.testing.assert_array_equal(a.gene_embedding_.to_numpy(), G)
    order = sorted(set(split))
    P = r_rnorm(4 * len(order), 11, skip=40 * 4).reshape(len(order), 4)
    np.testing.assert_array_equal(a.perturbation_embedding_.loc[order].to_numpy(), P)
    assert np.abs(a.perturbation_embedding_.loc["ctrl"]).sum() > 0  # the paper draws one for ctrl too

    # the predictions are the equations with those embeddings
    X = np.asarray(train.X)
    names = list(train.obs_names)
    Y = (X - X[names.index("ctrl")]).T
    Pt = P[[order.index(n) for n in names]].T
    bias = Y.mean(axis=1, keepdims=True)
    W = np.linalg.inv(G.T @ G + 0.1 * np.eye(4)) @ G.T @ (Y - bias) @ Pt.T @ np.linalg.inv(Pt @ Pt.T + 0.1 * np.eye(4))
    expected = (G @ W @ P[[order.index(q) for q in query]].T + bias).T + X[names.index("ctrl")]
    np.testing.assert_allclose(a.predict(query).X, expected, rtol=1e-10, atol=1e-12)

    # fitted directly, the model knows only the training conditions: any other is NaN, with the reason
    alone = LinearModel(n_components=4, perturbation_embedding="random", seed=3).fit(random_training(seed=5))
    pred = alone.predict(["G0+ctrl", "NEWGENE+ctrl"])
    assert np.isfinite(pred.X[0]).all() and np.isnan(pred.X[1]).all()
    assert "drawn per condition of the split" in pred.obs["reason"].iloc[1]
    d = LinearModel(n_components=4, gene_embedding="random").fit(random_training(seed=5))  # seed=None: fresh
    assert d.seed is None and isinstance(d.seed_, int)
    np.testing.assert_array_equal(d.predict(query).X, d.predict(query).X)


def test_a_ctrl_row_of_the_perturbation_embedding_embeds_the_control():
    train = random_training(seed=2)
    genes = [f"G{i}" for i in range(0, 24, 2)]
    table = pd.DataFrame(np.random.default_rng(0).normal(size=(len(genes), 3)), index=genes)
    with_ctrl = pd.concat([table, pd.DataFrame([[0.5, -1.0, 2.0]], index=["ctrl"])])
    zero = LinearModel(n_components=3, perturbation_embedding=table).fit(train)
    scored = LinearModel(n_components=3, perturbation_embedding=with_ctrl).fit(train)
    # ctrl is zero without a row (the paper's script adds a zero column), its row's vector with one
    np.testing.assert_allclose(zero.predict(["ctrl"]).X[0], zero.intercept_ + zero.ctrl_, rtol=1e-12)
    expected = scored.gene_embedding_.to_numpy() @ scored.coef_ @ np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(scored.predict(["ctrl"]).X[0], expected + scored.intercept_ + scored.ctrl_, rtol=1e-12)
    assert not np.allclose(zero.coef_, scored.coef_)  # the control's vector takes part in the fit too


def parse(name):
    from linpert._conditions import parse_condition

    return parse_condition(name)


def test_linear_model_bad_parameters_are_explained():
    train = random_training()
    with pytest.raises(ValueError, match="n_components must be a positive integer"):
        LinearModel(n_components=0).fit(train)
    with pytest.raises(ValueError, match="ridge must be a non-negative number"):
        LinearModel(ridge=-1).fit(train)
    with pytest.raises(ValueError, match="not between 1 and min"):
        LinearModel(n_components=100).fit(train)
    with pytest.raises(ValueError, match="gene_embedding='umap' is not one of"):
        LinearModel(gene_embedding="umap").fit(train)
    with pytest.raises(TypeError, match="perturbation_embedding must be 'pca', 'random' or a pandas DataFrame"):
        LinearModel(perturbation_embedding=np.zeros((3, 3))).fit(train)
    with pytest.raises(ValueError, match="duplicated gene symbols"):
        LinearModel(gene_embedding=pd.DataFrame(np.ones((2, 2)), index=["G1", "G1"])).fit(train)
    with pytest.raises(ValueError, match="Fewer than two training genes have a gene embedding"):
        LinearModel(gene_embedding=pd.DataFrame(np.ones((2, 2)), index=["a", "b"])).fit(train)
    with pytest.raises(ValueError, match="No training perturbation has a perturbation embedding"):
        LinearModel(perturbation_embedding=pd.DataFrame(np.ones((1, 2)), index=["nope"])).fit(train)


# ---------------------------------------------------------------------------------------- the shared contract
# Whether a model can predict a condition naming a gene it never saw in training.
PREDICTS_UNSEEN_GENES = {"no_change": True, "mean": True, "additive": False, "linear": False, "transfer": False}


def transfer_reference():
    """Another dataset with the training conditions and the double G1+G3: what a transfer model learns from."""
    base = random_training(seed=9)
    extra = np.asarray(base.X)[0] + np.random.default_rng(9).normal(0, 0.3, base.n_vars)
    return pseudobulk(np.vstack([np.asarray(base.X), extra]), [*base.obs_names, "G1+G3"], list(base.var_names))


def test_every_registered_model_is_covered_by_the_contract_test():
    assert set(PREDICTS_UNSEEN_GENES) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract(name):
    cls = MODELS[name]
    params = {"linear": {"n_components": 5}, "transfer": {"n_components": 5, "reference": transfer_reference()}}.get(
        name, {})
    model = make_model(name, **params)
    assert isinstance(model, cls)
    assert model.get_params() == ({**cls().get_params(), **params})
    request = ["G1+G3", "ctrl+G0", "ctrl", "NOVEL+ctrl", "G2+ctrl"]
    check_model_contract(model, random_training(), request, predicts_unseen=PREDICTS_UNSEEN_GENES[name])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract_rejects_bad_training_data(name):
    model = make_model(name)
    train = random_training()
    with pytest.raises(ValueError, match="No control cells in the training pseudobulk"):
        model.fit(train[train.obs_names != "ctrl"].copy())
    bad = train.copy()
    bad.X[3, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite values"):
        model.fit(bad)
    renamed = train.copy()
    renamed.obs_names = ["ctrl+G0" if n == "G0+ctrl" else n for n in renamed.obs_names]
    with pytest.raises(ValueError, match="not a canonical name \\(expected 'G0\\+ctrl'\\)"):
        model.fit(renamed)
    with pytest.raises(TypeError, match="needs a pseudobulk AnnData"):
        model.fit(np.zeros((3, 3)))


def test_make_model_and_resolve_models():
    with pytest.raises(ValueError, match="Unknown model 'lineer'. Known models: additive, cellflow, cpa, gears, .*linear, mean"):
        make_model("lineer")
    from linpert.adapters import GearsModel

    assert isinstance(make_model("gears", epochs=1), GearsModel)  # the adapters are registered too
    with pytest.raises(TypeError, match="Bad hyperparameters for model 'mean'"):
        make_model("mean", ridge=1)
    assert repr(make_model("linear", ridge=1.0)) == (
        "LinearModel(n_components=10, ridge=1.0, gene_embedding='pca', perturbation_embedding='pca', seed=None)"
    )
    custom = LinearModel(n_components=3)
    pairs = resolve_models(["mean", custom, ("lm_k3", custom), ("plain", "no_change")])
    assert [label for label, _ in pairs] == ["mean", "linear", "lm_k3", "plain"]
    assert isinstance(pairs[0][1], Mean) and pairs[1][1] is custom and isinstance(pairs[3][1], NoChange)
    with pytest.raises(ValueError, match="Model labels must be unique"):
        resolve_models(["mean", Mean()])
    with pytest.raises(TypeError, match="Cannot use 3 as a model"):
        resolve_models([3])


def test_linear_model_with_a_sparse_free_anndata_round_trip(tmp_path):
    """A model fitted on a pseudobulk read back from h5ad predicts the same as on the original."""
    train = random_training()
    path = tmp_path / "train.h5ad"
    train.write_h5ad(path)
    again = ad.read_h5ad(path)
    a = LinearModel(n_components=5).fit(train).predict(QUERY)
    b = LinearModel(n_components=5).fit(again).predict(QUERY)
    np.testing.assert_array_equal(a.X, b.X)
    pd.testing.assert_frame_equal(a.obs, b.obs)

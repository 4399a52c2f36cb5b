"""Fixtures shared by the Python tests."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import linpert

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def make_pseudobulk(n_genes=300, n_singles=12, n_doubles=20, rank=3, seed=0):
    """A small pseudobulk that follows linpert's contract: ctrl, singles of measured genes, and their doubles."""
    import anndata

    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    ctrl = rng.gamma(2.0, 0.5, n_genes)
    loadings = rng.normal(size=(n_genes, rank))
    effect = {g: loadings @ rng.normal(scale=0.3, size=rank) for g in genes[:n_singles]}
    singles = [(g,) for g in genes[:n_singles]]
    pairs = list(itertools.combinations(genes[:n_singles], 2))
    doubles = [pairs[i] for i in sorted(rng.choice(len(pairs), n_doubles, replace=False))]
    rows, names = [ctrl], ["ctrl"]
    for combo in singles + doubles:
        rows.append(ctrl + sum(effect[g] for g in combo) + rng.normal(scale=0.05, size=n_genes))
        names.append(combo[0] + "+ctrl" if len(combo) == 1 else "+".join(combo))
    order = [0] + [1 + i for i in np.argsort(names[1:], kind="stable")]
    names = [names[i] for i in order]
    kinds = ["control" if n == "ctrl" else "single" if n.endswith("+ctrl") else "double" for n in names]
    obs = pd.DataFrame(
        {
            "genes": [n.replace("+ctrl", "").replace("ctrl", "") for n in names],
            "kind": kinds,
            "n_cells": np.full(len(names), 50, dtype=np.int64),
        },
        index=pd.Index(names, name="condition"),
    )
    X = np.vstack([rows[i] for i in order])
    return anndata.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(genes)), uns={"linpert": {"dataset": "toy"}})


@pytest.fixture
def pseudobulk():
    return make_pseudobulk()


@pytest.fixture
def shared():
    if not SHARED.is_dir():
        pytest.skip(f"the shared reference folder {SHARED} is not present beside the repository")
    return SHARED


# -------------------------------------------------------------------------------------- the shared model contract
def _snapshot(obj):
    return copy.deepcopy({k: v for k, v in vars(obj).items()})


def _same(a, b) -> bool:
    """Deep equality of two attribute snapshots (arrays and frames compared by value, NaN equal to NaN)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (np.ndarray, pd.DataFrame, pd.Series, pd.Index)):
        x, y = np.asarray(a), np.asarray(b)
        return x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, ad.AnnData):  # a parameter (TransferModel's reference): its names and values
        return isinstance(b, ad.AnnData) and all(_same(getattr(a, k), getattr(b, k)) for k in ("X", "obs_names",
                                                                                                 "var_names"))
    return a == b


def check_model_contract(model, train, request: list[str], *, predicts_unseen: bool) -> None:
    """The contract every model keeps, baselines and deep-learning adapters alike (see linpert.models._base).

    ``request`` is five conditions: a double, a single written with ``ctrl`` first, ``ctrl``, a single of a gene
    (``NOVEL``) absent from training, and a single; ``predicts_unseen`` says whether the model predicts the fourth.
    """
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(model)), "no learned state before fit"

    with pytest.raises(RuntimeError, match="call fit\\(train\\) before predict"):
        model.predict([request[-1]])

    before_X, before_obs = np.asarray(train.X).copy(), train.obs.copy()
    assert model.fit(train) is model
    np.testing.assert_array_equal(train.X, before_X)
    pd.testing.assert_frame_equal(train.obs, before_obs)

    state = _snapshot(model)
    pred = model.predict(request)
    assert _same(state, _snapshot(model)), "predict must not change the model"
    np.testing.assert_array_equal(train.X, before_X)

    # rows: the requested canonical names in the requested order; columns: the training genes
    canonical = [linpert.parse_condition(c).name for c in request]
    assert list(pred.obs_names) == canonical
    assert canonical[2] == "ctrl" and canonical[3] == "NOVEL+ctrl" and "+ctrl" in canonical[1] != request[1]
    assert list(pred.var_names) == list(train.var_names)
    assert pred.X.dtype == np.float64
    reasons = pred.obs["reason"]
    assert all(isinstance(r, str) for r in reasons)
    # a row is all-NaN exactly when a reason is given
    for i, reason in enumerate(reasons):
        assert np.isnan(pred.X[i]).all() if reason else np.isfinite(pred.X[i]).all(), (model, request[i])
    novel = reasons["NOVEL+ctrl"]
    assert (novel == "") == predicts_unseen
    if novel:
        assert "NOVEL" in novel
    # pure: the same answer again, and a subset of rows gives the same rows
    np.testing.assert_array_equal(model.predict(request).X, pred.X)
    np.testing.assert_allclose(model.predict([canonical[4], "ctrl"]).X, pred.X[[4, 2]], rtol=1e-12)
    assert model.predict([]).shape == (0, train.n_vars)

    with pytest.raises(TypeError, match="takes a list of condition names"):
        model.predict(canonical[1])
    with pytest.raises(ValueError, match="requested more than once"):
        model.predict([canonical[1], request[1]])
    with pytest.raises(ValueError, match="not a gene symbol"):
        model.predict([canonical[4].replace("+ctrl", "+no gene")])




def pytest_collection_modifyitems(config, items):
    """Doctests of linpert's modules run with the tests (pyproject: ``--doctest-modules``). A docstring whose every
    example is marked ``+SKIP`` (it needs a downloaded dataset or a finished run folder) is documentation, not a
    test: it is deselected rather than reported as a skipped test."""
    import doctest

    from _pytest.doctest import DoctestItem

    def documentation_only(item) -> bool:
        examples = item.dtest.examples if isinstance(item, DoctestItem) else []
        return bool(examples) and all(example.options.get(doctest.SKIP) for example in examples)

    dropped = [item for item in items if documentation_only(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not documentation_only(item)]

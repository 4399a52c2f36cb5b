"""Fixtures shared by the Python tests."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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

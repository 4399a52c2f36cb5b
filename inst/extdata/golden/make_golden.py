"""Regenerate the golden values that tests/python/test_golden.py and tests/testthat/test-golden.R both assert.

Run from the repository root: ``.venv/bin/python inst/extdata/golden/make_golden.py``. It writes
``pseudobulk.csv`` (a small simulated Norman-like pseudobulk, 10 decimals) and ``golden.json`` (computed from
that CSV as read back, so both suites start from the same numbers). Regenerate only when linpert's numbers are
meant to change, and say why in the commit.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

import linpert
from linpert.interactions import call_interactions
from linpert.metrics import score, top_expressed_genes
from linpert.models import make_model
from linpert.splits import double_split

HERE = Path(__file__).parent
N_READOUT = 50  # read-out genes of the scores: the highest control means
MODELS = {"no_change": {}, "additive": {}, "linear": {"n_components": 5, "ridge": 0.1}}


def read_pseudobulk(path: Path = HERE / "pseudobulk.csv") -> ad.AnnData:
    """The golden pseudobulk as the shared contract's AnnData (conditions × genes)."""
    frame = pd.read_csv(path, index_col="condition")
    table = linpert.condition_table(frame.index)
    obs = pd.DataFrame(
        {"genes": ["+".join(g) for g in table["genes"]], "kind": table["kind"].astype(str), "n_cells": 0},
        index=pd.Index(frame.index, name="condition"),
    )
    return ad.AnnData(frame.to_numpy(dtype=np.float64), obs=obs, var=pd.DataFrame(index=frame.columns))


def golden(pb: ad.AnnData) -> dict:
    split = double_split(pb.obs_names, seed=1)
    ctrl = pb[pb.obs_names == "ctrl"].X.ravel()
    readout = top_expressed_genes(ctrl, n_genes=N_READOUT)
    scored = list(split.test + split.val)
    observed = pb[scored].X[:, readout]
    scores = {}
    for name, params in MODELS.items():
        model = make_model(name, **params).fit(pb[list(split.train)].copy())
        table = score(model.predict(scored).X[:, readout], observed, ctrl[readout])
        scores[name] = {
            "params": params,
            "perturbation": scored,
            "l2": _json_numbers(table["l2"]),
            "pearson_delta": _json_numbers(table["pearson_delta"]),  # NaN (null) where the prediction is ctrl
        }
    calls = call_interactions(pb, n_genes=pb.n_vars, backend="python")
    return {
        "readout_genes": [str(g) for g in pb.var_names[readout]],
        "double_split_seed1": {"train": list(split.train), "val": list(split.val), "test": list(split.test)},
        "scores": scores,
        "interactions": {
            "n_genes": int(pb.n_vars),
            "lower": calls.lower,
            "upper": calls.upper,
            "counts": {k: int(v) for k, v in calls.counts.items()},
            "n_pairs": len(calls.table),
        },
    }


def _json_numbers(values) -> list:
    return [None if np.isnan(v) else round(float(v), 12) for v in values]


def main() -> None:
    cells = linpert.datasets.simulate(
        "norman", n_genes=120, n_singles=12, n_doubles=24, cells_per_condition=15, n_control_cells=100, seed=11
    )
    pb = linpert.pseudobulk(cells)
    frame = pd.DataFrame(pb.X, index=pb.obs_names, columns=pb.var_names)
    frame.to_csv(HERE / "pseudobulk.csv", index_label="condition", float_format="%.10f")
    document = golden(read_pseudobulk())
    fd, tmp = tempfile.mkstemp(dir=HERE, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(document, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, HERE / "golden.json")


if __name__ == "__main__":
    main()

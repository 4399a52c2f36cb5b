"""Run Arc's cell-eval on numbers linpert also scores (run inside an environment that has cell-eval).

    python cell_eval_peer.py INPUT.npz OUTPUT.json

INPUT holds ``predicted``, ``observed`` (perturbations × genes), ``control`` (genes), ``perturbations`` and ``genes``
(names; a perturbation named like a gene targets it, as cell-eval matches). Each perturbation and the control become
one cell of cell-eval's real and predicted AnnData, so its pseudobulks are exactly these rows. OUTPUT gets, per
metric (``discrimination_l1``, ``_l2``, ``_cosine``), the values per perturbation and the seconds cell-eval took.
"""

from __future__ import annotations

import json
import sys
import time

import anndata as ad
import numpy as np
import pandas as pd
from cell_eval._types import PerturbationAnndataPair
from cell_eval.metrics._anndata import discrimination_score


def main(source: str, target: str) -> None:
    data = np.load(source, allow_pickle=False)
    perts, genes = [str(p) for p in data["perturbations"]], [str(g) for g in data["genes"]]
    obs = pd.DataFrame({"perturbation": [*perts, "non-targeting"]}, index=[f"c{i}" for i in range(len(perts) + 1)])
    var = pd.DataFrame(index=genes)
    real = ad.AnnData(np.vstack([data["observed"], data["control"]]).astype(np.float64), obs=obs, var=var)
    pred = ad.AnnData(np.vstack([data["predicted"], data["control"]]).astype(np.float64), obs=obs.copy(), var=var)
    pair = PerturbationAnndataPair(real=real, pred=pred, pert_col="perturbation", control_pert="non-targeting")
    out = {}
    for metric in ("l1", "l2", "cosine"):
        start = time.perf_counter()
        values = discrimination_score(pair, metric=metric, exclude_target_gene=True)
        out[f"discrimination_{metric}"] = {"values": [values[p] for p in perts],
                                           "seconds": time.perf_counter() - start}
    with open(target, "w") as handle:
        json.dump(out, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

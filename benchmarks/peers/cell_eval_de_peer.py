"""Run cell-eval's differential expression (pdex, as cell-eval calls it) and its overlap_at_N on cells linpert also
tests (run inside an environment that has cell-eval).

    python cell_eval_de_peer.py REAL.h5ad PRED.h5ad|- OUTPUT.npz

Both files hold log1p-normalised cells with ``obs["target_gene"]`` (``non-targeting`` for control cells). OUTPUT
gets, per observed perturbation (``perturbations``) and gene (``genes``), pdex's ``log2_fold_change``, ``statistic``,
``p_value`` and ``fdr`` on the real cells, cell-eval's ``overlap`` (overlap_at_N, the predicted cells' DE genes
against the real ones'; not with ``-`` for PRED), and ``seconds``: the time pdex took on the real cells.
"""

from __future__ import annotations

import sys
import time

import anndata as ad
import numpy as np
from cell_eval._types import initialize_de_comparison
from pdex import pdex

KEY, CONTROL = "target_gene", "non-targeting"


def _de(cells):
    # cell-eval's defaults for log-normalised data (_build_pdex_kwargs): reference mode, geometric means, epsilon 0
    return pdex(cells, groupby=KEY, mode="ref", reference=CONTROL, is_log1p=True, geometric_mean=True, epsilon=0.0,
                threads=0)


def main(real_path: str, pred_path: str, target: str) -> None:
    real = ad.read_h5ad(real_path)
    start = time.perf_counter()
    de_real = _de(real)
    seconds = time.perf_counter() - start
    overlap = {}
    if pred_path != "-":
        comparison = initialize_de_comparison(real=de_real, pred=_de(ad.read_h5ad(pred_path)))
        overlap = comparison.compute_overlap(k=None, metric="overlap", fdr_threshold=0.05)
    table = de_real.to_pandas()
    perturbations = list(dict.fromkeys(table["target"].astype(str)))
    genes = list(real.var_names)
    wide = {name: table.pivot(index="target", columns="feature", values=name).loc[perturbations, genes].to_numpy()
            for name in ("log2_fold_change", "statistic", "p_value", "fdr")}
    np.savez(target, perturbations=np.array(perturbations, dtype=str), genes=np.array(genes, dtype=str),
             overlap=np.array([overlap.get(p, np.nan) for p in perturbations]), seconds=seconds, **wide)


if __name__ == "__main__":
    main(*sys.argv[1:4])

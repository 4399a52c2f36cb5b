"""Cell-level data for the deep-learning workers: GEARS' format, its DE keys, counts, the training/validation lists.

Everything here is numpy/anndata work done in the main process, so it is tested without any model stack.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._conditions import CONTROL, canonical_names, parse_condition

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = [
    "de_keys",
    "gears_cells",
    "load_cells",
    "reconstruct_counts",
    "validation_conditions",
]

#: How many top DE genes GEARS keeps per condition (``top_non_dropout_de_20``, ``top_non_zero_de_20``).
N_TOP_DE = 20


def load_cells(cells: Any, *, condition_key: str = "condition") -> AnnData:
    """Read cells given as an AnnData or an ``.h5ad`` path; check the condition column and the gene symbols.

    Returns a copy-free view where possible: the caller subsets before writing anything.
    """
    import anndata

    if cells is None:
        raise ValueError(
            "This model needs cell-level data: pass cells=<AnnData or .h5ad path in GEARS' format> to the "
            "constructor or to fit()."
        )
    if isinstance(cells, (str, os.PathLike)):
        if not os.path.isfile(cells):
            raise FileNotFoundError(f"cells={str(cells)!r} is not a file. Give an .h5ad path or an AnnData.")
        cells = anndata.read_h5ad(cells)
    if not isinstance(cells, anndata.AnnData):
        raise TypeError(f"cells must be an AnnData or an .h5ad path, got {type(cells).__name__}.")
    if condition_key not in cells.obs:
        raise ValueError(
            f"The cells have no obs[{condition_key!r}] column (columns: {list(cells.obs.columns)[:8]}). "
            "Pass condition_key= naming the column that holds ctrl / A+ctrl / A+B."
        )
    return cells


def per_cell_conditions(raw: Any) -> pd.Series:
    """Canonical condition name of every cell (``ctrl+A`` -> ``A+ctrl``), positionally aligned with ``raw``."""
    raw = np.asarray(raw, dtype=str)
    return pd.Series(canonical_names(raw).reindex(raw).to_numpy(), dtype=object)


def gene_symbols(cells: AnnData) -> pd.Index:
    """The cells' gene symbols: ``var['gene_name']`` when present (GEARS' format), else ``var_names``."""
    symbols = cells.var["gene_name"] if "gene_name" in cells.var else cells.var_names
    return pd.Index(np.asarray(symbols, dtype=str))


def validation_conditions(train: Sequence[str], validation: float | Sequence[str], *, seed: int) -> list[str]:
    """The conditions a worker validates on (for best-epoch choice / early stopping), never the test split.

    A float holds out that fraction (at least one) of the training perturbations, drawn with ``seed``: of the
    combinations when there are at least two (a held-out single would leave its gene untrained, and every double
    with it unpredictable), else of the singles. A list of names is used as given (the paper's ``split.val``) and
    must not overlap ``train``.

    Examples
    --------
    >>> validation_conditions(["ctrl", "A+ctrl", "B+ctrl", "C+ctrl"], 0.3, seed=0)
    ['C+ctrl']
    >>> validation_conditions(["ctrl", "A+ctrl", "B+ctrl", "C+ctrl", "A+B", "A+C"], 0.3, seed=0)
    ['A+C']
    >>> validation_conditions(["ctrl", "A+ctrl"], ["B+ctrl"], seed=0)
    ['B+ctrl']
    """
    if isinstance(validation, (int, float)) and not isinstance(validation, bool):
        if not 0 < validation < 1:
            raise ValueError(f"validation={validation!r}: a fraction must lie in (0, 1), e.g. 0.1.")
        perturbations = sorted(c for c in train if c != CONTROL)
        combinations = [c for c in perturbations if len(parse_condition(c).genes) > 1]
        if len(combinations) >= 2:
            perturbations = combinations
        n = max(1, int(round(validation * len(perturbations))))
        if n >= len(perturbations):
            raise ValueError(
                f"Holding out {n} of {len(perturbations)} training perturbations for validation leaves none to "
                "train on; lower validation= or pass a list of validation conditions."
            )
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(perturbations, n, replace=False).tolist())
    if isinstance(validation, str):
        raise TypeError(f"validation must be a fraction or a list of condition names, not the string {validation!r}.")
    names = list(canonical_names([str(v) for v in validation]).unique())
    overlap = sorted(set(names) & set(train))
    if overlap:
        raise ValueError(f"Validation conditions {overlap[:5]} are also training conditions; keep them disjoint.")
    if not names:
        raise ValueError("validation= is empty; the worker needs at least one validation condition.")
    return names


def gears_cells(
    cells: AnnData,
    conditions: Sequence[str],
    *,
    condition_key: str = "condition",
    genes: Sequence[str] | None = None,
    de: bool = True,
    counts: bool = False,
) -> AnnData:
    """The cells of ``conditions`` (``ctrl`` always included) in GEARS' format, ready for ``perturb_processed.h5ad``.

    Parameters
    ----------
    cells
        Cell-level data; conditions in ``obs[condition_key]`` in any spelling GEARS uses (``ctrl+A`` is merged
        into ``A+ctrl``), symbols in ``var['gene_name']`` or ``var_names``.
    conditions
        Canonical names of the conditions to keep.
    genes
        Gene symbols to keep, in this order (default: all).
    de
        Compute the ``uns`` keys GEARS reads (see :func:`de_keys`).
    counts
        Add ``layers['counts']`` reconstructed from the log data (:func:`reconstruct_counts`).

    Returns
    -------
    AnnData
        ``X`` CSR float32; ``obs``: ``condition``, ``cell_type``, ``dose_val``, ``control``, ``condition_name``;
        ``var``: index gene IDs, ``gene_name``.
    """
    import anndata

    canonical = per_cell_conditions(cells.obs[condition_key])
    wanted = {parse_condition(str(c)).name for c in conditions} | {CONTROL}
    missing = sorted(wanted - set(canonical.unique()))
    if missing:
        raise ValueError(
            f"The cells have no cells for {len(missing)} conditions the model needs, e.g. {missing[:5]}. "
            "Pass the cell-level data the pseudobulk was computed from."
        )
    keep = np.flatnonzero(canonical.isin(wanted).to_numpy())
    symbols = gene_symbols(cells)
    if genes is None:
        columns = np.arange(len(symbols))
    else:
        position = pd.Series(np.arange(len(symbols)), index=symbols)
        position = position[~position.index.duplicated()]
        absent = [g for g in genes if g not in position.index]
        if absent:
            raise ValueError(
                f"{len(absent)} training genes are not among the cells' genes, e.g. {absent[:5]}. "
                "Use cells and pseudobulk from the same dataset."
            )
        columns = position.loc[list(genes)].to_numpy()
    X = cells.X[keep][:, columns] if genes is not None else cells.X[keep]
    X = sparse.csr_matrix(X, dtype=np.float32)
    X.sort_indices()

    condition = canonical.to_numpy()[keep]
    cell_type = (
        np.asarray(cells.obs["cell_type"], dtype=str)[keep] if "cell_type" in cells.obs else np.full(keep.size, "cell")
    )
    is_ctrl = condition == CONTROL
    dose_val = np.where(is_ctrl, "1", "1+1")
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(condition),
            "cell_type": pd.Categorical(cell_type),
            "dose_val": pd.Categorical(dose_val),
            "control": is_ctrl.astype(np.int64),
            "condition_name": pd.Categorical([f"{t}_{c}_{d}" for t, c, d in zip(cell_type, condition, dose_val)]),
        },
        index=pd.Index(np.asarray(cells.obs_names)[keep].astype(str)),
    )
    var_ids = np.asarray(cells.var_names, dtype=str)[columns]
    var = pd.DataFrame({"gene_name": symbols[columns].to_numpy()}, index=pd.Index(var_ids))
    out = anndata.AnnData(X=X, obs=obs, var=var)
    if counts:
        out.layers["counts"] = reconstruct_counts(X)
    if de:
        out.uns.update(de_keys(out))
    return out


def de_keys(adata: AnnData) -> dict[str, dict[str, np.ndarray]]:
    """The differential-expression ``uns`` keys GEARS reads, computed with a deterministic Welch t ranking.

    GEARS computes them with scanpy's ``rank_genes_groups`` (t-test against ``ctrl``, ranked by |score|, all genes);
    here every perturbed condition's genes are ranked by the absolute Welch t statistic of its cells against the
    control cells (ties by gene order, undefined statistics as 0), and the other keys follow GEARS'
    ``get_dropout_non_zero_genes`` exactly.

    Returns
    -------
    dict
        ``rank_genes_groups_cov_all`` (condition_name -> all gene IDs, most DE first), ``non_zeros_gene_idx``,
        ``non_dropout_gene_idx`` (sorted gene positions), ``top_non_dropout_de_20``, ``top_non_zero_de_20`` (gene
        IDs), each keyed by ``condition_name`` of the perturbed conditions.
    """
    X = sparse.csr_matrix(adata.X)
    condition = np.asarray(adata.obs["condition"], dtype=str)
    names = dict(zip(condition, np.asarray(adata.obs["condition_name"], dtype=str)))
    gene_ids = np.asarray(adata.var_names, dtype=str)
    ctrl_mean, ctrl_var, n_ctrl = _moments(X[condition == CONTROL])
    keys: dict[str, dict[str, np.ndarray]] = {
        k: {}
        for k in (
            "rank_genes_groups_cov_all",
            "non_zeros_gene_idx",
            "non_dropout_gene_idx",
            "top_non_dropout_de_20",
            "top_non_zero_de_20",
        )
    }
    for cond in sorted(set(condition) - {CONTROL}):
        mean, var, n = _moments(X[condition == cond])
        se = np.sqrt(var / n + ctrl_var / n_ctrl)
        t = np.divide(mean - ctrl_mean, se, out=np.zeros_like(mean), where=se > 0)
        order = np.argsort(-np.abs(t), kind="stable")
        non_zero = np.flatnonzero(mean != 0)
        non_dropout = np.sort(np.concatenate([non_zero, np.flatnonzero((mean == 0) & (ctrl_mean == 0))]))
        name = names[cond]
        keys["rank_genes_groups_cov_all"][name] = gene_ids[order]
        keys["non_zeros_gene_idx"][name] = non_zero
        keys["non_dropout_gene_idx"][name] = non_dropout
        keys["top_non_dropout_de_20"][name] = gene_ids[order[np.isin(order, non_dropout)][:N_TOP_DE]]
        keys["top_non_zero_de_20"][name] = gene_ids[order[np.isin(order, non_zero)][:N_TOP_DE]]
    return keys


def _moments(X: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-gene mean and unbiased variance (0 for a single cell) of the rows of a sparse matrix."""
    n = X.shape[0]
    mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
    mean_sq = np.asarray(X.multiply(X).mean(axis=0), dtype=np.float64).ravel()
    var = np.maximum(mean_sq - mean**2, 0.0) * (n / (n - 1) if n > 1 else 0.0)
    return mean, var, n


def raw_counts(cells: AnnData, rows: np.ndarray | None = None) -> Any:
    """The raw counts of ``cells`` (of ``rows`` only, when given): ``layers['counts']``, else reconstructed from the
    log data (:func:`reconstruct_counts`, cell by cell, so a subset costs only its rows)."""
    take = slice(None) if rows is None else rows
    return cells.layers["counts"][take] if "counts" in cells.layers else reconstruct_counts(cells.X[take])


def reconstruct_counts(X) -> sparse.csr_matrix:
    """Counts from log-normalised data, as CPA needs them: ``round(expm1(x) / min nonzero expm1(x))`` per cell.

    ``log1p(normalize_total(counts))`` scales each cell's counts by one factor, so the smallest non-zero value of
    ``expm1(x)`` in a cell is that factor times its smallest count, which is 1 in any cell with a singleton count
    (nearly every cell of UMI data).

    Examples
    --------
    >>> counts = sparse.csr_matrix(np.array([[1, 0, 3], [2, 1, 0]]))
    >>> X = counts.multiply(1 / counts.sum(axis=1)).multiply(10).tocsr(); X.data = np.log1p(X.data)
    >>> reconstruct_counts(X).toarray()
    array([[1, 0, 3],
           [2, 1, 0]], dtype=int32)
    """
    X = sparse.csr_matrix(X, dtype=np.float64, copy=True)
    X.data = np.expm1(X.data)
    out = X.copy()
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        row = X.data[lo:hi]
        positive = row[row > 0]
        if positive.size:
            out.data[lo:hi] = np.rint(row / positive.min())
    out = sparse.csr_matrix(out, dtype=np.int32)
    out.eliminate_zeros()
    return out

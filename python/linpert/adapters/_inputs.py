"""The perturbed inputs the paper fed to the foundation models that have no perturbation head of their own.

- UCE and scBERT (:func:`overwrite_targets`): the control cells with the target genes' expression overwritten by the
  values observed in the perturbed cells. The paper says so plainly, and accepts the test-data leakage this implies
  ("we tested the model under the best conditions").
- Geneformer (:func:`rank_value_encoding`, :func:`perturb_rank_encoding`): a cell is the list of its genes' tokens
  ranked by expression normalised by each gene's median over the corpus; in-silico over-expression moves the targets'
  tokens to the front (CRISPRa), deletion removes them (CRISPRi / knock-out), as Geneformer's ``InSilicoPerturber``
  does.

The cell embeddings of these inputs, averaged per condition, are what :class:`~linpert.adapters.EmbeddingDecoder`
decodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._conditions import CONTROL, parse_condition
from ._cells import gene_symbols, per_cell_conditions, raw_counts

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = ["overwrite_targets", "perturb_rank_encoding", "perturbed_counts", "rank_value_encoding"]

#: Geneformer's input size (its 2,048-token context) and the total its normalisation scales each cell to.
GENEFORMER_MAX_LEN = 2048
GENEFORMER_TARGET_SUM = 10_000


def overwrite_targets(
    cells: AnnData,
    conditions: Sequence[str] | None = None,
    *,
    n_control_cells: int | None = None,
    condition_key: str = "condition",
    seed: int = 0,
) -> AnnData:
    """UCE's and scBERT's perturbed inputs: control cells whose target genes carry the perturbed cells' values.

    For each condition, the control cells (all of them, or ``n_control_cells`` drawn once with ``seed`` and used for
    every condition) are copied, and the column of each target gene is overwritten with that gene's values in the
    condition's cells: control cell ``i`` gets the value of perturbed cell ``i mod n`` (``n`` perturbed cells, in
    their order in ``cells``), so every perturbed value is used and nothing is random.

    Parameters
    ----------
    cells
        Cell-level data with every requested condition and ``ctrl``; symbols in ``var['gene_name']`` or
        ``var_names``.
    conditions
        Canonical names to build (default: every perturbed condition of ``cells``).
    n_control_cells
        How many control cells each condition's input has (default: all).
    condition_key
        The column of ``cells.obs`` with the conditions.
    seed
        Draws the control cells when ``n_control_cells`` is given.

    Returns
    -------
    AnnData
        The inputs stacked condition by condition: ``obs[condition_key]`` the condition, ``obs['control_cell']`` the
        control cell it was made from; ``X`` sparse when ``cells.X`` is. A condition whose target gene is not
        measured cannot be built: it raises, naming the gene.

    Examples
    --------
    >>> import anndata
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0], [9.0, 0.5], [7.0, 0.0]])
    >>> obs = pd.DataFrame({"condition": ["ctrl", "ctrl", "A+ctrl", "A+ctrl"]}, index=["c1", "c2", "p1", "p2"])
    >>> cells = anndata.AnnData(X, obs=obs, var=pd.DataFrame(index=["A", "B"]))
    >>> overwrite_targets(cells).X.tolist()
    [[9.0, 2.0], [7.0, 4.0]]
    """
    import anndata

    condition = per_cell_conditions(cells.obs[condition_key]).to_numpy()
    symbols = gene_symbols(cells)
    ctrl_rows = np.flatnonzero(condition == CONTROL)
    if ctrl_rows.size == 0:
        raise ValueError(f"The cells have no control cells (obs[{condition_key!r}] == 'ctrl') to perturb.")
    if n_control_cells is not None:
        if not 1 <= n_control_cells <= ctrl_rows.size:
            raise ValueError(f"n_control_cells must lie in [1, {ctrl_rows.size}] (the control cells), "
                             f"got {n_control_cells}.")
        ctrl_rows = np.sort(np.random.default_rng(seed).choice(ctrl_rows, n_control_cells, replace=False))
    if conditions is None:
        conditions = sorted(set(condition) - {CONTROL})
    base = _dense(cells.X[ctrl_rows])
    blocks, labels = [], []
    for name in conditions:
        name = parse_condition(str(name)).name
        rows = np.flatnonzero(condition == name)
        if rows.size == 0:
            raise ValueError(f"The cells have no cells of {name}; give the cells the pseudobulk was made from.")
        targets = [g for g in parse_condition(name).genes]
        absent = [g for g in targets if g not in symbols]
        if absent:
            raise ValueError(f"{name}: {', '.join(absent)} not measured, so its expression cannot be overwritten.")
        columns = symbols.get_indexer(targets)
        block = base.copy()
        observed = _dense(cells.X[rows][:, columns])
        block[:, columns] = observed[np.arange(len(ctrl_rows)) % rows.size]
        blocks.append(block)
        labels.append(name)
    X = np.vstack(blocks) if blocks else np.zeros((0, cells.n_vars))
    obs = pd.DataFrame(
        {condition_key: np.repeat(labels, len(ctrl_rows)),
         "control_cell": np.tile(np.asarray(cells.obs_names)[ctrl_rows], len(labels))},
        index=pd.Index([f"{c}|{cell}" for c in labels for cell in np.asarray(cells.obs_names)[ctrl_rows]]),
    )
    if sparse.issparse(cells.X):
        X = sparse.csr_matrix(X)
    return anndata.AnnData(X=X, obs=obs, var=cells.var.copy())


def perturbed_counts(cells: AnnData, conditions: Sequence[str] | None, *, n_control_cells: int | None,
                     condition_key: str, seed: int) -> AnnData:
    """UCE's and scBERT's input as raw counts by gene symbol: :func:`overwrite_targets` for each condition, and the
    unperturbed control cells it drew from as ``ctrl``. Counts are ``layers['counts']``, else reconstructed from
    the log data."""
    import anndata

    counts = raw_counts(cells)
    labels = per_cell_conditions(cells.obs[condition_key]).to_numpy()
    symbols = gene_symbols(cells)
    plain = anndata.AnnData(X=counts, obs=pd.DataFrame({"condition": labels}, index=cells.obs_names),
                            var=pd.DataFrame(index=symbols))
    plain = plain[:, ~symbols.duplicated()].copy()
    perturbed = overwrite_targets(plain, None if conditions is None else [c for c in conditions if c != CONTROL],
                                  n_control_cells=n_control_cells, seed=seed)
    ctrl_cells = perturbed.obs["control_cell"].unique()
    ctrl = plain[list(ctrl_cells)].copy()
    ctrl.obs = pd.DataFrame({"condition": CONTROL, "control_cell": ctrl.obs_names},
                            index=[f"{CONTROL}|{c}" for c in ctrl.obs_names])
    out = anndata.concat([ctrl, perturbed])
    out.X = out.X.astype(np.int64) if not hasattr(out.X, "tocsr") else out.X.tocsr().astype(np.int64)
    return out


def _dense(X: Any) -> np.ndarray:
    return np.asarray(X.toarray() if sparse.issparse(X) else X, dtype=np.float64)


def rank_value_encoding(
    counts: Any,
    genes: Sequence[str],
    *,
    gene_medians: Mapping[str, float],
    token_ids: Mapping[str, int],
    max_len: int = GENEFORMER_MAX_LEN,
) -> list[np.ndarray]:
    """Geneformer's input of each cell: its genes' tokens by decreasing normalised expression.

    As Geneformer's ``TranscriptomeTokenizer``: counts are scaled to :data:`GENEFORMER_TARGET_SUM` per cell (over
    all genes), divided by each gene's median over the pretraining corpus, and the genes with a non-zero value
    and a token are ranked, highest first (ties: the order of ``genes``), and truncated to ``max_len``.

    Parameters
    ----------
    counts
        Cells × genes raw counts (dense or sparse).
    genes
        The columns' gene identifiers (Geneformer's dictionaries use Ensembl IDs).
    gene_medians, token_ids
        Geneformer's ``gene_median_dictionary`` and ``token_dictionary``.
    max_len
        The input size.

    Returns
    -------
    list of numpy.ndarray
        One int64 array of token ids per cell.

    Examples
    --------
    >>> counts = np.array([[4, 0, 1, 5]])
    >>> rank_value_encoding(counts, ["a", "b", "c", "d"], gene_medians={"a": 1.0, "b": 1.0, "c": 0.1, "d": 10.0},
    ...                     token_ids={"a": 11, "b": 12, "c": 13, "d": 14})[0].tolist()
    [13, 11, 14]
    """
    genes = [str(g) for g in genes]
    X = sparse.csr_matrix(counts, dtype=np.float64)
    if X.shape[1] != len(genes):
        raise ValueError(f"counts has {X.shape[1]} columns but {len(genes)} genes were given.")
    if X.nnz and X.data.min() < 0:
        raise ValueError("rank_value_encoding needs raw counts; the matrix has negative values.")
    known = np.array([g in gene_medians and g in token_ids for g in genes])
    if not known.any():
        raise ValueError(f"None of the {len(genes)} genes (e.g. {genes[:3]}) is in Geneformer's dictionaries; "
                         "Geneformer keys genes by Ensembl ID.")
    medians = np.array([gene_medians[g] if k else 1.0 for g, k in zip(genes, known)], dtype=np.float64)
    tokens = np.array([token_ids[g] if k else -1 for g, k in zip(genes, known)], dtype=np.int64)
    totals = np.asarray(X.sum(axis=1)).ravel()
    encoded = []
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        columns, values = X.indices[lo:hi], X.data[lo:hi]
        keep = known[columns] & (values > 0)
        columns = columns[keep]
        scaled = values[keep] / totals[i] * GENEFORMER_TARGET_SUM / medians[columns]
        order = np.lexsort((columns, -scaled))  # highest first; ties in gene order
        encoded.append(tokens[columns[order]][:max_len])
    return encoded


def perturb_rank_encoding(
    tokens: Sequence[int], targets: Sequence[int], *, mode: str, max_len: int = GENEFORMER_MAX_LEN
) -> np.ndarray:
    """Geneformer's in-silico perturbation of one rank-value encoded cell.

    ``mode="overexpress"`` puts the target tokens first, in the given order, and removes them from where they
    were (a target the cell did not express is added); ``mode="delete"`` removes them. The result is truncated to
    ``max_len``.

    Examples
    --------
    >>> perturb_rank_encoding([5, 6, 7, 8], [7, 9], mode="overexpress").tolist()
    [7, 9, 5, 6, 8]
    >>> perturb_rank_encoding([5, 6, 7, 8], [7, 9], mode="delete").tolist()
    [5, 6, 8]
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    targets = np.asarray(list(dict.fromkeys(int(t) for t in targets)), dtype=np.int64)
    rest = tokens[~np.isin(tokens, targets)]
    if mode == "overexpress":
        return np.concatenate([targets, rest])[:max_len]
    if mode == "delete":
        return rest[:max_len]
    raise ValueError(f"mode={mode!r}: use 'overexpress' (CRISPRa) or 'delete' (CRISPRi, knock-out).")

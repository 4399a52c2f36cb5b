"""Differentially expressed genes from cells, and how many of them a prediction recovers (cell-eval's overlap).

:func:`differential_expression` tests every perturbation's cells against the control cells, gene by gene, as
cell-eval does through pdex: a two-sided Mann-Whitney U test (Wilcoxon rank-sum; normal approximation with tie and
continuity corrections, p = 1 where all values tie), Benjamini-Hochberg within each perturbation (the
arithmetic of ``statsmodels.stats.multitest``), and the log2 fold change of the geometric means,
``log2(expm1(mean_p) / expm1(mean_ctrl))`` on log1p-normalised data (0 where both are 0).

The rank sums come from one pass per gene over its sorted non-zero values, all perturbations at once, compiled with
numba where it is installed; the NumPy fallback calls scipy's ``mannwhitneyu`` on each perturbation, vectorised over
genes. Both give the same numbers.

:func:`de_overlap` is cell-eval's ``overlap_at_N``: of the observed DE genes (FDR below 5 %, ordered by absolute
log2 fold change), the share that are among the prediction's top as many genes. A prediction given as cells is
tested the same way; one given as a profile (a pseudobulk, as every linpert model predicts) ranks the genes by its
absolute predicted change of mean log expression, the scale the paper's metrics use. (Its log2 fold change of
geometric means would rank first every gene absent from the control cells, however few cells express it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._compiled import Kernels, numba, unsigned
from .._conditions import CONTROL

#: The FDR below which a gene is called differentially expressed (cell-eval's default).
FDR = 0.05


@dataclass(frozen=True)
class ByGene:
    """The cells' non-zero values gene by gene, each gene's sorted by value (float32 where the cells are): what the
    compiled kernel walks.

    Sorting is the costly part of a rank test; done once, it serves every test of the same cells with other groups
    (the replicate ceiling's rounds)."""

    indptr: np.ndarray
    rows: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class DifferentialExpression:
    """Per perturbation (rows) and gene (columns): the test of its cells against the control cells."""

    log2_fold_change: pd.DataFrame
    statistic: pd.DataFrame  # Mann-Whitney U of the perturbation's cells
    p_value: pd.DataFrame
    fdr: pd.DataFrame  # Benjamini-Hochberg within each perturbation

    def tidy(self) -> pd.DataFrame:
        """One row per perturbation and gene, like pdex's table."""
        columns = {name: getattr(self, name).to_numpy().ravel()
                   for name in ("log2_fold_change", "statistic", "p_value", "fdr")}
        index = self.fdr.index
        return pd.DataFrame({"perturbation": np.repeat(index.to_numpy(), self.fdr.shape[1]),
                             "gene": np.tile(self.fdr.columns.to_numpy(), len(index)), **columns})

    def rows(self, perturbations) -> DifferentialExpression:
        """The tests of these perturbations only."""
        return DifferentialExpression(*(getattr(self, name).loc[perturbations]
                                        for name in ("log2_fold_change", "statistic", "p_value", "fdr")))

    def significant(self, fdr: float = FDR) -> pd.Series:
        """How many genes each perturbation changes at the given FDR."""
        return (self.fdr < fdr).sum(axis=1).rename("n_de")


def differential_expression(cells: Any, *, condition_key: str = "condition", control: str = CONTROL,
                            sorted_values: ByGene | None = None) -> DifferentialExpression:
    """Test each condition's cells against the control cells, every gene (see the module's description).

    Parameters
    ----------
    cells
        Cells × genes AnnData, log1p-normalised (dense or sparse), with ``obs[condition_key]``.
    control
        The control cells' label; every other label is a perturbation.
    sorted_values
        :func:`by_gene` of ``cells.X``, where the caller tests the same cells again (sorting is the costly part).

    Examples
    --------
    >>> import anndata
    >>> X = np.array([[0, 1], [0, 2], [0, 1], [3, 1], [4, 2], [5, 1]], dtype=float)
    >>> cells = anndata.AnnData(X, obs=pd.DataFrame({"condition": ["ctrl"] * 3 + ["A+ctrl"] * 3},
    ...                                             index=[str(i) for i in range(6)]))
    >>> de = differential_expression(cells)
    >>> de.p_value.round(3).to_numpy().tolist()
    [[0.064, 1.0]]
    """
    labels = cells.obs[condition_key].astype(str).to_numpy()
    if control not in set(labels):
        raise ValueError(f"The cells have no control cells ({control!r} in obs[{condition_key!r}]) to test against.")
    conditions = [c for c in dict.fromkeys(labels) if c != control]
    codes = pd.Categorical(labels, categories=[control, *conditions]).codes.astype(np.int64)
    X = cells.X.to_memory() if hasattr(cells.X, "to_memory") else cells.X
    return grouped_de(X, codes, conditions, cells.var_names.astype(str), sorted_values=sorted_values)


def grouped_de(X, codes: np.ndarray, conditions: list[str], genes: pd.Index, *,
               sorted_values: ByGene | None = None, means: np.ndarray | None = None) -> DifferentialExpression:
    """:func:`differential_expression` of the cells (rows of ``X``) with ``codes``: 0 control, ``1 + i`` for
    ``conditions[i]``, -1 left out. ``sorted_values``: :func:`by_gene` of ``X``, for a caller that tests the same
    cells again with other codes; ``means``: the codes' mean expression (codes × genes), where the caller has it."""
    return grouped_de_rounds(X, codes[None], conditions, genes, sorted_values=sorted_values,
                             means=None if means is None else [means])[0]


def grouped_de_rounds(X, codes: np.ndarray, conditions: list[str], genes: pd.Index, *,
                      sorted_values: ByGene | None = None, means: list[np.ndarray] | None = None
                      ) -> list[DifferentialExpression]:
    """:func:`grouped_de` once per row of ``codes`` (rounds × cells), every round's rank sums from one walk over the
    sorted values (the replicate ceiling's rounds); ``means``: each round's, where the caller has them."""
    sizes = np.stack([np.bincount(row[row >= 0], minlength=len(conditions) + 1) for row in codes])
    U, p = _mann_whitney(X, codes, sizes, sorted_values)
    frame = lambda values: pd.DataFrame(values, index=pd.Index(conditions, name="perturbation"), columns=genes)
    tests = []
    for r, row in enumerate(codes):
        lfc = _log2_fold_change(_means(X, row, len(conditions) + 1) if means is None else means[r])
        tests.append(DifferentialExpression(frame(lfc), frame(U[r]), frame(p[r]), frame(_benjamini_hochberg(p[r]))))
    return tests


def by_gene(X) -> ByGene | None:
    """The cells' values gene by gene, sorted, as the compiled kernel reads them (None without numba)."""
    from scipy import sparse

    if numba() is None:
        return None
    if sparse.issparse(X) and X.format == "csr":
        data = X.data if X.data.dtype in (np.float32, np.float64) else X.data.astype(np.float64)
        indices = unsigned(X.indices)
        indptr, rows, values = _KERNELS["columns"](X.indptr, indices, data, X.shape[1], _row_blocks(X.indptr))
    else:
        csc = sparse.csc_matrix(X, dtype=np.float64, copy=True)
        csc.eliminate_zeros()  # the kernel counts zeros from the sizes; a stored zero would count twice
        indptr, rows, values = csc.indptr.astype(np.int64), csc.indices, csc.data
    bits = values.view(np.uint32 if values.dtype == np.float32 else np.uint64)
    _KERNELS["sort"](indptr, rows, bits, bits.dtype.type(1) << bits.dtype.type(8 * bits.itemsize - 1))
    return ByGene(indptr, rows, values)


def _row_blocks(indptr: np.ndarray, n_blocks: int = 64) -> np.ndarray:
    """Rows cut into blocks of about equal numbers of values, for the cores to transpose in parallel."""
    targets = np.linspace(0, indptr[-1], n_blocks + 1)
    return np.unique(np.searchsorted(indptr, targets, side="left").clip(0, len(indptr) - 1)).astype(np.int64)


def _mann_whitney(X, codes: np.ndarray, sizes: np.ndarray, sorted_values: ByGene | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """U of each group's cells (codes 1..K) against the control's (code 0), and two-sided p: rounds × groups × genes,
    a round per row of ``codes`` (rounds × cells) and of their ``sizes`` (rounds × (K + 1))."""
    genes = by_gene(X) if sorted_values is None else sorted_values
    if genes is None:
        tests = [_mann_whitney_scipy(X, row, n) for row, n in zip(codes, sizes)]
        return np.stack([U for U, _ in tests]), np.stack([p for _, p in tests])
    slots = np.where(codes >= 0, codes, sizes.shape[1]).T  # cells × rounds; left out (-1): a slot past the groups
    slots = np.ascontiguousarray(slots, dtype=np.min_scalar_type(sizes.shape[1]))  # small: more of it in the cache
    U, ties = _KERNELS["rank sums"](genes.indptr, genes.rows, genes.values, slots, sizes.astype(np.int64))
    U, ties = (np.ascontiguousarray(a[:, :, 1 : sizes.shape[1]].transpose(1, 2, 0)) for a in (U, ties))
    return U, _p_two_sided(U, ties, sizes[:, 1:, None].astype(np.float64), sizes[:, :1, None].astype(np.float64))


def _p_two_sided(U1: np.ndarray, ties: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """The normal approximation with tie and continuity corrections (scipy's and pdex's asymptotic method)."""
    from scipy.special import ndtr

    n = n1 + n2
    U = np.maximum(U1, n1 * n2 - U1)
    variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (U - n1 * n2 / 2.0 - 0.5) / np.sqrt(variance)
    return np.where(variance > 0, np.clip(2.0 * ndtr(-z), 0.0, 1.0), 1.0)


def _mann_whitney_scipy(X, codes: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The NumPy fallback: scipy's ``mannwhitneyu`` per group, vectorised over genes."""
    from scipy import sparse, stats

    dense = lambda rows: np.asarray(X[rows].toarray() if sparse.issparse(X) else X[rows], dtype=np.float64)
    control = dense(np.flatnonzero(codes == 0))
    U = np.zeros((len(sizes) - 1, X.shape[1]))
    p = np.ones_like(U)
    for group in np.flatnonzero(sizes[1:]) + 1:
        result = stats.mannwhitneyu(dense(np.flatnonzero(codes == group)), control, axis=0,
                                    use_continuity=True, alternative="two-sided", method="asymptotic")
        U[group - 1], p[group - 1] = result.statistic, np.nan_to_num(result.pvalue, nan=1.0)  # all tied: p = 1
    return U, p


prange = range  # numba's prange once the kernels are compiled


def _columns(indptr, indices, data, n_columns, blocks):  # pragma: no cover - compiled by numba
    """A CSR matrix's non-zero values column by column, in their own float type, with their rows (CSC without stored
    zeros, the kernel counts zeros from the sizes): blocks of rows in parallel, each writing where its rows go in
    every column, so each column's rows stay in order."""
    n_blocks = blocks.shape[0] - 1
    counts = np.zeros((n_blocks, n_columns), dtype=np.int64)
    for b in prange(n_blocks):
        for i in range(indptr[blocks[b]], indptr[blocks[b + 1]]):
            if data[i] != 0:
                counts[b, indices[i]] += 1
    starts = np.zeros(n_columns + 1, dtype=np.int64)
    for j in range(n_columns):
        starts[j + 1] = starts[j] + counts[:, j].sum()
    at = np.empty_like(counts)  # where each block writes next in each column
    for j in range(n_columns):
        position = starts[j]
        for b in range(n_blocks):
            at[b, j] = position
            position += counts[b, j]
    rows = np.empty(starts[-1], dtype=indices.dtype)
    values = np.empty(starts[-1], dtype=data.dtype)
    for b in prange(n_blocks):
        where = at[b]
        for row in range(blocks[b], blocks[b + 1]):
            for i in range(indptr[row], indptr[row + 1]):
                if data[i] != 0:
                    j = indices[i]
                    rows[where[j]] = row
                    values[where[j]] = data[i]
                    where[j] += 1
    return starts, rows, values


def _sort_genes(indptr, rows, bits, sign):  # pragma: no cover - compiled by numba
    """Sort each gene's values (and their rows with them), genes in parallel, given the values' ``bits`` (float32 as
    uint32, float64 as uint64) and the sign bit: a least-significant-digit radix sort of the bits made
    order-preserving (flip all bits of a negative, the sign bit of a positive), 11 bits per pass (the counts fit the
    fastest cache), skipping the digits where every key is alike (float32 data in float64 leave 29 bits alike);
    linear in the values, where a comparison sort is not. The keys carry the values through the passes and are
    turned back into them at the end, so nothing is gathered afterwards."""
    zero, digit = sign - sign, 11
    mask = (zero + 1 << digit) - 1  # one digit, in the keys' type
    for gene in prange(indptr.shape[0] - 1):
        start, end = indptr[gene], indptr[gene + 1]
        n = end - start
        if n < 2:
            continue
        keys = np.empty(n, bits.dtype)
        same, differ = ~zero, zero  # the bits every key has, and those any key has
        for i in range(n):
            b = bits[start + i]
            keys[i] = ~b if b & sign else b | sign
            same &= keys[i]
            differ |= keys[i]
        cells = rows[start:end].copy()
        spare_keys, spare_cells = np.empty_like(keys), np.empty_like(cells)
        for shift in range(0, 8 * bits.itemsize, digit):
            if ((same ^ differ) >> shift) & mask == 0:
                continue
            at = np.zeros((1 << digit) + 1, np.int64)
            for i in range(n):
                at[np.int64((keys[i] >> shift) & mask) + 1] += 1
            for b in range(1 << digit):
                at[b + 1] += at[b]
            for i in range(n):
                b = np.int64((keys[i] >> shift) & mask)
                spare_keys[at[b]], spare_cells[at[b]] = keys[i], cells[i]
                at[b] += 1
            keys, spare_keys = spare_keys, keys
            cells, spare_cells = spare_cells, cells
        for i in range(n):
            k = keys[i]
            bits[start + i] = k & ~sign if k & sign else ~k
        rows[start:end] = cells


def _rank_sums(indptr, rows, data, slots, sizes):  # pragma: no cover - compiled by numba
    """Per gene (in parallel), every round at once: walk the gene's sorted non-zero values once, run of ties by run
    of ties, adding up for each group ``U = Σ (#control below + ½ #control tied)`` over its cells and the tie term
    ``Σ (t³ − t)`` of its two-sample pool. ``slots``: cells × rounds, each cell's group (0 control, 1..K), or K + 1
    for a cell in none; ``sizes``: rounds × (K + 1). The rounds share the walk: the values are read and their ties
    found once, and a cell's slots of every round lie together.

    The zeros, not stored, are one run between the negative and the positive values. How many of a group's cells
    are zero is known only once its values are walked, so the positive values count the control values below them
    without the control's zeros, and at the end each group adds its positive cells × the control's zeros (every
    term is a multiple of ½ far below 2⁵³: these sums are exact in any order). Every slot is added up alike and only
    the groups' are returned: no branch asks whether a cell is in a group, which the CPU could not predict, as a
    gene's cells come in the order of their values; a value tied with no other (most, in log-normalised data) takes
    a short path without a run's bookkeeping."""
    n_rounds, n_groups = sizes.shape[0], sizes.shape[1] - 1
    n_genes = indptr.shape[0] - 1
    U = np.zeros((n_genes, n_rounds, n_groups + 2))  # gene-major: each gene's groups lie together in memory
    ties = np.zeros((n_genes, n_rounds, n_groups + 2))
    for gene in prange(n_genes):
        start, m = indptr[gene], indptr[gene + 1] - indptr[gene]
        values, cells = data[start : start + m], rows[start : start + m]
        u, tied = U[gene], ties[gene]
        stored = np.zeros((n_rounds, n_groups + 2), dtype=np.int64)  # each slot's non-zero values so far
        negative = np.zeros((n_rounds, n_groups + 2), dtype=np.int64)  # ... of them below the zeros
        in_run = np.zeros(n_groups + 2, dtype=np.int64)
        touched = np.empty(n_groups + 2, dtype=np.int64)
        below = np.zeros(n_rounds, dtype=np.int64)  # control values below the current run, the control's zeros aside
        below_zeros = np.zeros(n_rounds, dtype=np.int64)  # control values below the zeros' run
        control_ties = np.zeros(n_rounds)  # the control's own Σ (t³ − t)
        first_positive = 0  # where the zeros' run lies
        while first_positive < m and not values[first_positive] > 0:
            first_positive += 1
        i = 0
        while i <= m:
            if i == first_positive:
                below_zeros[:] = below
                negative[:, :] = stored
            if i == m:
                break
            value = values[i]
            if i + 1 == m or values[i + 1] != value:  # a value of its own: no run, no tie term
                cell = cells[i]
                for r in range(n_rounds):
                    g = slots[cell, r]
                    control = 1 if g == 0 else 0
                    u[r, g] += below[r] + 0.5 * control
                    stored[r, g] += 1
                    below[r] += control
                i += 1
                continue
            j = i + 1
            while j < m and values[j] == value:
                j += 1
            for r in range(n_rounds):
                n_touched = 0
                for q in range(i, j):
                    g = slots[cells[q], r]
                    if in_run[g] == 0:
                        touched[n_touched] = g
                        n_touched += 1
                    in_run[g] += 1
                n_control = in_run[0]
                c = float(n_control)
                for t in range(n_touched):
                    g = touched[t]
                    k = float(in_run[g])
                    u[r, g] += k * (below[r] + 0.5 * c)
                    tied[r, g] += (c + k) * (c + k) * (c + k) - (c + k) - (c * c * c - c)
                    stored[r, g] += in_run[g]
                    in_run[g] = 0
                control_ties[r] += c * c * c - c
                below[r] += n_control
            i = j
        for r in range(n_rounds):
            c = float(sizes[r, 0] - stored[r, 0])  # the control's zeros
            for g in range(1, n_groups + 1):
                u[r, g] += (stored[r, g] - negative[r, g]) * c  # they lie below every positive value
                z = float(sizes[r, g] - stored[r, g])
                if z > 0:
                    u[r, g] += z * (below_zeros[r] + 0.5 * c)
                    tied[r, g] += (c + z) * (c + z) * (c + z) - (c + z) - (c * c * c - c)
            control_ties[r] += c * c * c - c
            for g in range(1, n_groups + 1):
                tied[r, g] += control_ties[r]
    return U, ties


_KERNELS = Kernels(globals(), **{"columns": _columns, "sort": _sort_genes, "rank sums": _rank_sums})


def _log2_fold_change(means: np.ndarray) -> np.ndarray:
    """``log2(expm1(mean_group) / expm1(mean_control))`` per group × gene (control first in ``means``); 0 where
    both means are 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.expm1(means)
    with np.errstate(invalid="ignore", divide="ignore"):
        lfc = np.log2(means[1:] / means[0])
    return np.where(np.isnan(lfc), 0.0, lfc)


def _means(X, codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Mean expression of each code's cells (codes × genes)."""
    from scipy import sparse

    from .._pseudobulk._reduce import add_rows

    sums = np.zeros((n_codes, X.shape[1]))
    add_rows(X if isinstance(X, np.ndarray) else sparse.csr_matrix(X), codes, sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / np.bincount(codes[codes >= 0], minlength=n_codes)[:, None]


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values within each row, all rows at once: statsmodels' ``fdrcorrection``
    arithmetic (``p_(i) / (i / n)``, a running minimum from the largest, at most 1), so the numbers are its own."""
    if not p.size:
        return p
    order = np.argsort(p, axis=1)
    n = p.shape[1]
    adjusted = np.take_along_axis(p, order, axis=1) / (np.arange(1, n + 1) / float(n))
    adjusted = np.minimum.accumulate(adjusted[:, ::-1], axis=1)[:, ::-1]
    adjusted[adjusted > 1] = 1
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=1)
    return out


def de_overlap(predicted: Any, observed: DifferentialExpression, *, control: Any = None, k: int | None = None,
               fdr: float = FDR) -> pd.Series:
    """Share of each perturbation's observed DE genes that the prediction ranks among its top ones (overlap_at_N).

    Parameters
    ----------
    predicted
        A :class:`DifferentialExpression` of predicted cells (its DE genes, ordered by absolute log2 fold change), or
        a perturbations × genes profile of mean log1p expression, whose genes are ranked by their absolute predicted
        change against ``control``; a gene predicted not to change is not among them.
    observed
        :func:`differential_expression` of the observed cells.
    control
        The control profile (mean log1p expression per gene); needed for a profile.
    k
        Compare the top ``k`` genes (cell-eval's ``overlap_at_k``); default: as many as the observed DE genes.

    Returns
    -------
    Series ``de_overlap``, one value per observed perturbation; NaN where the perturbation has no DE gene (cell-eval
    reports 0 there) or the profile predicts nothing for it.
    """
    from ._field import _aligned, _control

    truth = observed.log2_fold_change
    if isinstance(predicted, DifferentialExpression):
        strength, _ = _aligned(predicted.log2_fold_change.abs(), truth)
        called, _ = _aligned(predicted.fdr < fdr, truth)
        called = called.astype(bool).to_numpy()
        predicted_rows = np.ones(len(truth), dtype=bool)
    else:
        if control is None:
            raise ValueError("de_overlap needs control= (the control profile) to rank a profile's genes.")
        profile, _ = _aligned(predicted, truth)
        change = np.abs(profile.to_numpy() - _control(control, truth.columns))
        strength = pd.DataFrame(np.where(np.isnan(change), 0.0, change), truth.index, truth.columns)
        predicted_rows = np.isfinite(profile.to_numpy()).any(axis=1)
        called = strength.to_numpy() > 0  # a gene predicted not to change is no candidate: no change recovers none
    real_called = (observed.fdr.loc[truth.index, truth.columns] < fdr).to_numpy()
    values = np.full(len(truth), np.nan)
    # with k, the observed DE genes' top k by |log2 fold change|; without, all of them, in whatever order
    real_orders = _ordered(truth.abs().to_numpy()) if k else np.broadcast_to(np.arange(truth.shape[1]), truth.shape)
    rows = zip(real_orders, real_called, _ordered(strength.to_numpy()), called)
    for row, (real_order, real, order, candidates) in enumerate(rows):
        real_genes, predicted_genes = real_order[real[real_order]], order[candidates[order]]
        if not real_genes.size or not predicted_rows[row]:
            continue
        top = min(k or real_genes.size, real_genes.size)
        values[row] = np.intersect1d(real_genes[:top], predicted_genes[:top]).size / top
    return pd.Series(values, index=truth.index, name="de_overlap")


def _ordered(strength: np.ndarray) -> np.ndarray:
    """Per row, the genes from the strongest to the weakest; ties in gene order (polars' ordinal rank)."""
    strong = np.where(np.isnan(strength), -np.inf, strength)
    return np.argsort(-strong, axis=1, kind="stable")

"""The block reducer every pseudobulk path shares: add a block's cells into per-condition float64 sums.

:func:`add_rows` is used in memory, chunk by chunk from a file, and by each Dask task, so the three cannot drift
apart. With numba (``pip install 'linpert[fast]'``) a compiled kernel reads each stored value once, straight from the
block's own arrays (float32 stays float32 until it is added), and the cores share the conditions out, so they write
disjoint rows; without it, a sparse indicator product in float64 gives the same sums.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .._compiled import Kernels, numba, unsigned
from .._threads import threads

__all__ = ["add_rows", "add_rows_rounds", "condition_runs", "indicator"]


def add_rows(block, codes: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """``sums[codes[i]] += block[i]`` for every row ``i`` with a code ≥ 0; the non-finite values per condition.

    ``block`` is a CSR matrix or a 2-d ndarray; ``sums`` (conditions × the block's columns, float64) may be a view.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if numba() is not None and (sparse.issparse(block) and block.format == "csr" or isinstance(block, np.ndarray)):
        return _add_compiled(block, codes, sums)
    return _add_product(block, codes, sums)


def add_rows_rounds(block, codes: np.ndarray, sums: np.ndarray) -> None:
    """:func:`add_rows` once per round: ``sums[r, codes[r, i]] += block[i]`` (rounds × cells codes, rounds ×
    conditions × columns sums), as the replicate ceiling's random halves need.

    Compiled, each core takes whole rounds and walks the cells in their order once for each, without sorting them
    by condition first: a condition's cells are added in the order :func:`add_rows` adds them, so the sums are its
    own, bit for bit. A single round goes to :func:`add_rows`, whose cores share out its conditions instead.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if numba() is not None and sparse.issparse(block) and block.format == "csr" and len(codes) > 1:
        _KERNELS["csr rounds"](block.indptr, unsigned(block.indices), block.data, codes, sums)
        return
    for round_codes, round_sums in zip(codes, sums):
        add_rows(block, round_codes, round_sums)


def indicator(codes: np.ndarray, n_conditions: int) -> sparse.csr_matrix:
    """Conditions × cells, 1.0 where the cell belongs to the condition; cells coded -1 belong to none."""
    keep = np.flatnonzero(codes >= 0)
    return sparse.csr_matrix(
        (np.ones(len(keep)), (codes[keep], keep)), shape=(n_conditions, len(codes)), dtype=np.float64
    )


def _add_product(block, codes: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """The NumPy path: values to float64 (counting the non-finite ones), then indicator × block."""
    if sparse.issparse(block):
        block = block.tocsr()
        block = _compact(sparse.csr_matrix((block.data.astype(np.float64), block.indices, block.indptr),
                                           shape=block.shape))
    else:
        block = np.asarray(block, dtype=np.float64)
    present = codes[codes >= 0]
    if len(present):
        lo, hi = int(present.min()), int(present.max()) + 1  # only the conditions present get indicator rows
        product = indicator(np.where(codes >= 0, codes - lo, -1), hi - lo) @ block
        sums[lo:hi] += product.toarray() if sparse.issparse(product) else product
    return _non_finite(block, codes, len(sums))


def condition_runs(codes: np.ndarray, n_parts: int, *, weights: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Cut sorted ``codes`` into up to ``n_parts`` runs of about equal weight (default: one per cell), only where the
    condition changes, so that threads given different runs write disjoint rows of the sums."""
    changes = np.flatnonzero(np.diff(codes)) + 1
    if not len(changes):
        return [(0, len(codes))]
    cumulative = np.arange(len(codes) + 1) if weights is None else np.concatenate([[0], np.cumsum(weights)])
    targets = np.linspace(0, cumulative[-1], n_parts + 1)[1:-1]
    cuts = changes[np.abs(cumulative[changes][:, None] - targets[None, :]).argmin(axis=0)]
    edges = np.unique([0, *cuts.tolist(), len(codes)])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _compact(block):
    """The block with int32 index arrays where they fit: scipy's sparse product is many times slower on int64."""
    if block.indptr.dtype == np.int32 and block.indices.dtype == np.int32:
        return block
    if block.nnz >= 2**31 or max(block.shape) >= 2**31:
        return block
    indices, indptr = block.indices.astype(np.int32), block.indptr.astype(np.int32)
    return block.__class__((block.data, indices, indptr), shape=block.shape)


def _add_compiled(block, codes: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """The compiled path: the cells are walked condition by condition (so a condition's row of sums stays in the
    cache), each core taking a run of conditions holding about its share of the values."""
    weights = np.diff(block.indptr) if sparse.issparse(block) else np.full(len(codes), block.shape[1])
    rows = np.argsort(codes, kind="stable")
    rows = rows[codes[rows] >= 0]
    runs = condition_runs(codes[rows], threads().kernels, weights=weights[rows])
    starts = np.array([a for a, _ in runs] + [len(rows)], dtype=np.int64)
    if sparse.issparse(block):
        _KERNELS["csr"](block.indptr, unsigned(block.indices), block.data, rows, codes, starts, sums)
    else:
        _KERNELS["dense"](np.ascontiguousarray(block), rows, codes, starts, sums)
    return _non_finite_added(block, codes, sums)


def _non_finite_added(block, codes: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """The non-finite values just added, per condition. A NaN or inf leaves its condition's sums non-finite, so
    where the sums of the conditions present are fewer than the block's values, they are looked at first, and the
    values are counted only when one of them is not finite."""
    present = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(sums)))
    n_values = block.nnz if sparse.issparse(block) else block.size
    if len(present) * sums.shape[1] < n_values:
        if np.isfinite(sums if len(present) == len(sums) else sums[present]).all():
            return np.zeros(len(sums), dtype=np.int64)
    return _non_finite(block, codes, len(sums))


def _non_finite(block, codes: np.ndarray, n_conditions: int) -> np.ndarray:
    """The non-finite values of a block per condition (cells coded -1 count for none)."""
    if sparse.issparse(block):
        bad_rows = np.searchsorted(block.indptr, np.flatnonzero(~np.isfinite(block.data)), side="right") - 1
    else:
        bad_rows = np.nonzero(~np.isfinite(block))[0]
    bad = codes[bad_rows]
    return np.bincount(bad[bad >= 0], minlength=n_conditions)


prange = range  # numba's prange once the kernels are compiled


def _csr_sums(indptr, indices, data, rows, codes, starts, sums):  # pragma: no cover - compiled by numba
    """Part ``p`` adds the cells ``rows[starts[p]:starts[p + 1]]`` (whole conditions). No test for NaN or inf in the
    loop: it cost a fifth of the time, and a non-finite value shows in its sum. Each row's values are taken as slices
    before the loop over them, which numba compiles a third faster than indexing from ``indptr[row]``."""
    for part in prange(len(starts) - 1):
        for row in rows[starts[part]:starts[part + 1]]:
            target = sums[codes[row]]
            columns, values = indices[indptr[row]:indptr[row + 1]], data[indptr[row]:indptr[row + 1]]
            for k in range(columns.shape[0]):
                target[columns[k]] += np.float64(values[k])


def _csr_sums_rounds(indptr, indices, data, codes, sums):  # pragma: no cover - compiled by numba
    """Round ``r`` adds every cell with a code ≥ 0 in ``codes[r]`` into ``sums[r]``, the cells in their order."""
    for r in prange(codes.shape[0]):
        round_codes, round_sums = codes[r], sums[r]
        for row in range(indptr.shape[0] - 1):
            code = round_codes[row]
            if code < 0:
                continue
            target = round_sums[code]
            columns, values = indices[indptr[row]:indptr[row + 1]], data[indptr[row]:indptr[row + 1]]
            for k in range(columns.shape[0]):
                target[columns[k]] += np.float64(values[k])


def _dense_sums(block, rows, codes, starts, sums):  # pragma: no cover - compiled by numba
    for part in prange(len(starts) - 1):
        for row in rows[starts[part]:starts[part + 1]]:
            target = sums[codes[row]]
            values = block[row]
            for gene in range(values.shape[0]):
                target[gene] += np.float64(values[gene])


_KERNELS = Kernels(globals(), csr=_csr_sums, dense=_dense_sums, **{"csr rounds": _csr_sums_rounds})

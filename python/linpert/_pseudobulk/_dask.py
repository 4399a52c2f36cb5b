"""linpert.pseudobulk on Dask: the block reducer (:func:`linpert._pseudobulk._reduce.add_rows`) as tasks.

It reduces a Dask-backed matrix (``anndata.experimental.read_lazy``, ``read_elem_lazy``, or an AnnData whose ``X`` is
a ``dask.array`` of dense or scipy-sparse blocks) block by block: each task adds its rows into the partial sums of the
conditions it holds, and the partials are added in a tree, so a worker holds one block plus a few conditions × genes
partials.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from .._dask import _compute, _is_zarr, _require_dask, connect, is_dask_array

if TYPE_CHECKING:  # pragma: no cover
    import anndata

#: Partial sums added per task of the tree reduction: a combining task holds this many conditions × genes arrays.
SPLIT_EVERY = 4


def pseudobulk(
    adata: anndata.AnnData | str | os.PathLike,
    *,
    condition_key: str,
    layer: str | None,
    gene_key: str | None,
    chunk_size: int,
    progress: bool,
    scheduler: Any,
) -> anndata.AnnData:
    """:func:`linpert.pseudobulk` on Dask: same arguments, same result, computed block by block.

    Examples
    --------
    >>> import anndata, dask.array as da, numpy as np, pandas as pd
    >>> X = da.from_array(np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 2.0], [4.0, 0.0]]), chunks=(2, 2))
    >>> cells = anndata.AnnData(X, obs=pd.DataFrame({"condition": ["ctrl", "ctrl", "A+ctrl", "A+ctrl"]}))
    >>> pseudobulk(cells, condition_key="condition", layer=None, gene_key=None, chunk_size=2, progress=False,
    ...            scheduler=None).X
    array([[2., 1.],
           [3., 1.]])
    """
    from ._local import _Source, _assemble, _cell_conditions, _gene_table, check_values, looks_like_counts

    _require_dask("Pseudobulk of Dask-backed data")
    matrix, obs, var, label, what = _lazy_matrix(adata, layer=layer, chunk_size=chunk_size)
    codes, conditions, appearance = _cell_conditions(obs, condition_key)
    genes = _gene_table(var, gene_key)
    if matrix.ndim != 2 or matrix.shape[0] != len(codes):
        raise ValueError(f"{what} has shape {matrix.shape} but obs has {len(codes)} cells.")
    with connect(scheduler) as client:
        sums, non_finite, max_value, integers = _reduce(
            matrix, codes, len(conditions), chunk_size, client, progress=progress
        )
    check_values(non_finite, looks_like_counts(max_value, integers), max_value, conditions, what, sums=sums,
                 stacklevel=3)
    n_cells = np.bincount(codes, minlength=len(conditions)).astype(np.int64)
    source = _Source(obs=obs, var=var, label=label, what=what)
    result = _assemble(sums / n_cells[:, None], conditions, n_cells, genes, source, condition_key, layer, gene_key,
                       appearance)
    result.uns["linpert"]["backend"] = "dask"
    return result


def _lazy_matrix(adata, *, layer: str | None, chunk_size: int):
    """(dask matrix, obs, var, provenance label, message name) for a path, a lazy AnnData or an in-memory one."""
    import anndata

    what = "X" if layer is None else f"layers[{layer!r}]"
    if isinstance(adata, (str, os.PathLike)):
        return (*_read_lazy_file(Path(adata), layer=layer, chunk_size=chunk_size), what)
    if not isinstance(adata, anndata.AnnData):
        raise TypeError(
            f"pseudobulk() takes an AnnData or the path of an .h5ad file or zarr store, got {type(adata).__name__}."
        )
    if adata.isbacked and not adata.is_view:  # let the workers read the file themselves
        matrix, obs, var, label = _read_lazy_file(Path(adata.filename), layer=layer, chunk_size=chunk_size)
        return matrix, adata.obs, adata.var, label, what
    if layer is None:
        matrix = adata.X
        if matrix is None:
            raise ValueError(f"The AnnData has no X; pass layer= one of {list(adata.layers.keys())}.")
    elif layer not in adata.layers:
        raise KeyError(f"No layer {layer!r} in the AnnData; its layers are {list(adata.layers.keys())}.")
    else:
        matrix = adata.layers[layer]
    if not is_dask_array(matrix):  # in memory, and a scheduler was asked for: ship row blocks to it
        import dask.array as da

        if sparse.issparse(matrix):
            matrix = sparse.csr_matrix(matrix)
        matrix = da.from_array(np.asarray(matrix) if not sparse.issparse(matrix) else matrix,
                               chunks=(chunk_size, -1), asarray=False)
    label = str(adata.filename) if adata.isbacked else "dask"
    return matrix, _frame(adata.obs), _frame(adata.var), label, what


def _frame(table):
    """A pandas DataFrame from obs/var, which ``read_lazy`` gives as a lazy xarray-backed Dataset2D."""
    return table.to_memory() if hasattr(table, "to_memory") else table


def _read_lazy_file(path: Path, *, layer: str | None, chunk_size: int):
    """A Dask matrix over an ``.h5ad`` file or zarr store, ``chunk_size`` cells per block; obs and var in memory."""
    try:
        from anndata.experimental import read_elem_lazy
        from anndata.io import read_elem
    except ImportError as err:  # anndata < 0.12
        raise ImportError("Reading a file lazily needs anndata 0.12 or later: pip install -U anndata") from err

    if _is_zarr(path):
        import zarr

        root = zarr.open_group(path, mode="r")
    else:
        from ._local import _check_h5ad_path, _h5py

        root = _h5py().File(_check_h5ad_path(path), "r")
    try:
        obs, var = read_elem(root["obs"]), read_elem(root["var"])
        element = _element(root, layer, path)
        n_obs, n_vars = len(obs), len(var)
        if _encoding(element) == "csc_matrix":  # blocks of whole columns, as many values as chunk_size rows
            chunks = (n_obs, max(1, chunk_size * n_vars // max(n_obs, 1)))
        else:
            chunks = (chunk_size, n_vars)
        matrix = read_elem_lazy(element, chunks=chunks)
    finally:
        if not _is_zarr(path):
            root.close()  # anndata's lazy h5 reader reopens the file by name in every task
    return matrix, obs, var, str(path)


def _element(root, layer: str | None, path: Path):
    if layer is None:
        if "X" not in root:
            raise ValueError(f"'{path}' has no X; pass layer= naming one of its layers.")
        return root["X"]
    layers = root["layers"] if "layers" in root else {}
    if layer not in layers:
        raise KeyError(f"No layer {layer!r} in '{path}'; its layers are {list(layers.keys())}.")
    return layers[layer]


def _encoding(element) -> str:
    kind = element.attrs.get("encoding-type", "array")
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def _reduce(matrix, codes: np.ndarray, n_conditions: int, chunk_size: int, client, *, progress: bool):
    """Per-condition sums (float64, conditions × genes), non-finite counts, and the first block's value check.

    Consecutive row blocks are grouped until they hold ``chunk_size`` cells; each group and column block becomes one
    task, and each column block's partials are summed in a tree of :data:`SPLIT_EVERY`.
    """
    import dask

    blocks = matrix.to_delayed()
    codes = codes.astype(np.int32)  # every task's codes travel in the task graph: keep them small
    row_edges = np.concatenate([[0], np.cumsum(matrix.chunks[0])])
    groups = _group_blocks(matrix.chunks[0], chunk_size)
    partial = dask.delayed(_block_sums, pure=True)
    columns = []
    for j in range(blocks.shape[1]):
        parts = [
            partial(codes[row_edges[g[0]] : row_edges[g[-1] + 1]], n_conditions, first, *[blocks[i, j] for i in g])
            for first, g in ((k == 0, g) for k, g in enumerate(groups))
        ]
        columns.append(_tree_sum(parts))
    combined = _compute(client, columns, progress=progress)
    sums = np.zeros((n_conditions, matrix.shape[1]))
    edges = np.concatenate([[0], np.cumsum(matrix.chunks[1])])
    for j, part in enumerate(combined):
        sums[part.lo : part.hi, edges[j] : edges[j + 1]] = part.sums
    non_finite = combined[0].non_finite.copy()  # every column block counts its own
    for part in combined[1:]:
        non_finite += part.non_finite
    checked = [p for p in combined if p.max_value is not None]
    max_value = max((p.max_value for p in checked), default=0.0)
    return sums, non_finite, max_value, bool(checked) and all(p.integers for p in checked)


def _group_blocks(row_chunks: tuple[int, ...], chunk_size: int) -> list[list[int]]:
    """Consecutive row blocks, grouped until each group holds ``chunk_size`` cells or more (the last may hold fewer)."""
    groups, current, n = [], [], 0
    for i, size in enumerate(row_chunks):
        current.append(i)
        n += size
        if n >= chunk_size:
            groups.append(current)
            current, n = [], 0
    return groups + [current] if current else groups


def _tree_sum(parts: list):
    import dask

    combine = dask.delayed(_combine, pure=True)
    while len(parts) > 1:
        parts = [combine(*parts[a : a + SPLIT_EVERY]) for a in range(0, len(parts), SPLIT_EVERY)]
    return parts[0]


class _Partial:
    """Sums of rows ``lo:hi`` of the conditions over some cells, with their non-finite counts and value check."""

    __slots__ = ("lo", "hi", "sums", "non_finite", "max_value", "integers")

    def __init__(self, lo, hi, sums, non_finite, max_value=None, integers=True):
        self.lo, self.hi, self.sums, self.non_finite = lo, hi, sums, non_finite
        self.max_value, self.integers = max_value, integers


def _block_sums(codes: np.ndarray, n_conditions: int, check: bool, *blocks) -> _Partial:
    """The sums of consecutive row blocks (linpert's one block reducer); runs on a worker, one block in memory at a
    time."""
    from ._local import value_sample
    from ._reduce import add_rows

    present = codes[codes >= 0]
    lo, hi = (int(present.min()), int(present.max()) + 1) if len(present) else (0, 0)
    local = np.where(codes >= 0, codes - lo, -1)  # the task's sums hold only the conditions present
    sums = None
    non_finite = np.zeros(n_conditions, dtype=np.int64)
    max_value, integers = None, True
    start = 0
    for block in blocks:
        block = _as_block(block)
        if sums is None:
            sums = np.zeros((hi - lo, block.shape[1]))
        block_codes = local[start : start + block.shape[0]]
        start += block.shape[0]
        if check and max_value is None:
            max_value, integers = value_sample(block)
        non_finite[lo:hi] += add_rows(block, block_codes, sums)
    return _Partial(lo, hi, sums, non_finite, max_value, integers)


def _as_block(block):
    """A dense ndarray or a CSR matrix from what a Dask block may hold (ndarray, scipy sparse, pydata sparse)."""
    if sparse.issparse(block):
        return block.tocsr() if block.format != "csr" else block
    if hasattr(block, "tocsr"):  # pydata sparse
        return sparse.csr_matrix(block.tocsr())
    return np.asarray(block)


def _combine(*parts: _Partial) -> _Partial:
    """The sum of partial sums; runs on a worker."""
    lo = min(p.lo for p in parts if p.hi > p.lo) if any(p.hi > p.lo for p in parts) else 0
    hi = max(p.hi for p in parts)
    # A new array: the parts are the stored results of other tasks and must stay as they are.
    sums = np.zeros((max(hi - lo, 0), parts[0].sums.shape[1]))
    non_finite = np.zeros_like(parts[0].non_finite)
    for p in parts:
        if p.hi > p.lo:
            sums[p.lo - lo : p.hi - lo] += p.sums
        non_finite += p.non_finite
    checked = [p for p in parts if p.max_value is not None]
    max_value = max((p.max_value for p in checked), default=None)
    return _Partial(lo, hi, sums, non_finite, max_value, all(p.integers for p in checked))

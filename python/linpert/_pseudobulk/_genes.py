"""Every cell of an ``.h5ad`` file on a few of its genes, read chunk by chunk: the read-out genes' cells that the DE
tests and the replicate ceiling use, without the whole matrix in memory.

A CSR file is read in stored order, the next chunk while this one is filtered (as the pseudobulk reads it); with
numba a compiled kernel keeps the wanted columns in one pass over each chunk, cores sharing the rows. Other
encodings, and a run without numba, take anndata's backed slicing, which gives the same matrix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from .._compiled import Kernels, numba, unsigned
from ._local import _Buffers, _check_h5ad_path, _file_element, _h5py, _read_ahead, _read_frame, _read_rows, _Source

if TYPE_CHECKING:  # pragma: no cover
    import anndata

__all__ = ["read_genes"]


def read_genes(path: str | os.PathLike, genes: Sequence[str], *, chunk_size: int = 5_000) -> anndata.AnnData:
    """The cells × ``genes`` (``var_names``, in that order) of the ``.h5ad`` file at ``path``, ``obs`` and ``var``
    included; the values and their stored zeros are those of ``anndata.read_h5ad(path, backed="r")[:, genes]``."""
    import anndata

    path = _check_h5ad_path(path)
    with _h5py().File(path, "r") as file:
        obs, var = _read_frame(file, "obs", path), _read_frame(file, "var", path)
        columns = var.index.get_indexer(pd.Index(genes))
        if (columns < 0).any():
            missing = list(pd.Index(genes)[columns < 0][:5])
            raise KeyError(f"Genes {missing} are not among the var_names of '{path}'.")
        element = _file_element(file, None, path)
        source = _Source(obs=obs, var=var, label=str(path), what="X", element=element)
        if numba() is None or source.format != "csr":
            backed = anndata.read_h5ad(path, backed="r")
            try:
                return backed[:, list(genes)].to_memory()
            finally:
                backed.file.close()
        X = _select_columns(source, columns, int(chunk_size))
    return anndata.AnnData(X=X, obs=obs, var=var.iloc[columns])


def _select_columns(source: _Source, columns: np.ndarray, chunk_size: int) -> sparse.csr_matrix:
    """The stored CSR matrix's ``columns``, chunk by chunk, kept in stored order within each row."""
    n_obs, n_vars = source.shape
    slot = np.full(n_vars, -1, dtype=np.int32)  # small, so that it stays in cache
    slot[columns] = np.arange(len(columns))
    buffers, scratch = (_Buffers(), _Buffers()), _Buffers()
    starts = range(0, n_obs, chunk_size)
    chunks = (_read_rows(source, a, min(a + chunk_size, n_obs), buffers[i % 2]) for i, a in enumerate(starts))
    parts = []
    for block in _read_ahead(chunks):
        kept = np.empty(block.shape[0], dtype=np.int64)
        in_place = (scratch.get("indices", block.nnz, np.int32), scratch.get("data", block.nnz, block.data.dtype))
        _KERNELS["keep"](block.indptr, unsigned(block.indices), block.data, slot, *in_place, kept)
        indptr = np.concatenate([[0], np.cumsum(kept)])
        packed = np.empty(indptr[-1], dtype=np.int32), np.empty(indptr[-1], dtype=block.data.dtype)
        _KERNELS["pack"](block.indptr, *in_place, indptr, *packed)
        parts.append((kept, *packed))
    if not parts:
        return sparse.csr_matrix((n_obs, len(columns)), dtype=np.float32)
    kept, indices, data = (np.concatenate([part[i] for part in parts]) for i in range(3))
    return sparse.csr_matrix((data, indices, np.concatenate([[0], np.cumsum(kept)])), shape=(n_obs, len(columns)))


prange = range  # numba's prange once the kernels are compiled


def _keep(indptr, indices, data, slot, out_indices, out_data, kept):  # pragma: no cover - compiled by numba
    """Per row (in parallel): its values in wanted columns, renumbered to their place among the wanted columns,
    moved to the front of the row's own stretch of the out arrays; ``kept[row]`` says how many. Every value is
    written and only a wanted one advances, so no branch asks which is wanted."""
    for row in prange(indptr.shape[0] - 1):
        columns, values = indices[indptr[row]:indptr[row + 1]], data[indptr[row]:indptr[row + 1]]
        start = indptr[row] - indptr[0]
        to_columns, to_values = out_indices[start:start + len(columns)], out_data[start:start + len(columns)]
        k = 0
        for j in range(len(columns)):  # over slices of the row: numba compiles this a third faster than indptr offsets
            s = slot[columns[j]]
            to_columns[k] = s
            to_values[k] = values[j]
            k += s >= 0
        kept[row] = k


def _pack(indptr, indices, data, out_indptr, out_indices, out_data):  # pragma: no cover - compiled by numba
    """Per row (in parallel): its kept values, from the front of its stretch to their place in the packed arrays."""
    for row in prange(indptr.shape[0] - 1):
        start = indptr[row] - indptr[0]
        for k in range(out_indptr[row + 1] - out_indptr[row]):
            out_indices[out_indptr[row] + k] = indices[start + k]
            out_data[out_indptr[row] + k] = data[start + k]


_KERNELS = Kernels(globals(), keep=_keep, pack=_pack)

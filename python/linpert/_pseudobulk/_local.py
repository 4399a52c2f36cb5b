"""linpert.pseudobulk on this machine: the sources (an in-memory matrix, a backed ``.h5ad`` read chunk by chunk),
the checks of labels and values, and the result's assembly; the cells are added with :mod:`._reduce`."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._compiled import numba
from .._config import cores
from .._conditions import CONTROL, canonical_names, condition_table, require_control, require_one_row_each
from .._io import damaged_h5ad, describe_file, is_hdf5
from ._raw import RawArray
from ._reduce import _compact, add_rows, condition_runs, indicator

if TYPE_CHECKING:  # pragma: no cover
    import anndata

# Bump when the numbers pseudobulk() returns change, so cached pseudobulks (linpert.datasets) are rebuilt.
PSEUDOBULK_VERSION = 2  # 2: records the conditions' order of first appearance
# Ensembl gene IDs (ENSG…, ENSMUSG…, ENSDARG…), optionally versioned.
_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
# log1p-normalised values are almost never whole numbers (log1p(x) is one only for x = e^k - 1), so data whose
# sampled values are all whole numbers, some above this, are raw counts, however shallow the sequencing.
_RAW_COUNT_MAX = 1
_COUNT_SAMPLE = 1_000_000
_MAX_THREADS = 4


def local(adata, *, condition_key: str, layer: str | None, gene_key: str | None, chunk_size: int,
          progress: bool) -> anndata.AnnData:
    """:func:`linpert.pseudobulk` on this machine: in memory, or chunk by chunk from a file."""
    with _open(adata, layer=layer) as source:
        codes, conditions, appearance = _cell_conditions(source.obs, condition_key)
        var = _gene_table(source.var, gene_key)
        codes_in_source = source.place(codes)
        sums, check = _accumulate(source, codes_in_source, len(conditions), int(chunk_size), progress=progress)
    sums = sums[:, source.columns] if source.columns is not None else sums
    check_values(check.non_finite, check.looks_like_counts, check.max_value, conditions, source.what, sums=sums)
    n_cells = np.bincount(codes, minlength=len(conditions)).astype(np.int64)
    return _assemble(sums / n_cells[:, None], conditions, n_cells, var, source, condition_key, layer, gene_key,
                     appearance)


def check_values(
    non_finite, looks_like_counts: bool, max_value: float, conditions, what: str, *, sums=None, stacklevel: int = 2
) -> None:
    """After summing: an error for non-finite values or sums that overflowed, a warning for what looks like raw
    counts (both paths).

    ``stacklevel`` is counted from the caller, as for :func:`warnings.warn` called there.
    """
    if non_finite.any():
        raise ValueError(_non_finite_message(non_finite, conditions, what))
    if sums is not None and not np.isfinite(sums).all():
        rows = np.flatnonzero(~np.isfinite(sums).all(axis=1))
        raise ValueError(
            f"{what}: summing the cells of {len(rows)} conditions "
            f"(e.g. {', '.join(repr(conditions[i]) for i in rows[:3])}) overflows (values near the largest float). These are not log-normalised expression values; normalise "
            "first (scanpy.pp.normalize_total then scanpy.pp.log1p)."
        )
    if looks_like_counts:
        warnings.warn(
            f"{what} holds integers up to {max_value:g}: it looks like raw counts. The paper averages "
            "log-normalised values; normalise first (scanpy.pp.normalize_total then scanpy.pp.log1p) or pass the "
            "layer that holds them.",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


# --- the data source -------------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """Where the matrix comes from: an in-memory matrix or an element of an h5ad file, and its obs and var."""

    obs: pd.DataFrame
    var: pd.DataFrame
    label: str  # provenance: the file path or "in-memory"
    what: str  # how messages name the matrix, e.g. "layers['counts']"
    matrix: Any = None  # in-memory ndarray or scipy sparse matrix
    element: Any = None  # h5py Dataset (dense) or Group (sparse) in an open file
    rows: np.ndarray | None = None  # positions of the cells in the file, for a view of a backed AnnData
    columns: np.ndarray | None = None  # positions of the genes in the file, for a view of a backed AnnData
    stored: dict = field(default_factory=dict, repr=False)  # name -> RawArray or None, see raw()

    def raw(self, name: str) -> RawArray | None:
        """Where the sparse element's array ``name`` lies in the file, for os.preadv (None: h5py reads it)."""
        if name not in self.stored:
            self.stored[name] = RawArray.of(self.element[name])
        return self.stored[name]

    @property
    def shape(self) -> tuple[int, int]:
        if self.matrix is not None:
            return self.matrix.shape
        if isinstance(self.element, _h5py().Dataset):
            return self.element.shape
        return tuple(int(n) for n in self.element.attrs["shape"])

    @property
    def format(self) -> str:
        """``dense``, ``csr`` or ``csc``."""
        if self.matrix is not None:
            return self.matrix.format if sparse.issparse(self.matrix) else "dense"
        if isinstance(self.element, _h5py().Dataset):
            return "dense"
        return _sparse_encoding(self.element)

    def place(self, codes: np.ndarray) -> np.ndarray:
        """Condition codes for every row of the stored matrix; -1 for rows outside a view."""
        if self.rows is None:
            return codes
        placed = np.full(self.shape[0], -1, dtype=codes.dtype)
        placed[self.rows] = codes
        return placed


@contextmanager
def _open(adata, *, layer: str | None) -> Iterator[_Source]:
    import anndata

    what = "X" if layer is None else f"layers[{layer!r}]"
    if isinstance(adata, (str, os.PathLike)):
        path = _check_h5ad_path(adata)
        with _h5_file(path) as file:
            obs, var = _read_frame(file, "obs", path), _read_frame(file, "var", path)
            element = _file_element(file, layer, path)
            yield _Source(obs=obs, var=var, label=str(path), what=what, element=element)
        return
    if not isinstance(adata, anndata.AnnData):
        raise TypeError(
            f"pseudobulk() takes an AnnData or the path of an .h5ad file, got {type(adata).__name__}. "
            "Wrap a matrix with anndata.AnnData(X, obs=...)."
        )
    if adata.isbacked and layer is None:
        path = Path(adata.filename)
        rows = columns = None
        if adata.is_view:
            rows = _positions(adata._oidx, adata._adata_ref.n_obs, "cells")
            columns = _positions(adata._vidx, adata._adata_ref.n_vars, "genes")
        with _h5_file(path) as file:
            element = _file_element(file, None, path)
            yield _Source(
                obs=adata.obs, var=adata.var, label=str(path), what=what, element=element, rows=rows, columns=columns
            )
        return
    if layer is None:
        matrix = adata.X
        if matrix is None:
            raise ValueError(f"The AnnData has no X; pass layer= one of {list(adata.layers.keys())}.")
    else:
        if layer not in adata.layers:
            raise KeyError(f"No layer {layer!r} in the AnnData; its layers are {list(adata.layers.keys())}.")
        matrix = adata.layers[layer]  # a backed AnnData holds its layers in memory
    label = str(adata.filename) if adata.isbacked else "in-memory"
    yield _Source(obs=adata.obs, var=adata.var, label=label, what=what, matrix=_as_matrix(matrix, what))


def _as_matrix(matrix, what: str):
    """An ndarray, or a CSR/CSC matrix, from what AnnData may hold."""
    if sparse.issparse(matrix):
        if matrix.format not in ("csr", "csc"):
            matrix = matrix.tocsr()
        return matrix
    if isinstance(matrix, np.ndarray):  # includes anndata's ArrayView and np.matrix
        return np.asarray(matrix)
    raise TypeError(
        f"{what} is a {type(matrix).__name__}; pseudobulk() reads numpy arrays and scipy CSR/CSC matrices. "
        "Convert it first, e.g. adata.X = adata.X.compute() for a dask array."
    )


def _positions(index, n: int, what: str) -> np.ndarray:
    positions = np.arange(n)[index]
    if len(np.unique(positions)) != len(positions):
        raise ValueError(
            f"This view of a backed AnnData repeats {what}; pseudobulk() cannot read it from the file. "
            "Call .to_memory() on the view first."
        )
    return positions


def _h5py():
    import h5py

    return h5py


def _h5_file(path: Path):
    """The open HDF5 file, or a clear error for one cut short (h5py's says only "truncated file: eof = ...")."""
    try:
        return _h5py().File(path, "r")
    except OSError as err:
        raise damaged_h5ad(path, err) from None


def _check_h5ad_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file: '{path}'. Pass the path of an existing .h5ad file or an AnnData.")
    if path.is_dir():
        kind = "a zarr store" if any((path / n).exists() for n in (".zattrs", ".zgroup", "zarr.json")) else "a folder"
        raise ValueError(
            f"'{path}' is {kind}, not an .h5ad file. Pass an .h5ad file, or read the data into an AnnData first "
            "(anndata.read_zarr for a zarr store) and pass that."
        )
    if not is_hdf5(path):
        raise ValueError(
            f"'{path}' is not an .h5ad file: it does not start with the HDF5 signature; it looks like "
            f"{describe_file(path)}. Pass an .h5ad file written by AnnData.write_h5ad, or read the data into an AnnData "
            "first and pass that."
        )
    return path


def _read_frame(file, key: str, path: Path) -> pd.DataFrame:
    if key not in file:
        raise ValueError(
            f"'{path}' is an HDF5 file but not an .h5ad file: it has no {key!r} group (top level: "
            f"{sorted(file.keys())}). Pass an .h5ad written by AnnData.write_h5ad; a .loom file can be read with "
            "anndata.io.read_loom and passed as an AnnData."
        )
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem
    return read_elem(file[key])


def _file_element(file, layer: str | None, path: Path):
    if layer is None:
        if "X" not in file:
            layers = list(file["layers"].keys()) if "layers" in file else []
            raise ValueError(f"'{path}' has no X; pass layer= one of {layers}.")
        return _check_element(file["X"], "X", path)
    layers = file["layers"] if "layers" in file else {}
    if layer not in layers:
        raise KeyError(f"No layer {layer!r} in '{path}'; its layers are {list(layers.keys())}.")
    return _check_element(layers[layer], f"layers[{layer!r}]", path)


def _check_element(element, what: str, path: Path):
    if isinstance(element, _h5py().Dataset):
        if element.ndim != 2:
            raise ValueError(f"{what} in '{path}' is not a matrix (shape {element.shape}).")
        return element
    if _sparse_encoding(element) not in ("csr", "csc"):
        raise ValueError(
            f"{what} in '{path}' is encoded as {dict(element.attrs)}; pseudobulk() reads dense arrays and "
            "csr_matrix/csc_matrix elements. Read it with anndata.read_h5ad and pass the AnnData."
        )
    return element


def _sparse_encoding(group) -> str:
    kind = group.attrs.get("encoding-type", group.attrs.get("h5sparse_format", ""))
    if isinstance(kind, bytes):
        kind = kind.decode()
    return str(kind).removesuffix("_matrix")


# --- conditions and genes --------------------------------------------------------------------------------------------


def _cell_conditions(obs: pd.DataFrame, condition_key: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Each cell's position in the sorted canonical conditions (``ctrl`` first), those conditions, and the same in
    the order they first appear among the cells (the order the paper's R pseudobulk gives its columns)."""
    if condition_key not in obs.columns:
        raise KeyError(
            f"obs has no column {condition_key!r}; its columns are {list(obs.columns)}. "
            "Pass condition_key= naming the column that holds each cell's condition."
        )
    column = obs[condition_key]
    missing = column.isna().to_numpy()
    if missing.any():
        examples = list(obs.index[missing][:3])
        raise ValueError(
            f"obs[{condition_key!r}] is missing for {missing.sum()} cells (e.g. {examples}). Label them or drop them "
            f"first: adata = adata[adata.obs[{condition_key!r}].notna()]."
        )
    raw_codes, raw_names = pd.factorize(column.to_numpy(dtype=object), sort=False)
    canonical = canonical_names(list(raw_names))
    names = sorted(set(canonical.to_numpy()))
    require_control(names, what=f"obs[{condition_key!r}]")
    names.remove(CONTROL)
    conditions = [CONTROL, *names]
    position = pd.Index(conditions).get_indexer(canonical.loc[list(raw_names)].to_numpy())
    appearance = [conditions[i] for i in pd.unique(position)]  # raw_names are in order of first appearance
    return position[raw_codes].astype(np.int64), conditions, appearance


def _gene_table(var: pd.DataFrame, gene_key: str | None) -> pd.DataFrame:
    """The output ``var``: gene symbols as index, plus ``gene_id`` when the symbols came from a column."""
    ids = pd.Index(var.index.astype(str))
    if gene_key is not None and gene_key in var.columns:
        column = var[gene_key]
        if column.isna().any():
            raise ValueError(
                f"var[{gene_key!r}] is missing for {int(column.isna().sum())} genes; fill it in, or pass "
                "gene_key=None to keep the var_names."
            )
        symbols = pd.Index(column.astype(str).to_numpy(), dtype=object)
        table = pd.DataFrame({"gene_id": ids.to_numpy(dtype=object)}, index=symbols)
    else:
        if gene_key is not None and gene_key != "gene_name":
            raise KeyError(
                f"var has no column {gene_key!r}; its columns are {list(var.columns)}. Pass gene_key= naming the "
                "column of gene symbols, or gene_key=None to keep the var_names."
            )
        if gene_key is not None and len(ids) and np.mean([bool(_ENSEMBL.match(i)) for i in ids]) > 0.5:
            raise KeyError(
                f"var has no gene-symbol column {gene_key!r} and the var_names are Ensembl IDs (e.g. {ids[0]!r}); "
                f"pass gene_key= naming the column of gene symbols (var columns: {list(var.columns)}), or "
                "gene_key=None to keep the IDs."
            )
        table = pd.DataFrame(index=pd.Index(ids.to_numpy(dtype=object)))
    duplicated = table.index[table.index.duplicated()].unique()
    if len(duplicated):
        source = f"var[{gene_key!r}]" if "gene_id" in table.columns else "var_names"
        raise ValueError(
            f"{len(duplicated)} gene symbols in {source} occur more than once (e.g. {list(duplicated[:5])}). "
            "Make them unique first (adata.var_names_make_unique() after setting the symbols as var_names), or "
            "pass gene_key=None to keep the original var_names."
        )
    return table


# --- the reduction ---------------------------------------------------------------------------------------------------


@dataclass
class _Check:
    """What the chunks revealed about the values."""

    non_finite: np.ndarray  # non-finite values per condition
    looks_like_counts: bool = False
    max_value: float = 0.0


def _accumulate(
    source: _Source, codes: np.ndarray, n_conditions: int, chunk_size: int, *, progress: bool
) -> tuple[np.ndarray, _Check]:
    """Per-condition sums (float64, conditions × stored genes), reading the matrix chunk by chunk."""
    from tqdm.auto import tqdm

    if len(codes) != source.shape[0]:
        raise ValueError(f"{source.what} has {source.shape[0]} rows but obs has {len(codes)} cells.")
    sums = np.zeros((n_conditions, source.shape[1]))
    check = _Check(non_finite=np.zeros(n_conditions, dtype=np.int64))
    if numba() is not None and source.matrix is not None and source.format != "csc":
        # the kernel reads the matrix where it lies, in one pass: nothing to gather, convert or chunk
        with tqdm(total=1, desc="pseudobulk", unit="matrix", disable=not progress) as bar:
            _check_counts(source.matrix[: _sample_rows(source.matrix)], check)
            check.non_finite += add_rows(source.matrix, codes, sums)
            bar.update()
        return sums, check
    n_threads = _n_threads()
    in_memory_rows = source.matrix is not None and source.format != "csc"
    reduce = _reduce_in_memory if in_memory_rows else partial(_reduce_read, buffers=_Buffers())
    chunks, n_chunks = _chunks(source, codes, chunk_size, (_Buffers(), _Buffers()))
    if source.matrix is None:
        chunks = _read_ahead(chunks)
    with ThreadPoolExecutor(n_threads) as pool:
        for i, chunk in enumerate(tqdm(chunks, total=n_chunks, desc="pseudobulk", unit="chunk", disable=not progress)):
            check.non_finite += reduce(pool, n_threads, chunk, sums, check if i == 0 else None)
    return sums, check


def _read_ahead(chunks: Iterator) -> Iterator:
    """The chunks, each next one read in a thread while the caller reduces this one (h5py's reads and the reduction
    both let the other thread run). The chunk reader alternates between two sets of buffers, so a read never
    overwrites the chunk being reduced."""
    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = reader.submit(next, chunks, None)
            yield chunk


def _sample_rows(matrix) -> int:
    """How many rows of a matrix hold about as many values as the raw-counts check samples."""
    return max(1, _COUNT_SAMPLE // max(matrix.shape[1], 1))


class _Buffers:
    """Arrays reused from chunk to chunk, so that their memory is not faulted in afresh for every chunk."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, dtype) -> np.ndarray:
        array = self._arrays.get(name)
        # Keep each within [n, 2n]: scipy copies index and data arrays that view less than half of their base.
        if array is None or array.dtype != dtype or not n <= len(array) <= 2 * n:
            array = self._arrays[name] = np.empty(n, dtype)
        return array[:n]


def _chunks(source: _Source, codes: np.ndarray, chunk_size: int, buffers: tuple[_Buffers, _Buffers]
            ) -> tuple[Iterator, int]:
    """The chunks to reduce, and how many there are.

    An in-memory matrix is read in condition order, as (matrix, rows, their codes): gathering rows costs one copy of
    the chunk, and a chunk holding few conditions keeps the sparse product's output small and lets the threads share
    the conditions out. A file is read in stored order, as (block, its rows' codes, the columns it covers); a CSC
    matrix by columns.
    """
    n_obs, n_vars = source.shape
    if source.format == "csc":
        width = max(1, chunk_size * n_vars // max(n_obs, 1))  # as many values as a chunk of rows
        starts = range(0, n_vars, width)
        chunks = (
            (_compact(_read_columns(source, a, min(a + width, n_vars), buffers[i % 2]).tocsr()), codes,
             slice(a, a + width))
            for i, a in enumerate(starts)
        )
        return chunks, len(starts)
    if source.matrix is not None:
        order = np.argsort(codes, kind="stable")
        order = order[codes[order] >= 0]
        starts = range(0, len(order), chunk_size)
        rows = (order[a : a + chunk_size] for a in starts)
        return ((source.matrix, r, codes[r]) for r in rows), len(starts)
    starts = range(0, n_obs, chunk_size)
    chunks = (
        (_read_rows(source, a, min(a + chunk_size, n_obs), buffers[i % 2]), codes[a : a + chunk_size], slice(None))
        for i, a in enumerate(starts)
    )
    return chunks, len(starts)


def _reduce_in_memory(pool, n_threads: int, chunk, sums: np.ndarray, check: _Check | None) -> np.ndarray:
    """Add the sums of a chunk of in-memory rows, in condition order; each thread gathers and sums whole conditions.

    Returns the non-finite values per condition.
    """
    matrix, rows, codes = chunk
    if check is not None:
        _check_counts(_gather(matrix, rows[: _sample_rows(matrix)]), check)

    def reduce(part: tuple[int, int]) -> np.ndarray:
        a, b = part
        return add_rows(_gather(matrix, rows[a:b]), codes[a:b], sums)

    return sum(pool.map(reduce, condition_runs(codes, n_threads)), np.zeros(len(sums), dtype=np.int64))


def _gather(matrix, rows: np.ndarray):
    block = matrix[rows]
    return _compact(block) if sparse.issparse(block) else block


def _reduce_read(
    pool, n_threads: int, chunk, sums: np.ndarray, check: _Check | None, *, buffers: _Buffers
) -> np.ndarray:
    """Add the sums of a chunk read from a file (or a CSC matrix); returns the non-finite values per condition.

    Its cells come in stored order, so every condition may appear: the threads share out the values to convert, then
    the conditions to sum.
    """
    block, codes, columns = chunk
    if check is not None:
        _check_counts(block, check)
    if numba() is not None:  # the kernel shares the conditions out between the cores itself
        return add_rows(block, codes, sums[:, columns])
    if sparse.issparse(block):
        block, bad_rows = _to_float64(pool, n_threads, block, buffers.get("float64", block.nnz, np.float64))
    else:
        bad_rows = np.nonzero(~np.isfinite(block))[0]
    bad = codes[bad_rows]
    non_finite = np.bincount(bad[bad >= 0], minlength=len(sums))
    present = codes[codes >= 0]  # a view of a backed file codes the cells outside it -1
    if len(present):
        # Only the conditions present in the chunk get a row in the indicator.
        lo, hi = int(present.min()), int(present.max()) + 1
        local = np.where(codes >= 0, codes - lo, -1)
        out = sums[lo:hi, columns]
        if sparse.issparse(block):
            _add_products(pool, n_threads, indicator(local, hi - lo), block, out)
        else:
            out += _dense_sums(pool, n_threads, local, block, hi - lo)
    return non_finite


def _n_threads() -> int:
    return max(1, min(_MAX_THREADS, cores()))


def _splits(weights_cumsum: np.ndarray, n_parts: int) -> list[tuple[int, int]]:
    """Split ``range(len(weights_cumsum) - 1)`` into up to ``n_parts`` runs of about equal weight."""
    targets = np.linspace(0, weights_cumsum[-1], n_parts + 1)
    edges = np.unique(np.searchsorted(weights_cumsum, targets).clip(0, len(weights_cumsum) - 1))
    edges[0], edges[-1] = 0, len(weights_cumsum) - 1
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _to_float64(pool, n_threads: int, block, out: np.ndarray):
    """The CSR block with its values copied into ``out`` (float64), and the row of every non-finite value."""

    def copy(part: tuple[int, int]) -> np.ndarray:
        a, b = part
        np.copyto(out[a:b], block.data[a:b])
        return a + np.flatnonzero(~np.isfinite(out[a:b]))

    edges = np.linspace(0, block.nnz, n_threads + 1).astype(np.int64)
    bad = np.concatenate([np.zeros(0, np.int64), *pool.map(copy, zip(edges[:-1], edges[1:]))])
    rows = np.searchsorted(block.indptr, bad, side="right") - 1
    return sparse.csr_matrix((out, block.indices, block.indptr), shape=block.shape), rows


def _add_products(pool, n_threads: int, indicator: sparse.csr_matrix, block, out: np.ndarray) -> None:
    """``out += indicator @ block``, each thread taking a run of conditions (rows of ``out``).

    Splitting by condition rather than by cell keeps the sparse product's output as small as in one thread, and the
    threads write disjoint rows, so the result does not depend on their timing.
    """

    def add(part: tuple[int, int]) -> None:
        a, b = part
        out[a:b] += (indicator[a:b] @ block).toarray()

    list(pool.map(add, _splits(indicator.indptr, n_threads)))


def _dense_sums(pool, n_threads: int, codes: np.ndarray, block: np.ndarray, n_conditions: int) -> np.ndarray:
    """``indicator @ block`` for a dense block, each thread taking a run of cells; summed in a fixed order."""

    def product(part: tuple[int, int]) -> np.ndarray:
        a, b = part
        return indicator(codes[a:b], n_conditions) @ block[a:b]

    edges = np.linspace(0, len(codes), min(n_threads, max(len(codes), 1)) + 1).astype(int)
    total = np.zeros((n_conditions, block.shape[1]))
    for result in pool.map(product, zip(edges[:-1], edges[1:])):
        total += result
    return total


def _read_rows(source: _Source, start: int, stop: int, buffers: _Buffers):
    """Rows ``start:stop`` of a file's matrix as an ndarray or CSR matrix."""
    if isinstance(source.element, _h5py().Dataset):
        return source.element[start:stop]
    shape = (stop - start, source.shape[1])
    return _read_compressed(source, start, stop, sparse.csr_matrix, shape, buffers)


def _read_columns(source: _Source, start: int, stop: int, buffers: _Buffers):
    """Columns ``start:stop`` of a CSC matrix, as CSC."""
    if source.matrix is not None:
        return source.matrix[:, start:stop]
    shape = (source.shape[0], stop - start)
    return _read_compressed(source, start, stop, sparse.csc_matrix, shape, buffers)


def _read_compressed(source: _Source, start: int, stop: int, kind, shape: tuple[int, int], buffers: _Buffers):
    """Rows (CSR) or columns (CSC) ``start:stop`` straight from the file's ``indptr``, ``indices`` and ``data``."""
    group = source.element
    indptr = group["indptr"][start : stop + 1]
    lo, hi = int(indptr[0]), int(indptr[-1])
    arrays = [buffers.get(name, hi - lo, group[name].dtype) for name in ("data", "indices")]
    raw = [source.raw(name) for name in ("data", "indices")]
    if hi > lo and None in raw:
        for name, out in zip(("data", "indices"), arrays):
            group[name].read_direct(out, np.s_[lo:hi])
    elif hi > lo:  # stored raw: the values and the indices read at once, on two cores
        with ThreadPoolExecutor(1) as helper:
            indices = helper.submit(raw[1].read, lo, hi, arrays[1])
            raw[0].read(lo, hi, arrays[0])
            indices.result()
    return _compact(kind((*arrays, indptr - lo), shape=shape))


def _check_counts(block, check: _Check) -> None:
    """Note whether the first chunk holds only whole numbers above 1: raw counts, not log values."""
    max_value, integers = value_sample(block)
    if max_value is not None:
        check.max_value, check.looks_like_counts = max_value, looks_like_counts(max_value, integers)


def value_sample(block) -> tuple[float | None, bool]:
    """The largest finite value of a block's first values, and whether they are all whole numbers."""
    values = (block.data if sparse.issparse(block) else np.asarray(block)).ravel()[:_COUNT_SAMPLE]
    values = values[np.isfinite(values)]  # non-finite values are reported on their own
    if not values.size:
        return None, True
    return float(values.max()), bool(np.array_equal(values, np.trunc(values)))


def looks_like_counts(max_value: float | None, integers: bool) -> bool:
    return max_value is not None and integers and max_value > _RAW_COUNT_MAX


def _non_finite_message(non_finite: np.ndarray, conditions: list[str], what: str) -> str:
    order = np.argsort(-non_finite, kind="stable")
    worst = [f"{conditions[i]!r} ({non_finite[i]})" for i in order[:5] if non_finite[i] > 0]
    n_conditions = int((non_finite > 0).sum())
    return (
        f"{what} holds {int(non_finite.sum())} non-finite values (NaN or inf, or values so large that their sum "
        f"overflows) in {n_conditions} conditions: {', '.join(worst)}{', ...' if n_conditions > 5 else ''}. Fix or "
        "drop those cells before pseudobulking, e.g. recompute the log-normalisation."
    )


# --- the result ------------------------------------------------------------------------------------------------------


def _assemble(
    means: np.ndarray,
    conditions: list[str],
    n_cells: np.ndarray,
    var: pd.DataFrame,
    source: _Source,
    condition_key: str,
    layer: str | None,
    gene_key: str | None,
    appearance: list[str],
) -> anndata.AnnData:
    provenance = {
        "source": source.label,
        "condition_key": condition_key,
        "layer": layer,
        "gene_key": gene_key,
        "n_cells": int(n_cells.sum()),
        "condition_order": list(appearance),  # first appearance among the cells (the linear model's random draws)
    }
    gene_ids = var["gene_id"] if "gene_id" in var.columns else None
    return as_pseudobulk(means, conditions, var.index, n_cells=n_cells, gene_ids=gene_ids, provenance=provenance)


def as_pseudobulk(
    means,
    conditions,
    genes,
    *,
    n_cells=None,
    gene_ids=None,
    provenance: dict[str, Any] | None = None,
) -> anndata.AnnData:
    """The pseudobulk AnnData of a matrix of condition means computed elsewhere (in R, or a published table).

    This is the shape :func:`linpert.pseudobulk` returns and every model, split and metric reads.

    Parameters
    ----------
    means
        Conditions × genes, the mean log-normalised expression of each condition's cells.
    conditions
        The rows' condition names, canonical (``A+ctrl``, ``A+B``) and ``ctrl`` among them.
    genes
        The columns' gene symbols.
    n_cells
        Cells behind each row; 0 where unknown (the default).
    gene_ids
        The genes' original IDs, kept as ``var['gene_id']``.
    provenance
        Where the numbers came from, kept as ``uns['linpert']``.

    Examples
    --------
    >>> pb = as_pseudobulk(np.array([[1.0, 2.0], [3.0, 0.0]]), ["ctrl", "A+ctrl"], ["A", "B"])
    >>> pb.obs[["genes", "kind"]].to_dict("list")
    {'genes': ['', 'A'], 'kind': ['control', 'single']}
    """
    import anndata

    conditions = [str(c) for c in conditions]
    table = condition_table(conditions)
    if list(table.index) != conditions:
        given, canonical = next((c, n) for c, n in zip(conditions, table.index) if c != n)
        raise ValueError(
            f"Condition names are not canonical (e.g. {given!r} instead of {canonical!r}). Build the pseudobulk with "
            "pseudobulk() or load_dataset(), which name the conditions canonically."
        )
    require_one_row_each(conditions)
    require_control(conditions, what="the pseudobulk")
    genes = pd.Index([str(g) for g in genes], dtype=object)
    X = np.array(means, dtype=np.float64, order="C")
    if X.shape != (len(conditions), len(genes)):
        raise ValueError(f"The means are {X.shape[0]} × {X.shape[1]}, but there are {len(conditions)} conditions "
                         f"and {len(genes)} genes; pass a conditions × genes matrix.")
    n_cells = np.zeros(len(conditions), dtype=np.int64) if n_cells is None else np.asarray(n_cells, dtype=np.int64)
    obs = pd.DataFrame(
        {
            "genes": ["+".join(g) for g in table["genes"]],
            "kind": table["kind"].to_numpy(dtype=object),
            "n_cells": n_cells,
        },
        index=pd.Index(conditions, name="condition", dtype=object),
    )
    var = pd.DataFrame(index=genes)
    if gene_ids is not None:
        var["gene_id"] = pd.Index([str(g) for g in gene_ids], dtype=object)
    return anndata.AnnData(X=X, obs=obs, var=var, uns={"linpert": dict(provenance or {})})

"""Pseudobulk: the mean log-normalised expression of every perturbation condition.

The paper compares models on pseudobulk profiles: for each condition, the mean of the log-normalised ``X`` over that
condition's cells (spec §1; a mean, not a sum, and no re-normalisation). The layers, each readable alone:

* :mod:`._reduce`: the one block reducer, ``add_rows``, that adds cells into per-condition float64 sums (a numba
  kernel where numba is installed, a sparse indicator product otherwise) with its non-finite count;
* :mod:`._local`: the sources (an in-memory matrix; a backed ``.h5ad`` read chunk by chunk, the next chunk read while
  this one is reduced), the checks of values and labels, and the result's assembly;
* :mod:`._raw`: a file's arrays read with ``os.preadv`` where HDF5 stores them as plain bytes (h5py reads the rest);
* :mod:`._dask`: the reducer as Dask tasks over lazily read data, added in a tree;
* :mod:`._genes`: every cell on a few genes, read from a file chunk by chunk (the read-out genes' cells).

:func:`pseudobulk` chooses between the last two; :func:`as_pseudobulk` gives means computed elsewhere the same
shape.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .._config import renamed
from ._genes import read_genes
from ._local import PSEUDOBULK_VERSION, as_pseudobulk, check_values, looks_like_counts, value_sample

if TYPE_CHECKING:  # pragma: no cover
    import anndata

__all__ = [
    "PSEUDOBULK_VERSION", "as_pseudobulk", "check_values", "looks_like_counts", "pseudobulk", "read_genes", "value_sample",
]


@renamed(adata="cells")
def pseudobulk(
    cells: anndata.AnnData | str | os.PathLike,
    *,
    condition_key: str = "condition",
    layer: str | None = None,
    gene_key: str | None = "gene_name",
    chunk_size: int = 20_000,
    progress: bool = False,
    scheduler: Any = None,
) -> anndata.AnnData:
    """Average the cells of every condition into one pseudobulk profile.

    Parameters
    ----------
    cells
        Cell-level data holding log-normalised expression: an in-memory AnnData (dense, CSR or CSC), a backed AnnData
        (``anndata.read_h5ad(path, backed="r")``) or the path of an ``.h5ad`` file. Backed data and files are read
        ``chunk_size`` cells at a time, so memory stays near conditions × genes plus one chunk.
    condition_key
        The ``obs`` column naming each cell's condition (``ctrl``, ``A+ctrl``, ``A+B``). Names that differ only in
        gene order (``B+A`` and ``A+B``, ``ctrl+A`` and ``A+ctrl``) are merged, see :func:`linpert.canonical_names`.
    layer
        Average ``layers[layer]`` instead of ``X``.
    gene_key
        The ``var`` column of gene symbols; the original ``var_names`` are kept in ``var['gene_id']``. When the
        column is absent the ``var_names`` are used, unless they are Ensembl IDs. ``None`` keeps the ``var_names``.
    chunk_size
        Cells per chunk (genes per chunk for CSC data are scaled to hold as many values).
    progress
        Show a tqdm progress bar over the chunks.
    scheduler
        Run on Dask (``pip install 'linpert[dask]'``): the address of a ``distributed`` scheduler
        (``"tcp://host:8786"``) or a ``distributed.Client``. Dask is also used, on the active scheduler, when ``X``
        is a ``dask.array`` (``anndata.experimental.read_lazy``) or ``cells`` is the path of a zarr store.

    Returns
    -------
    AnnData
        Conditions × genes, ``X`` a dense float64 mean; ``obs_names`` the canonical conditions (``ctrl`` first, the
        rest sorted), ``obs`` columns ``genes``, ``kind`` and ``n_cells``; provenance in ``uns['linpert']``.

    Examples
    --------
    >>> import anndata, numpy as np, pandas as pd
    >>> cells = anndata.AnnData(
    ...     np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 2.0], [4.0, 0.0]]),
    ...     obs=pd.DataFrame({"condition": ["ctrl", "ctrl", "ctrl+KLF1", "KLF1+ctrl"]}, index=list("abcd")),
    ...     var=pd.DataFrame(index=["GATA1", "KLF1"]),
    ... )
    >>> pb = pseudobulk(cells)
    >>> pb.obs_names.tolist(), pb.obs["n_cells"].tolist()
    (['ctrl', 'KLF1+ctrl'], [2, 2])
    >>> pb.X
    array([[2., 1.],
           [3., 1.]])
    """
    from ._local import local

    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of cells, got {chunk_size!r}.")
    from .. import _dask  # the detection imports nothing of Dask

    options = dict(condition_key=condition_key, layer=layer, gene_key=gene_key, chunk_size=int(chunk_size),
                   progress=progress)
    if _dask.wants_dask(cells, layer=layer, scheduler=scheduler):
        from ._dask import pseudobulk as on_dask

        return _keep_dropped(cells, on_dask(cells, **options, scheduler=scheduler))
    return _keep_dropped(cells, local(cells, **options))


def _keep_dropped(cells: Any, result: anndata.AnnData) -> anndata.AnnData:
    """What a reader left out of the cells (``read_gears``: the conditions outside GEARS' graph) stays on record."""
    given = (getattr(cells, "uns", None) or {}).get("linpert", {}) if not isinstance(cells, (str, os.PathLike)) else {}
    for key in ("dropped_conditions", "dropped_reason"):
        if key in given:
            value = given[key]
            result.uns["linpert"][key] = value if isinstance(value, str) else [str(v) for v in value]
    return result

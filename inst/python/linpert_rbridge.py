"""Converters between the linpert R package and the linpert Python package.

R calls these through reticulate. Numbers cross as raw little-endian buffers (R ``raw`` -> Python ``bytearray``
and back) and everything else as lists and strings, so nothing depends on reticulate's NumPy conversion: the
reticulate that Debian 12 ships (1.28) cannot convert NumPy 2 arrays. Buffers are read without a copy
(``np.frombuffer``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np


def cells_by_genes(
    data: bytearray,
    n_cells: int,
    n_genes: int,
    *,
    indices: bytearray | None = None,
    indptr: bytearray | None = None,
) -> Any:
    """Rebuild an R genes × cells matrix as a cells × genes matrix, without copying the values.

    R stores a dense matrix column by column, so the genes × cells matrix read row by row is cells × genes; a
    ``dgCMatrix`` (compressed columns) of genes × cells is, slot for slot, a CSR matrix of cells × genes.

    Parameters
    ----------
    data
        The values (``writeBin(as.double(x), raw(), endian = "little")``), or the ``x`` slot of a dgCMatrix.
    n_cells, n_genes
        The shape of the result.
    indices, indptr
        The ``i`` and ``p`` slots of a dgCMatrix as little-endian int32 buffers; ``None`` for a dense matrix.

    Examples
    --------
    >>> values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).tobytes()  # R: matrix(1:6, nrow = 2), genes x cells
    >>> cells_by_genes(bytearray(values), 3, 2)
    array([[1., 2.],
           [3., 4.],
           [5., 6.]])
    """
    n_cells, n_genes = int(n_cells), int(n_genes)
    values = np.frombuffer(data, dtype="<f8")
    if indices is None:
        return values.reshape(n_cells, n_genes)
    from scipy import sparse

    return sparse.csr_matrix(
        (values, np.frombuffer(indices, dtype="<i4"), np.frombuffer(indptr, dtype="<i4")),
        shape=(n_cells, n_genes),
    )


def pseudobulk(
    matrix: Any,
    conditions: str | Sequence[str],
    var_names: str | Sequence[str],
    *,
    gene_names: str | Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an AnnData from R's pieces, run :func:`linpert.pseudobulk` and return the result for R.

    ``gene_names``, when given, are the symbols (rowData ``gene_name``); ``var_names`` are then kept as
    ``var['gene_id']``. ``options`` are passed on to :func:`linpert.pseudobulk` as keywords.
    """
    import anndata as ad
    import pandas as pd

    import linpert

    obs = pd.DataFrame({"condition": _strings(conditions)})
    obs.index = obs.index.astype(str)
    var = pd.DataFrame(index=pd.Index(_strings(var_names)))
    gene_key = None
    if gene_names is not None:
        var["gene_name"] = _strings(gene_names)
        gene_key = "gene_name"
    adata = ad.AnnData(X=matrix, obs=obs, var=var)
    result = linpert.pseudobulk(adata, condition_key="condition", gene_key=gene_key, **(options or {}))
    return to_r(result)


def to_r(pb: Any) -> dict[str, Any]:
    """Flatten a pseudobulk AnnData into buffers, lists and plain values that reticulate converts to R.

    ``x`` holds ``X`` row by row (conditions × genes), which R reads column by column as genes × conditions.
    """
    x = np.ascontiguousarray(_dense(pb.X), dtype="<f8")
    var = pb.var
    return {
        "x": bytearray(x.tobytes()),
        "n_obs": int(pb.n_obs),
        "n_vars": int(pb.n_vars),
        "obs_names": [str(n) for n in pb.obs_names],
        "var_names": [str(n) for n in pb.var_names],
        "genes": [str(g) for g in pb.obs["genes"]],
        "kind": [str(k) for k in pb.obs["kind"]],
        "n_cells": [int(n) for n in pb.obs["n_cells"]],
        "gene_id": [str(g) for g in var["gene_id"]] if "gene_id" in var.columns else None,
        "provenance": json.loads(json.dumps(pb.uns.get("linpert", {}), default=_plain)),
    }


def _strings(values: str | Sequence[str]) -> list[str]:
    # reticulate passes a length-one character vector as a plain str
    return [values] if isinstance(values, str) else [str(v) for v in values]


def _dense(x: Any) -> np.ndarray:
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def _plain(value: Any) -> Any:
    # NumPy scalars and arrays in uns -> Python values that json (and then reticulate) understands
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value)

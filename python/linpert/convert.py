"""Convert between Python's AnnData and R's SingleCellExperiment (for Python users; R users call ``as_sce()``).

:func:`to_sce` and :func:`from_sce` go through anndata2ri 2.x inside this Python process's embedded R, started by
linpert's one R gateway (:mod:`linpert._r`). Assays/layers, ``obs``/``colData``, ``var``/``rowData`` and the sparse
layout (CSR/CSC ↔ ``dgCMatrix``) are kept. R stores numbers as doubles, so a float32 or integer matrix comes back as
float64; integer ``obs``/``var`` columns come back as int64 (anndata2ri gives nullable Int32), string keys of ``uns``
as ``str``.

>>> from linpert.convert import to_sce, from_sce  # doctest: +SKIP
>>> sce = to_sce(adata)  # doctest: +SKIP
>>> back = from_sce(sce)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = ["from_sce", "to_sce"]


def _converter():
    from . import _r

    _r._robjects()  # starts R, or says how to install R and rpy2
    for package in ("SingleCellExperiment", "SummarizedExperiment", "Matrix"):
        _r.require(package)
    try:
        import anndata2ri
    except ImportError as err:
        raise _r.RUnavailableError(
            f"Converting to SingleCellExperiment needs anndata2ri: pip install 'linpert[r]' ({err})."
        ) from err
    from rpy2.robjects.conversion import localconverter

    return localconverter(anndata2ri.converter)


def to_sce(adata: AnnData) -> Any:
    """An AnnData (cells × genes) as an R ``SingleCellExperiment`` (genes × cells), an rpy2 object.

    ``X`` becomes the assay ``X`` and every layer an assay of its name; a sparse matrix becomes a ``dgCMatrix``.
    ``uns`` entries that R cannot hold (DataFrames nested in dicts, objects) are left out and named in a warning.

    Examples
    --------
    >>> sce = to_sce(linpert.datasets.simulate(n_genes=50, n_singles=3, n_doubles=1))  # doctest: +SKIP
    """
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"to_sce() takes an AnnData, not {type(adata).__name__}; read one with anndata.read_h5ad().")
    if adata.isbacked:
        adata = adata.to_memory()
    adata = adata.copy()
    dropped = [key for key, value in adata.uns.items() if not _r_friendly(value)]
    for key in dropped:
        del adata.uns[key]
    if dropped:
        import warnings

        warnings.warn(
            f"uns entries {dropped} cannot be stored in R's metadata and were left out; keep them in Python.",
            stacklevel=2,
        )
    with _converter() as cv:
        return cv.py2rpy(adata)


def from_sce(sce: Any) -> AnnData:
    """An R ``SingleCellExperiment`` (an rpy2 object) as an AnnData; the assay ``X`` (else the first) becomes ``X``.

    Examples
    --------
    >>> adata = from_sce(to_sce(adata))  # doctest: +SKIP
    """
    from . import _r

    ro = _r._robjects()
    if "SummarizedExperiment" not in set(ro.r["is"](sce)):
        raise TypeError("from_sce() takes an R SingleCellExperiment or SummarizedExperiment (an rpy2 object).")
    with _converter() as cv:
        adata = cv.rpy2py(sce)
    _tidy_frame(adata.obs)
    _tidy_frame(adata.var)
    adata.uns = {str(k): v for k, v in adata.uns.items()}
    return adata


def _r_friendly(value: Any) -> bool:
    # what anndata2ri turns into R metadata: scalars, strings, arrays, and dicts/lists of those
    if value is None or isinstance(value, (str, bool, int, float, np.generic, np.ndarray)):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _r_friendly(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (str, bool, int, float, np.generic)) for v in value)
    return False


def _tidy_frame(frame) -> None:
    import pandas as pd

    frame.index = pd.Index(frame.index.astype(str), name=frame.index.name)
    for column in frame.columns:
        col = frame[column]
        if pd.api.types.is_integer_dtype(col) and pd.api.types.is_extension_array_dtype(col) and not col.isna().any():
            frame[column] = col.astype(np.int64)

"""A model's identity in a run folder: its class and the exact values of its parameters.

A stored cell is reused only when the model that made it has the same identity as the model of the new run, so the
identity must change whenever a parameter's value changes. ``repr`` is not enough: numpy abbreviates arrays over
1,000 values and pandas frames over 60 rows, and a set's order changes between processes. Values are therefore
described exactly (arrays, frames and AnnData by a SHA-256 of their contents); a value that cannot be described
exactly (an object linpert does not know, a function) makes the model *opaque*, and a run folder then reuses its
cells only under a label the user gave.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
from typing import Any

import numpy as np
import pandas as pd


class Opaque(Exception):
    """A parameter linpert cannot describe exactly."""


def model_identity(model) -> str:
    """Class and parameters, exactly; an opaque value is named by its type (the run then needs a label to reuse)."""
    params = model_params(model)
    described = json.dumps(params, sort_keys=True, default=_lenient)
    return f"{type(model).__module__}.{type(model).__qualname__}({described})"


def why_opaque(model) -> str | None:
    """Why a model's identity cannot show every change (no ``get_params()``, or which of its parameters hold a
    function or a value linpert cannot compare exactly); None when it can."""
    if not hasattr(model, "get_params"):
        return "no get_params()"
    names = []
    for name, value in model_params(model).items():
        try:
            json.dumps(value, default=_exact)
        except (Opaque, TypeError, ValueError):
            names.append(name)
    if not names:
        return None
    return f"a function among its parameters, or a value linpert cannot compare exactly: {', '.join(names)}"


def model_params(model) -> dict[str, Any]:
    """``get_params()``, or for a model without it, its public attributes; a failing ``get_params`` is named."""
    if hasattr(model, "get_params"):
        try:
            params = model.get_params()
        except Exception as err:
            raise TypeError(f"{type(model).__name__}.get_params() failed ({type(err).__name__}: {err}). linpert "
                            "reads it to tell whether stored results are this model's: make it return the "
                            "parameters given to __init__ as a dict.") from err
        if not isinstance(params, dict):
            raise TypeError(f"{type(model).__name__}.get_params() returned {type(params).__name__}, not a dict of "
                            "the parameters given to __init__.")
        return {str(k): v for k, v in params.items()}
    # sklearn's convention: public, not fitted (trailing underscore) attributes are the parameters
    return {k: v for k, v in vars(model).items() if not k.startswith("_") and not k.endswith("_")}


def _lenient(value: Any) -> Any:
    try:
        return _exact(value)
    except (Opaque, TypeError, ValueError):  # named by where it is defined: its code is out of linpert's sight
        return f"{getattr(value, '__module__', '')}.{_qualname(value)}"


def _exact(value: Any) -> Any:
    """A JSON-able description that changes whenever the value does, or :class:`Opaque`."""
    if isinstance(value, np.generic):
        return {"numpy": value.dtype.str, "value": value.item()}
    if isinstance(value, np.ndarray):
        return {"array": value.dtype.str, "shape": list(value.shape), "sha256": _array_digest(value)}
    if isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
        return {type(value).__name__: _pandas_digest(value)}
    if hasattr(value, "tocsr") and hasattr(value, "shape"):  # a scipy sparse matrix or array
        return {"sparse": list(value.shape), "sha256": _sparse_digest(value)}
    if hasattr(value, "n_obs") and hasattr(value, "obs_names"):  # an AnnData (a reference, or an adapter's cells)
        return {"AnnData": _anndata_digest(value)}
    if isinstance(value, (set, frozenset)):  # sorted: a set's order changes between processes
        return {"set": sorted(json.dumps(v, sort_keys=True, default=_exact) for v in value)}
    if isinstance(value, os.PathLike):
        return {"path": os.fspath(value)}
    if isinstance(value, enum.Enum):
        return {"enum": f"{type(value).__qualname__}.{value.name}"}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"dataclass": _qualname(value), "fields": {f.name: getattr(value, f.name)
                                                          for f in dataclasses.fields(value)}}
    if hasattr(value, "get_params") and not isinstance(value, type):  # a nested estimator
        return {"estimator": _qualname(value), "params": model_params(value)}
    raise Opaque(type(value).__name__)


def _qualname(value: Any) -> str:
    return getattr(value, "__qualname__", None) or type(value).__qualname__


def _array_digest(array: np.ndarray) -> str:
    if array.dtype.kind == "O":
        return _digest(json.dumps(array.tolist(), default=_exact).encode())
    return _digest(np.ascontiguousarray(array))


def _sparse_digest(matrix) -> str:
    csr = matrix.tocsr()
    return _digest(csr.data, csr.indices, csr.indptr)


def _anndata_digest(adata) -> str:
    """Its values, names and annotations; a file-backed one by its file as it is now (its matrix is not read)."""
    if adata.isbacked:
        stat = os.stat(adata.filename)
        return _digest(f"{os.path.realpath(adata.filename)}\0{stat.st_size}\0{stat.st_mtime_ns}")
    X = adata.X
    values = _sparse_digest(X) if hasattr(X, "tocsr") else _digest(np.asarray(X))  # never densify a cell matrix
    return _digest(values, _pandas_digest(adata.obs), _pandas_digest(adata.var))


def _pandas_digest(value) -> str:
    frame = value.to_frame() if isinstance(value, pd.Series) else value
    if isinstance(value, pd.Index):
        frame = pd.DataFrame(index=value)
    header = json.dumps([list(map(str, frame.columns)), list(map(str, frame.dtypes)), str(frame.index.dtype),
                         len(frame)]).encode()
    try:  # pandas' hash is seeded with a fixed key: the same in every process
        rows = pd.util.hash_pandas_object(frame, index=True).to_numpy() if len(frame.columns) else \
            pd.util.hash_pandas_object(frame.index).to_numpy()
    except TypeError as err:  # cells holding lists or dicts
        raise Opaque(f"a frame with unhashable cells ({err})") from None
    return _digest(header, rows)


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode() if isinstance(part, str) else
                 np.ascontiguousarray(part).tobytes() + str(np.asarray(part).dtype).encode())
    return h.hexdigest()

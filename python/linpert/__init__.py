"""linpert: judge gene-perturbation effect prediction against simple linear baselines.

The public API is re-exported here and loaded lazily, so ``import linpert`` stays fast and pulls in neither
anndata, torch nor rpy2 until a function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._config import __version__

# public name -> module that defines it
_EXPORTS = {
    "Condition": "linpert._conditions",
    "parse_condition": "linpert._conditions",
    "canonical_names": "linpert._conditions",
    "condition_table": "linpert._conditions",
    "pseudobulk": "linpert._pseudobulk",
    "as_pseudobulk": "linpert._pseudobulk",
}
_SUBMODULES = ("datasets", "splits", "models", "metrics", "interactions", "benchmark", "published", "submission",
               "plot", "report", "adapters", "embeddings", "convert")

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from . import (adapters, benchmark, convert, datasets, embeddings, interactions, metrics, models, plot, published,
                   report, splits, submission)
    from ._conditions import Condition, canonical_names, condition_table, parse_condition
    from ._pseudobulk import as_pseudobulk, pseudobulk


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"linpert.{name}")
    else:
        raise AttributeError(f"module 'linpert' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

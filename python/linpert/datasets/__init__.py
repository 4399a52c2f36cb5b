"""Datasets: the benchmark's published data (downloaded once, then cached), readers for local files, simulation.

>>> import linpert
>>> pb = linpert.datasets.adamson()  # doctest: +SKIP
>>> cells = linpert.datasets.read_gears("data/adamson", backed=True)  # doctest: +SKIP

Downloads land in ``cache_dir=``, else ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``; ``$LINPERT_MIRROR``
fetches ``<mirror>/<filename>`` instead of the publisher's address (see :func:`list_resources`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._download import DownloadError, data_dir
from ._readers import describe_file, read_anndata, read_gears, read_scfoundation_norman
from ._registry import (
    RESOURCES,
    Resource,
    adamson,
    fetch,
    list_resources,
    load,
    norman,
    norman_gears,
    replogle_k562,
    replogle_rpe1,
)

if TYPE_CHECKING:  # pragma: no cover
    from ._simulate import saturating_response, simulate

__all__ = [
    "DownloadError",
    "RESOURCES",
    "Resource",
    "adamson",
    "data_dir",
    "describe_file",
    "fetch",
    "list_resources",
    "load",
    "norman",
    "norman_gears",
    "read_anndata",
    "read_gears",
    "read_scfoundation_norman",
    "replogle_k562",
    "replogle_rpe1",
    "saturating_response",
    "simulate",
]


def __getattr__(name: str) -> Any:
    # the simulator is imported on first use, like the rest of linpert's public API
    if name in ("simulate", "saturating_response"):
        value = getattr(importlib.import_module("linpert.datasets._simulate"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'linpert.datasets' has no attribute {name!r}")

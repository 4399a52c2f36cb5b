"""Dask plumbing shared by the two jobs that run on it: finding Dask-backed data, connecting to a scheduler, computing.

The jobs themselves are executors over linpert's own code: :mod:`linpert._pseudobulk._dask` (the block reducer
as tasks) and :mod:`linpert.benchmark._dask` (the grid's cells as tasks). Everything imports Dask inside functions,
so ``import linpert`` and the in-memory paths never load ``dask`` or ``distributed``.

A ``scheduler`` is an address (``"tcp://host:8786"``) or a ``distributed.Client``; ``None`` uses whatever Dask
scheduler is active (the local threaded one unless a ``Client`` was made the default).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._config import optional

#: Seconds to wait for a scheduler before saying it cannot be reached.
CONNECT_TIMEOUT = 5.0


# --- detection and connection ---------------------------------------------------------------------------------------


def is_dask_array(matrix: Any) -> bool:
    """Whether ``matrix`` is a ``dask.array.Array``, judged without importing Dask."""
    return any(cls.__module__.split(".")[0] == "dask" and cls.__name__ == "Array" for cls in type(matrix).__mro__)


def wants_dask(adata: Any, *, layer: str | None, scheduler: Any) -> bool:
    """Whether :func:`linpert.pseudobulk` should take the Dask path: a scheduler, a zarr store, or Dask-backed data."""
    if scheduler is not None:
        return True
    if isinstance(adata, (str, os.PathLike)):
        return _is_zarr(Path(adata))
    if not hasattr(adata, "layers"):
        return False
    matrix = adata.X if layer is None else (adata.layers[layer] if layer in adata.layers else None)
    return is_dask_array(matrix)


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in (".zgroup", "zarr.json"))


def _require_dask(what: str) -> None:
    optional("dask.array", extra="dask", needed_for=what)


@contextmanager
def connect(scheduler: Any):
    """The ``distributed.Client`` for ``scheduler`` (an address, a Client, or ``None`` for the active scheduler).

    A client made here from an address is closed on exit; a Client passed in is left open.
    """
    if scheduler is None:
        yield None
        return
    distributed = optional("distributed", extra="dask", needed_for="scheduler=")
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise TypeError(
            f"scheduler must be the address of a Dask scheduler (e.g. 'tcp://10.0.0.5:8786') or a "
            f"distributed.Client, got {scheduler!r}."
        )
    address = scheduler.strip()
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(
            f"Cannot reach the Dask scheduler at {address!r} within {CONNECT_TIMEOUT:g} s ({err}). Check the address, "
            f"or start a scheduler with `dask scheduler` and workers with `dask worker {address}`. A scheduler is "
            "optional: leave out --scheduler / scheduler= (and unset LINPERT_SCHEDULER) to run on this machine."
        ) from err
    try:
        yield client
    finally:
        client.close()


def _compute(client, values: list, *, progress: bool) -> list:
    """Compute Dask collections on ``client``, or on the active scheduler when it is ``None``."""
    import dask

    if client is not None:
        futures = client.compute(values)
        if progress:
            from distributed import progress as show

            show(futures)
        return client.gather(futures)
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return list(dask.compute(*values))
    return list(dask.compute(*values))

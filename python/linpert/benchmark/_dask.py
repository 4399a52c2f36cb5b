"""The benchmark grid as tasks on a Dask cluster: each task fits one (seed, model) cell and writes it into the run's
folder (a shared filesystem path) atomically, results file last, so a task retried after its worker died neither loses
nor duplicates a cell."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .._dask import connect

if TYPE_CHECKING:  # pragma: no cover
    import anndata

# Cells of the grid that share a worker process run one at a time: _run_cell measures memory with tracemalloc,
# which is process-wide.
_CELL_LOCK = threading.Lock()


def run_grid(
    scheduler: Any,
    data: anndata.AnnData,
    splits: dict,
    grid: list[tuple[int, str, Any]],
    *,
    store,
    readout: np.ndarray,
    ctrl: np.ndarray,
    dataset: str,
    progress: bool,
) -> dict[tuple[int, str], dict]:
    """Run the grid's unfinished (seed, model) cells as tasks on a Dask cluster.

    With a store, each task writes its cell into the run's folder (which must be a path every worker can reach) and
    returns nothing: the runner reads the cells back from there. Without one, the cells come back to the driver.
    A worker that dies takes its task with it; the scheduler runs the task again elsewhere (up to
    ``distributed.scheduler.allowed-failures`` times), and a task that finds its cell already finished skips it.
    """
    import copy

    from tqdm.auto import tqdm

    with connect(scheduler) as client:
        if client is None:
            raise ValueError("run_grid() needs a scheduler address or a distributed.Client.")
        import distributed
        from distributed import as_completed

        if store is not None:
            store = copy.copy(store)  # workers may start elsewhere: give them absolute paths
            store.root, store.cells = store.root.resolve(), store.cells.resolve()
        todo = [(s, label, m) for s, label, m in grid if store is None or store.load(s, label) is None]
        if not todo:
            return {}
        # A task holding the data, rather than scattered data, so a lost copy is recomputed rather than lost.
        shared = client.submit(_identity, data, pure=False)
        futures = {
            client.submit(
                _grid_cell, shared, splits[seed], label, model, readout, ctrl, dataset, store, pure=False,
                key=f"linpert-cell-seed{seed}-{label}-{os.urandom(4).hex()}",
            ): (seed, label)
            for seed, label, model in todo
        }
        cells = {}
        bar = tqdm(total=len(futures), desc=f"{dataset} on Dask", unit="fit", disable=not progress)
        for future in as_completed(futures):
            try:
                cell = future.result()
            except distributed.KilledWorker as err:
                seed, label = futures[future]
                kept = "Pass out= to keep finished cells"
                if store is not None:
                    kept = f"The finished cells are kept in {store.root}; run again to resume"
                raise RuntimeError(
                    f"Fitting {label!r} on seed {seed} killed Dask workers repeatedly ({err}); it may need more memory "
                    f"than a worker has (dask worker --memory-limit). {kept}."
                ) from err
            if cell is not None:
                cells[futures[future]] = cell
            bar.update()
        bar.close()
        return cells


def _identity(value):
    return value


def _grid_cell(data, split, label: str, model, readout, ctrl, dataset: str, store) -> dict | None:
    """Fit, predict and score one cell of the grid on a worker; with a store, write it there and return nothing."""
    from ..metrics import score
    from ._cell import _run_cell

    with _CELL_LOCK:
        if store is not None and store.load(split.seed, label) is not None:  # a retry of a task that finished
            return None
        cell = _run_cell(data, split, label, model, readout, ctrl, dataset, score)
        if store is None:
            return cell
        store.save(split.seed, label, cell)  # atomic files, the results file last
        return None

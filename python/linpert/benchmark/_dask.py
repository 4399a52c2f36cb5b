"""The benchmark grid as tasks on a Dask cluster: each task fits one (seed, model) cell and writes it into the run's
folder (a shared filesystem path) atomically, results file last, so a task retried after its worker died neither loses
nor duplicates a cell."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from .._dask import connect
from .._errors import WorkerError

# Cells of the grid that share a worker process run one at a time: _run_cell measures memory with tracemalloc,
# which is process-wide.
_CELL_LOCK = threading.Lock()


def run_on_dask(scheduler: Any, plan, todo: list, store, *, progress: bool
                ) -> Iterator[tuple[tuple[int, str], dict | WorkerError]]:
    """Run the cells of ``todo`` (``(seed, label, model)``) as tasks on a Dask cluster, yielding each as it finishes.

    With a store, each task writes its cell into the run's folder (which must be a path every worker can reach) and
    the cell is read back from there; without one, the cell comes back to the driver. A worker that dies takes its
    task with it; the scheduler runs the task again elsewhere (up to ``distributed.scheduler.allowed-failures``
    times), and a task that finds its cell already finished skips it.
    """
    import copy

    from tqdm.auto import tqdm

    if not todo:
        return
    with connect(scheduler) as client:
        if client is None:
            raise ValueError("run_on_dask() needs a scheduler address or a distributed.Client.")
        import distributed
        from distributed import as_completed

        remote = store
        if store is not None:
            remote = copy.copy(store)  # workers may start elsewhere: give them absolute paths
            remote.root, remote.cells = store.root.resolve(), store.cells.resolve()
        # A task holding the data, rather than scattered data, so a lost copy is recomputed rather than lost.
        shared = client.submit(_identity, plan.data, pure=False)
        futures = {
            client.submit(
                _grid_cell, shared, plan.splits[seed], label, model, plan.readout, plan.ctrl, plan.dataset, remote,
                pure=False, key=f"linpert-cell-seed{seed}-{label}-{os.urandom(4).hex()}",
            ): (seed, label)
            for seed, label, model in todo
        }
        bar = tqdm(total=len(futures), desc=f"{plan.dataset} on Dask", unit="fit", disable=not progress)
        for future in as_completed(futures):
            seed, label = futures[future]
            try:
                cell = future.result()
            except WorkerError as err:
                cell = err
            except distributed.KilledWorker as err:
                kept = "Pass out= to keep finished cells"
                if store is not None:
                    kept = f"The finished cells are kept in {store.root}; run again to resume"
                raise RuntimeError(
                    f"Fitting {label!r} on seed {seed} killed Dask workers repeatedly ({err}); it may need more memory "
                    f"than a worker has (dask worker --memory-limit). {kept}."
                ) from err
            bar.update()
            yield (seed, label), store.load(seed, label) if cell is None else cell
        bar.close()


def _identity(value):
    return value


def _grid_cell(data, split, label: str, model, readout, ctrl, dataset: str, store) -> dict | None:
    """Fit, predict and score one cell of the grid on a worker; with a store, write it there and return nothing."""
    from ._cell import _run_cell

    with _CELL_LOCK:
        if store is not None and store.load(split.seed, label) is not None:  # a retry of a task that finished
            return None
        cell = _run_cell(data, split, label, model, readout, ctrl, dataset)
        if store is None:
            return cell
        store.save(split.seed, label, cell)  # atomic files, the results file last
        return None

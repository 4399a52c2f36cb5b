"""Thread control (``linpert._threads``) and the compiled kernels' disk cache: one place decides how many threads
each kind of work gets, the numbers do not depend on it, and a second process compiles nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import linpert
from linpert import benchmark
from linpert._config import cores
from linpert._threads import limit_threads, one_blas_thread, threads


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_blas_runs_on_one_thread_inside_linpert_and_as_the_caller_set_it_outside():
    with threadpool_limits(limits=2, user_api="blas"):
        with one_blas_thread():
            assert _blas_threads() == {1}
        assert _blas_threads() == {2}


def test_limit_threads_caps_kernels_and_figure_workers_and_refuses_nonsense():
    try:
        limit_threads(1)
        assert (threads().kernels, threads().figure_workers, threads().blas) == (1, 1, 1)
        limit_threads(None)
        assert threads().kernels <= cores() and threads().figure_workers == min(cores(), 4)
        for bad in (0, -2, 1.5, True, "2"):
            with pytest.raises(ValueError, match="positive whole number"):
                limit_threads(bad)
    finally:
        limit_threads(None)


@pytest.fixture(scope="module")
def cell_file(tmp_path_factory):
    cells = linpert.datasets.simulate("norman", n_genes=300, n_singles=16, n_doubles=30, seed=4)
    path = tmp_path_factory.mktemp("cells") / "cells.h5ad"
    cells.write_h5ad(path)
    return path


def _tables(folder) -> dict[str, pd.DataFrame]:
    """Every table of a run folder but the timings, by path."""
    from linpert._io import read_matrix  # any parquet table, the tidy matrices included

    read = lambda p: read_matrix(p) if p.suffix == ".parquet" else pd.read_csv(p)  # noqa: E731
    untimed = lambda frame: frame.drop(columns=[c for c in frame if "seconds" in c or "peak" in c])  # noqa: E731
    return {str(p.relative_to(folder)): untimed(read(p)) for p in sorted(folder.rglob("*"))
            if p.suffix in (".csv", ".parquet") and p.name != "timings.csv"}


def test_every_number_of_a_run_from_cells_is_the_same_bits_on_one_thread_and_on_all(cell_file, tmp_path):
    """Pseudobulk, fits, metrics, DE, replicate ceiling and interactions, with one kernel thread and the caller's
    BLAS on one thread, against every core and the caller's BLAS on two: linpert pins BLAS itself, and its kernels
    give each condition to one thread."""
    runs = {}
    for most, blas in ((1, 1), (None, 2)):
        limit_threads(most)
        try:
            with threadpool_limits(limits=blas, user_api="blas"):
                bulk = linpert.pseudobulk(cell_file)
                out = tmp_path / f"threads-{most}"
                benchmark.run(bulk, split="double", seeds=[1, 2], out=out, cells=str(cell_file), progress=False)
        finally:
            limit_threads(None)
        runs[most] = (bulk, out)
    (one_bulk, one), (all_bulk, every) = runs[1], runs[None]
    np.testing.assert_array_equal(one_bulk.X, all_bulk.X)
    first, second = _tables(one), _tables(every)
    expected = {"results.parquet", "calibrated.csv", "interactions/calls.parquet", "from_cells/ceiling.parquet"}
    assert expected <= set(first), sorted(first)
    assert first.keys() == second.keys()
    for name, table in first.items():
        pd.testing.assert_frame_equal(table, second[name], check_exact=True, obj=name)
    for folder, kernels in ((one, 1), (every, min(cores(), threads().kernels))):
        timing = pd.read_csv(folder / "timings.csv")
        assert (timing["blas_threads"] == 1).all() and (timing["kernel_threads"] == kernels).all()
        assert (timing["figure_workers"] >= 1).all()


_KERNEL_RUN = """
import json, numpy as np
from scipy import sparse
from linpert._pseudobulk._reduce import _KERNELS, add_rows
block = sparse.random(50, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
sums = np.zeros((3, 20))
add_rows(block, np.arange(50) % 3, sums)
kernel = _KERNELS["csr"].__wrapped__
print(json.dumps({"hits": sum(kernel.stats.cache_hits.values()), "misses": sum(kernel.stats.cache_misses.values()),
                  "where": kernel._cache._cache_path}))
"""


def test_a_second_process_loads_the_kernels_from_linperts_cache_folder(tmp_path):
    pytest.importorskip("numba")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "LINPERT_NUMBA")}
    env["LINPERT_DATA_DIR"] = str(tmp_path / "cache")
    said = [json.loads(subprocess.run([sys.executable, "-c", _KERNEL_RUN], env=env, check=True, capture_output=True,
                                      text=True).stdout) for _ in range(2)]
    assert said[0]["where"].startswith(str(tmp_path / "cache" / "numba"))
    assert (said[0]["hits"], said[0]["misses"]) == (0, 1)  # compiled, and written to the cache
    assert (said[1]["hits"], said[1]["misses"]) == (1, 0)  # loaded, nothing compiled


def test_umaps_numba_functions_are_cached_in_linperts_folder_once_the_overview_imports_it():
    pytest.importorskip("umap")
    import numba
    from numba.core.dispatcher import Dispatcher

    from linpert.plot._extended import embed_2d

    embed_2d(np.random.default_rng(0).normal(size=(30, 8)))
    import umap.umap_

    function = umap.umap_.smooth_knn_dist  # a plain njit function: umap-learn does not cache it
    assert isinstance(function, Dispatcher)
    assert function._cache._cache_path.startswith(numba.config.CACHE_DIR)
    assert sum(function.stats.cache_hits.values()) + sum(function.stats.cache_misses.values()) >= 1

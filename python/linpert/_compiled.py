"""Compiled kernels when numba is installed (``pip install 'linpert[fast]'``), NumPy where it is not.

Every kernel has a pure-NumPy twin that gives the same numbers; the tests run both. ``LINPERT_NUMBA=0`` in the
environment turns the compiled kernels off (to compare, or where numba misbehaves).

Compiled code is cached on disk in linpert's cache folder (``numba/`` under :func:`linpert._config.data_dir`, unless
``NUMBA_CACHE_DIR`` names another), so only a machine's first process pays for compiling: linpert's kernels, and
umap-learn's, which the dataset overview calls and which compile for 8 s in every process otherwise.
"""

from __future__ import annotations

import os
import threading
from functools import cache, wraps

import numpy as np

from ._config import ENV_NUMBA, data_dir
from ._threads import threads

__all__ = ["Kernels", "between_kernels", "cache_on_disk", "configured_numba", "numba", "unsigned"]


@cache
def numba():
    """The numba module, or None where it is missing or ``LINPERT_NUMBA=0`` turns it off."""
    if os.environ.get(ENV_NUMBA, "1").strip() == "0":
        return None
    return configured_numba()


@cache
def configured_numba():
    """numba set up for linpert's kernels and for the numba code of packages linpert calls (umap-learn): the
    workqueue threading layer unless ``NUMBA_THREADING_LAYER`` names another, and the disk cache in linpert's cache
    folder unless ``NUMBA_CACHE_DIR`` names another; None without numba."""
    try:
        import numba as module
    except ImportError:
        return None
    if "NUMBA_CACHE_DIR" not in os.environ:
        # numba's own default, __pycache__ beside the source, is read-only in many installs, and where it is not,
        # one folder per package copy (each git worktree, each venv) compiles everything again
        module.config.CACHE_DIR = str(data_dir() / "numba")
    if "NUMBA_THREADING_LAYER" not in os.environ:
        # numba would pick OpenMP where libgomp is found, beside the OpenMP runtimes that torch and scikit-learn load
        # of their own, and a process that ran OpenMP aborts at its next fork() (the figures fork). The workqueue
        # layer needs none, was no slower on the Norman-size run (benchmarks/README.md), and Kernels already runs
        # one kernel at a time, which is all workqueue asks.
        module.config.THREADING_LAYER = "workqueue"
    return module


class Kernels:
    """A module's numba kernels, compiled together on first use: parallel, cached on disk, and releasing the GIL (so
    that a file's next chunk is read while this one is reduced).

    The kernels' loops say ``prange``. Their module defines ``prange = range``, so that the functions also run as
    plain Python, and this sets it to numba's ``prange`` before compiling. One kernel runs at a time in the
    process (threads of a Dask worker, say, take turns): each uses every core already, and numba's ``workqueue``
    threading layer, linpert's choice unless ``NUMBA_THREADING_LAYER`` says otherwise, aborts when two threads start
    parallel kernels at once.
    """

    def __init__(self, namespace: dict, **functions) -> None:
        self._namespace, self._functions, self._compiled = namespace, functions, {}

    def __getitem__(self, name: str):
        if not self._compiled:
            module = numba()
            self._namespace["prange"] = module.prange
            jit = module.njit(parallel=True, cache=True, nogil=True)
            self._compiled.update({key: _one_at_a_time(jit(function)) for key, function in self._functions.items()})
        return self._compiled[name]


def cache_on_disk(*packages: str) -> None:
    """Cache on disk the numba functions of these imported packages that their authors did not mark ``cache=True``.

    umap-learn's layout compiles for 8 s in every new process (237 profiles take 0.3 s to lay out once compiled).
    Its functions are plain module-level ``njit`` functions, which numba caches like any other; the cache is keyed on
    their source file, so a new release compiles afresh. Functions numba cannot cache are left as they are.
    """
    module = configured_numba()
    if module is None:
        return
    import sys
    import warnings

    from numba.core.dispatcher import Dispatcher

    loaded = [m for name, m in list(sys.modules.items()) if name.split(".")[0] in packages]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", module.NumbaWarning)  # "cannot cache ...": it then compiles as before
        for function in {id(f): f for m in loaded for f in vars(m).values() if isinstance(f, Dispatcher)}.values():
            if not getattr(function._cache, "_cache_path", None):  # not cached yet (numba's NullCache has no path)
                function.enable_caching()


def unsigned(indices: np.ndarray) -> np.ndarray:
    """Indices (never negative) viewed as unsigned integers of their width, for a kernel to index with: numba then
    skips its test for a negative index on every load, which cost the pseudobulk kernel an eighth of its time."""
    kind = {np.dtype(np.int32): np.uint32, np.dtype(np.int64): np.uint64}.get(indices.dtype)
    return indices if kind is None else indices.view(kind)


_RUNNING = threading.Lock()


def between_kernels() -> threading.Lock:
    """A lock that holds off every compiled kernel, in any thread, while the caller holds it.

    ``tracemalloc.start()`` and ``stop()`` need it: on CPython before 3.12 they can crash the process when another
    thread allocates without the GIL meanwhile (python/cpython#128679), as a kernel's worker threads do.
    """
    return _RUNNING


def _one_at_a_time(kernel):
    @wraps(kernel)
    def call(*args):
        with _RUNNING:
            numba().set_num_threads(threads().kernels)  # numba's setting is per calling thread
            return kernel(*args)

    return call

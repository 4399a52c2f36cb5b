"""How many threads each kind of linpert's work gets: decided here, and nowhere else.

* **BLAS and LAPACK** (inside a benchmark run, the linear model's fit, any model's ``predict`` and locfdr): one
  thread. The matrices are small (19,264 genes × 171 conditions for Norman), where OpenBLAS's pool gains nothing on a
  quiet machine (the PCA: 0.046 s on one thread, 0.045-0.049 s on two) and loses when the other cores are busy: the
  Norman-sized run forks a figure worker beside the grid, and there the pool had taken the fits and predictions from
  1.6-1.7 s to 6.7-7.4 s (issue 30). One thread also makes the numbers independent of the machine: OpenBLAS sums in
  another order with another number of threads (differences of 1e-13 in the PCA).
* **numba kernels** (pseudobulk, DE, the replicate ceiling): every core this process may run on, at most
  ``--threads``. Each kernel gives every condition to one thread, so the sums are the same bits on any number.
* **forked figure workers**: up to four, at most the cores.

The limits are set with threadpoolctl around linpert's own calls and undone afterwards; no environment variable is
set. A lower limit the user set (``OPENBLAS_NUM_THREADS``, ``NUMBA_NUM_THREADS``) stays in force.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import cache

from ._config import ENV_NUMBA, cores

__all__ = ["Threads", "limit_threads", "one_blas_thread", "threads"]

_MOST: list[int | None] = [None]  # what limit_threads() last set


@dataclass(frozen=True)
class Threads:
    """The threads each kind of work gets (what ``timings.csv`` reports for each fit)."""

    blas: int
    kernels: int
    figure_workers: int

    def columns(self) -> dict[str, int]:
        """For a row of ``timings.csv``."""
        return {"blas_threads": self.blas, "kernel_threads": self.kernels, "figure_workers": self.figure_workers}


def threads() -> Threads:
    """The threads linpert's work gets in this process now."""
    allowed = cores() if _MOST[0] is None else min(_MOST[0], cores())
    return Threads(blas=1, kernels=min(allowed, _numba_threads()), figure_workers=min(allowed, 4))


def limit_threads(most: int | None) -> None:
    """Use at most ``most`` cores for kernels and figure workers from now on (None: every core the process may use).

    Examples
    --------
    >>> limit_threads(1); threads().figure_workers
    1
    >>> limit_threads(None)
    """
    if most is not None and (isinstance(most, bool) or not isinstance(most, int) or most < 1):
        raise ValueError(f"The number of threads must be a positive whole number, got {most!r}.")
    _MOST[0] = most


@contextlib.contextmanager
def one_blas_thread():
    """BLAS and LAPACK on one thread inside (a decorator too); their earlier setting afterwards."""
    with _controller().limit(limits=1, user_api="blas"):
        yield


@cache
def _numba_threads() -> int:
    """numba's own limit (``NUMBA_NUM_THREADS``, else the machine's cores: it does not look at the affinity); 1 where
    the NumPy twins run instead."""
    if os.environ.get(ENV_NUMBA, "1").strip() == "0":
        return 1
    try:
        from numba import config
    except ImportError:
        return 1
    return config.NUMBA_NUM_THREADS


@cache
def _controller():
    """threadpoolctl's view of the BLAS libraries loaded (numpy's and scipy's OpenBLAS), looked up once: 6 ms."""
    import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, which the controller must see)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()

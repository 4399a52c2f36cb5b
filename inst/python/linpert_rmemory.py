"""R's vectors shared with NumPy, without copies, in the R process that embeds this Python.

reticulate 1.28 (Debian 12's) cannot hand NumPy arrays across (it is built against NumPy 1's C API), and R's raw
vectors cross it as copies. R and Python share one process, though, so R's memory can be read where it lies:

- R wraps its vectors in the environment of a closure (``.shared()`` in the R package's ``R/bridge.R``);
- reticulate hands an R closure to Python as a function whose closure cell ``f`` is a capsule holding the R object
  (its ``rpytools.call.make_python_function``), which keeps the R object alive while Python holds it;
- libR's C API, through ctypes, finds each vector in that environment and gives its memory, which NumPy views
  read-only (the view holds the capsule, so the R vector outlives every array that views it);
- vectors for R are allocated by R (``Rf_allocVector``), filled once from NumPy, and bound in such an environment.

:func:`available` says whether all of that holds here (another reticulate, or an R without the symbols, says no);
the bridge then moves numbers as raw buffers instead.
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any

import numpy as np

__all__ = ["available", "put", "view"]

# SEXP types (Rinternals.h)
_LGLSXP, _INTSXP, _REALSXP, _CLOSXP = 10, 13, 14, 3
_KINDS = {_REALSXP: np.float64, _INTSXP: np.int32, _LGLSXP: np.int32}


class _Api:
    """The few functions of libR's C API that sharing needs."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(None)  # libR is loaded in this process: R started this Python
        sexp, size = ctypes.c_void_p, ctypes.c_ssize_t

        def function(name: str, restype, *argtypes):
            f = getattr(lib, name)
            f.restype, f.argtypes = restype, list(argtypes)
            return f

        self.install = function("Rf_install", sexp, ctypes.c_char_p)
        self.find = function("Rf_findVarInFrame", sexp, sexp, sexp)
        self.define = function("Rf_defineVar", None, sexp, sexp, sexp)
        self.alloc = function("Rf_allocVector", sexp, ctypes.c_uint, size)
        self.length = function("Rf_xlength", size, sexp)
        self.type = function("TYPEOF", ctypes.c_int, sexp)
        self.closure_env = function("CLOENV", sexp, sexp)
        self.data = function("DATAPTR", ctypes.c_void_p, sexp)
        self.preserve = function("R_PreserveObject", None, sexp)
        self.release = function("R_ReleaseObject", None, sexp)
        self.unbound = sexp.in_dll(lib, "R_UnboundValue").value
        capsule = ctypes.pythonapi
        self.capsule_name = capsule.PyCapsule_GetName
        self.capsule_name.restype, self.capsule_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        self.capsule_pointer = capsule.PyCapsule_GetPointer
        self.capsule_pointer.restype = ctypes.c_void_p
        self.capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


@cache
def _api() -> _Api | None:
    try:
        return _Api()
    except (AttributeError, OSError, ValueError):
        return None


def _environment(holder: Any) -> int:
    """The environment of the R closure that reticulate handed over as ``holder``."""
    api = _api()
    cells = dict(zip(holder.__code__.co_freevars, holder.__closure__ or ()))
    capsule = cells["f"].cell_contents
    closure = api.capsule_pointer(capsule, api.capsule_name(capsule))
    if not closure or api.type(closure) != _CLOSXP:
        raise TypeError("not an R closure")
    return api.closure_env(closure)


def available(holder: Any) -> bool:
    """Whether R's vectors can be shared here: ``holder`` is an empty ``.shared()`` closure from R."""
    try:
        return _api() is not None and bool(_environment(holder))
    except (AttributeError, KeyError, TypeError, ValueError):
        return False


class _Pinned:
    """An R vector's memory for NumPy (``__array_interface__``), holding ``holder`` so that R keeps the vector."""

    def __init__(self, holder: Any, pointer: int, length: int, dtype: type, *, writable: bool = False) -> None:
        self.holder = holder
        self.__array_interface__ = {"data": (pointer, not writable), "shape": (length,),
                                    "typestr": np.dtype(dtype).str, "version": 3}


def view(holder: Any, name: str) -> np.ndarray:
    """The R vector ``name`` of ``holder``'s environment as a read-only NumPy array, without a copy."""
    api = _api()
    vector = api.find(_environment(holder), api.install(name.encode()))
    if not vector or vector == api.unbound:
        raise KeyError(f"R sent no vector {name!r}")
    kind = api.type(vector)
    if kind not in _KINDS:
        raise TypeError(f"R's {name!r} is not a numeric vector (SEXP type {kind})")
    length = api.length(vector)
    if length == 0:
        return np.empty(0, dtype=_KINDS[kind])
    return np.asarray(_Pinned(holder, api.data(vector), length, _KINDS[kind]))


def put(holder: Any, name: str, values: np.ndarray, *, double: bool = True) -> None:
    """A new R vector ``name`` in ``holder``'s environment, filled from ``values``: doubles, or 32-bit integers
    where ``double`` is False (converted as they are copied, never through a temporary)."""
    api = _api()
    values = np.ravel(values, order="C")  # a 2-D array row by row: R reads it column by column, transposed
    kind = _REALSXP if double else _INTSXP
    vector = api.alloc(kind, values.size)
    api.preserve(vector)  # until it is bound: filling allocates nothing, but binding may
    try:
        if values.size:
            target = np.asarray(_Pinned(None, api.data(vector), values.size, _KINDS[kind], writable=True))
            np.copyto(target, values, casting="unsafe")
        api.define(api.install(name.encode()), vector, _environment(holder))
    finally:
        api.release(vector)

"""The one gateway from Python to R. Nothing else in linpert imports rpy2.

It starts R on first use, checks that an R package is installed (with an install hint when it is not), converts
numpy values into R, calls R functions while collecting R's warnings, and copies results out of R's memory so
nothing Python holds points into R.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

_INSTALL_HINTS = {
    "locfdr": "install it in R with install.packages('locfdr') (it is on CRAN only)",
    "igraph": "install it with `apt-get install r-cran-igraph` on Debian, or install.packages('igraph') in R",
}


class RUnavailableError(ImportError):
    """R, rpy2 or an R package that a backend needs is missing."""


@functools.lru_cache(maxsize=None)
def _robjects():
    library_path = os.environ.get("LD_LIBRARY_PATH")
    try:
        import rpy2.robjects as ro
    except Exception as err:  # rpy2 raises various errors when R itself cannot be found or loaded
        raise RUnavailableError(
            f"R cannot be used from Python: {err}. Install R (Debian: `apt-get install r-base-core`) and "
            "rpy2 (`pip install 'linpert[r]'`), or choose backend='python'."
        ) from err
    finally:
        _restore_library_path(library_path)
    return ro


def _restore_library_path(value: str | None) -> None:
    """Undo R's start-up edit of LD_LIBRARY_PATH for the processes this one starts later.

    R prepends its own and the system's library folders; a child Python (a model's worker, say) would then load the
    system's libpython instead of its own and fail. R has loaded its libraries by now and does not need the edit.
    """
    if value is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
        os.unsetenv("LD_LIBRARY_PATH")
    else:
        os.environ["LD_LIBRARY_PATH"] = value


def r_available(package: str | None = None) -> bool:
    """Whether R (and, if named, the R ``package``) can be used."""
    try:
        require(package) if package else _robjects()
    except RUnavailableError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def require(package: str) -> None:
    """Load the R package ``package``'s namespace; a clear error with an install hint when it is missing."""
    ro = _robjects()
    if not ro.r(f'isTRUE(suppressWarnings(requireNamespace("{package}", quietly = TRUE)))')[0]:
        hint = _INSTALL_HINTS.get(package, f"install it in R with install.packages('{package}')")
        raise RUnavailableError(f"The R package '{package}' is not installed: {hint}, or choose backend='python'.")


def to_r(value: Any):
    """A numpy array, scalar, string or list as an R value (numeric arrays become double vectors/matrices)."""
    ro = _robjects()
    if value is None:
        return ro.NULL
    if isinstance(value, (bool, np.bool_)):
        return ro.BoolVector([bool(value)])
    if isinstance(value, (int, float, np.integer, np.floating)):
        return ro.FloatVector([float(value)])
    if isinstance(value, str):
        return ro.StrVector([value])
    array = np.asarray(value)
    if array.dtype.kind in "US":
        return ro.StrVector(array.astype(str).ravel().tolist())
    if array.dtype.kind == "b":
        return ro.BoolVector(array.ravel().tolist())
    vector = ro.FloatVector(np.asarray(array, dtype=np.float64).ravel(order="F"))
    if array.ndim == 2:
        return ro.r["matrix"](vector, nrow=array.shape[0], ncol=array.shape[1])
    return vector


def from_r(value: Any) -> Any:
    """An R value copied into Python: numeric vectors/matrices → numpy arrays, named lists → dicts, NULL → None."""
    ro = _robjects()
    from rpy2.rinterface_lib.sexp import NULLType

    if isinstance(value, NULLType):
        return None
    if isinstance(value, ro.vectors.ListVector) or isinstance(value, ro.vectors.ListSexpVector):
        names = list(value.names) if value.names is not ro.NULL else [str(i) for i in range(len(value))]
        return {name: from_r(item) for name, item in zip(names, value)}
    if isinstance(value, ro.vectors.StrVector):
        return [str(v) for v in value]
    if isinstance(value, (ro.vectors.FloatVector, ro.vectors.IntVector, ro.vectors.BoolVector)):
        array = np.array(value, copy=True)
        dim = value.do_slot("dim") if "dim" in value.list_attrs() else None
        if dim is not None:
            array = array.reshape(tuple(int(d) for d in dim), order="F")
        return array
    return value


def call(package: str, function: str, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """Call ``package::function`` with converted arguments; return the result (copied out) and R's warnings.

    R errors become :class:`RuntimeError` with R's message.
    """
    require(package)
    fn = _robjects().r(f"{package}::`{function}`")
    return _run(fn, args, kwargs, what=f"R's {package}::{function}")


def call_function(code: str, *args: Any, packages: tuple[str, ...] = (), **kwargs: Any) -> tuple[Any, list[str]]:
    """Call an R function written as code (``function(...) {...}``) like :func:`call`: converted arguments in,
    the result (copied out) and R's warnings back.

    For the few steps that need an R object that cannot cross into Python (an igraph graph, say) between calls.
    ``packages`` are checked with :func:`require` first, so a missing one gives the install hint.
    """
    for package in packages:
        require(package)
    return _run(_robjects().r(code), args, kwargs, what="R code")


@functools.lru_cache(maxsize=None)
def _runner():
    """An R closure that calls a function on a list of arguments, collecting warnings and catching the error."""
    return _robjects().r(
        """function(f, args) {
            warnings <- character()
            result <- withCallingHandlers(
                tryCatch(do.call(f, args), error = function(e) structure(conditionMessage(e), class = "r_error")),
                warning = function(w) { warnings <<- c(warnings, conditionMessage(w)); invokeRestart("muffleWarning") })
            if (inherits(result, "r_error")) return(list(error = unclass(result), warnings = warnings))
            list(result = result, warnings = warnings)
        }"""
    )


def _run(fn, args: tuple, kwargs: dict, *, what: str) -> tuple[Any, list[str]]:
    ro = _robjects()
    r_args = ro.ListVector.from_length(len(args) + len(kwargs))
    for i, value in enumerate([*args, *kwargs.values()]):
        r_args[i] = to_r(value)
    r_args.names = ro.StrVector([""] * len(args) + list(kwargs))
    out = _runner()(fn, r_args)
    fields = dict(zip(out.names, out))
    warnings = [str(w) for w in fields["warnings"]]
    if "error" in fields:
        raise RuntimeError(f"{what} failed: {fields['error'][0]}")
    return from_r(fields["result"]), warnings

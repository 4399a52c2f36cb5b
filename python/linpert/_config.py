"""What linpert reads from its surroundings (the cache folder, the environment variables, the optional extras), and
the old spellings of renamed arguments.

Every module asks here, so no layer imports another only to learn where the cache is or how to name an extra.

Environment variables
---------------------
``LINPERT_DATA_DIR``
    The cache folder for downloads and adapters' environments (default ``~/.cache/linpert``).
``LINPERT_MIRROR``
    Fetch every download from this address instead of the publisher's.
``LINPERT_NUMBA``
    ``0`` turns the compiled kernels off (their NumPy twins give the same numbers).
``LINPERT_SCHEDULER``
    The Dask scheduler the command line uses when ``--scheduler`` is not given.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType

__version__ = "0.99.0"

__all__ = ["__version__", "ENV_DATA_DIR", "ENV_MIRROR", "ENV_NUMBA", "ENV_SCHEDULER", "cores", "data_dir", "optional",
           "renamed"]

ENV_DATA_DIR = "LINPERT_DATA_DIR"
ENV_MIRROR = "LINPERT_MIRROR"
ENV_NUMBA = "LINPERT_NUMBA"
ENV_SCHEDULER = "LINPERT_SCHEDULER"


def data_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir`` if given, else ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``.

    Examples
    --------
    >>> str(data_dir("/tmp/linpert-data"))
    '/tmp/linpert-data'
    """
    if cache_dir is None:
        cache_dir = os.environ.get(ENV_DATA_DIR) or Path.home() / ".cache" / "linpert"
    return Path(cache_dir).expanduser()


def cores() -> int:
    """The CPU cores this process may run on (its affinity where the system says, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def optional(module: str, *, extra: str, needed_for: str) -> ModuleType:
    """Import an optional dependency, or say which of linpert's extras installs it.

    Examples
    --------
    >>> optional("no_such_module", extra="dask", needed_for="Running on a cluster")
    Traceback (most recent call last):
    ...
    ImportError: Running on a cluster needs no_such_module, which is not installed: pip install 'linpert[dask]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{needed_for} needs {module.split('.')[0]}, which is not installed: "
                          f"pip install 'linpert[{extra}]'") from err


def renamed(**old_to_new: str):
    """Accept the old keyword spelling of renamed arguments, with a FutureWarning, until linpert 0.3.

    linpert uses one name for one idea (``predicted``/``observed``/``control``, ``pb``, ``n_genes``, ``ridge``); code
    written against 0.1's other spellings keeps working meanwhile.

    Examples
    --------
    >>> @renamed(ctrl="control")
    ... def shift(x, control):
    ...     return x - control
    >>> shift(3, control=1)  # shift(3, ctrl=1) gives the same, with a FutureWarning
    2
    """

    def wrap(function):
        @functools.wraps(function)
        def call(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{function.__qualname__}() got both {old}= and {new}=; pass only {new}=.")
                    warnings.warn(f"{function.__qualname__}({old}=...) is now {new}=...; the old name goes in 0.3.",
                                  FutureWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return call

    return wrap

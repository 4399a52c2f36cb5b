"""Compiled kernels when numba is installed (``pip install 'linpert[fast]'``), NumPy where it is not.

Every kernel has a pure-NumPy twin that gives the same numbers; the tests run both. ``LINPERT_NUMBA=0`` in the
environment turns the compiled kernels off (to compare, or where numba misbehaves).
"""

from __future__ import annotations

import os
from functools import cache

from ._config import ENV_NUMBA

__all__ = ["numba"]


@cache
def numba():
    """The numba module, or None where it is missing or ``LINPERT_NUMBA=0`` turns it off."""
    if os.environ.get(ENV_NUMBA, "1").strip() == "0":
        return None
    try:
        import numba as module
    except ImportError:
        return None
    return module

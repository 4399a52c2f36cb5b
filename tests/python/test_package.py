import subprocess
import sys

import linpert


def test_import_is_light():
    """`import linpert` loads none of the heavy stacks; they come only with the functions that need them."""
    code = (
        "import sys, time; t = time.perf_counter(); import linpert; dt = time.perf_counter() - t; "
        "heavy = [m for m in ('torch', 'rpy2', 'anndata', 'scanpy', 'matplotlib', 'dask') if m in sys.modules]; "
        "print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[1].strip() == "[]"
    assert float(out[0]) < 0.5


def test_public_names_resolve():
    for name in linpert.__all__:
        assert getattr(linpert, name) is not None


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        linpert.nope

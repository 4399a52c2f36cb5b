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


def test_the_public_namespaces_are_attributes_and_export_no_internals():
    import importlib

    for name in ("plot", "report", "adapters", "embeddings", "convert", "benchmark", "metrics", "submission"):
        assert getattr(linpert, name) is importlib.import_module(f"linpert.{name}")
    importlib.import_module("linpert._pseudobulk._dask")
    assert callable(linpert.pseudobulk)  # the package behind it is private, so it never shadows the function
    internals = {"Launcher", "ensure_venv", "ridge_fit", "venv_path", "PROTOCOL", "rank_value_encoding"}
    assert not internals & set(linpert.adapters.__all__)
    for module in (linpert.adapters, linpert.embeddings, linpert.metrics, linpert.plot, linpert.datasets):
        assert all(not name.startswith("_") and hasattr(module, name) for name in module.__all__)

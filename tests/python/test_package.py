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


#: One name for one idea in the public signatures; the old spellings on the left are refused here.
ONE_NAME = {"pred": "predicted", "obs": "observed", "ctrl": "control", "alpha": "ridge", "data": "pb",
            "reference_pseudobulk": "pb", "adata": "cells", "result": "fit", "n": "n_genes"}
#: Named by their format, as from_sce(sce) is: any AnnData, cells or pseudobulk.
FORMAT_NAMED = {("linpert.convert.to_sce", "adata")}


def _public_callables():
    import importlib
    import inspect

    for module in ["linpert", *(f"linpert.{name}" for name in linpert._SUBMODULES)]:
        module = importlib.import_module(module)
        for name in getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")]):
            value = getattr(module, name)
            if not getattr(value, "__module__", "").startswith("linpert"):
                continue
            if inspect.isclass(value):
                yield f"{module.__name__}.{name}", value.__init__
            elif inspect.isfunction(value):
                yield f"{module.__name__}.{name}", value


def test_public_signatures_use_one_name_for_one_idea():
    import inspect

    found = {(where, p) for where, function in _public_callables()
             for p in inspect.signature(function).parameters if p in ONE_NAME} - FORMAT_NAMED
    assert not found, f"write {', '.join(f'{ONE_NAME[p]} (not {p}) in {where}' for where, p in sorted(found))}"


def test_an_old_spelling_still_works_with_a_warning_and_both_at_once_are_refused():
    import numpy as np
    import pytest

    from linpert.metrics import score

    x = np.array([[1.0, 2.0, 4.0]])
    with pytest.warns(FutureWarning, match=r"score\(pred=...\) is now predicted="):
        old = score(pred=x, observed=x + 1, control=np.zeros(3))
    assert old.equals(score(x, x + 1, np.zeros(3)))
    with pytest.raises(TypeError, match="got both ctrl= and control="):
        score(x, x, ctrl=np.zeros(3), control=np.zeros(3))

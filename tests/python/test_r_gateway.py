import numpy as np
import pytest

from linpert import _r

pytestmark = pytest.mark.skipif(not _r.r_available(), reason="R or rpy2 is not installed")


def test_call_converts_both_ways_and_copies_out():
    quantiles, warnings = _r.call("stats", "quantile", np.arange(11.0), probs=np.array([0.1, 0.5]))
    np.testing.assert_allclose(quantiles, [1.0, 5.0])
    assert warnings == []
    matrix, _ = _r.call("base", "t", np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(matrix, np.arange(6.0).reshape(2, 3).T)
    listed, _ = _r.call("base", "list", a=1.0, b=np.arange(3.0), c="x")
    assert set(listed) == {"a", "b", "c"} and listed["c"] == ["x"]
    np.testing.assert_array_equal(listed["b"], [0.0, 1.0, 2.0])


def test_warnings_are_collected_and_errors_raised():
    value, warnings = _r.call("base", "log", -1.0)
    assert np.isnan(value[0]) and warnings == ["NaNs produced"]
    with pytest.raises(RuntimeError, match="base::stop failed: boom"):
        _r.call("base", "stop", "boom")


def test_missing_package_names_the_fix():
    with pytest.raises(_r.RUnavailableError, match="'surely.not.a.package' is not installed.*backend='python'"):
        _r.require("surely.not.a.package")
    assert not _r.r_available("surely.not.a.package")


def test_starting_r_leaves_child_processes_environment_alone():
    """R prepends system library folders to LD_LIBRARY_PATH; a child Python must not inherit that."""
    import subprocess
    import sys

    _r.call("base", "sum", 1.0)
    child = subprocess.run([sys.executable, "-c", "import os, ssl; print(os.environ.get('LD_LIBRARY_PATH'))"],
                           capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    assert "/usr/lib/R/lib" not in child.stdout

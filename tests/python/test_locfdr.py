"""linpert.interactions.locfdr against R's locfdr 1.1-8 outputs (shared/reference/locfdr and inst/extdata/locfdr)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from linpert import _r
from linpert.interactions._locfdr import LocfdrError, LocfdrWarning, locfdr, thresholds

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference" / "locfdr"
GOLDEN = REPO / "inst" / "extdata" / "locfdr" / "small_n300.json"
FDR_ATOL = 1e-6
EST_RTOL = 1e-6


# --- reference plumbing ----------------------------------------------------------------------------------------------


def _matrix(m: dict) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in m["data"]], dtype=float)


def _vector(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _load_fdr(run: dict, folder: Path) -> np.ndarray:
    fdr = run["fdr"]
    return np.load(folder / fdr) if isinstance(fdr, str) else _vector(fdr)


def _case_z(case: dict, folder: Path) -> np.ndarray:
    return _vector(case["z"]) if case.get("z") is not None else np.load(folder / case["z_npy"])


def _reference_runs():
    if not REFERENCE.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"{REFERENCE} is absent (needs ../shared)"))]
    params = []
    for path in sorted(REFERENCE.glob("*.json")):
        if path.name == "index.json":
            continue
        case = json.loads(path.read_text())
        for run in case["runs"]:
            params.append(pytest.param(path.name, run["run"], id=f"{case['case']}-{run['run']}"))
    return params


_CASES: dict[str, dict] = {}
_Z: dict[str, np.ndarray] = {}


def _reference(file: str, run_name: str) -> tuple[np.ndarray, dict]:
    if file not in _CASES:
        _CASES[file] = json.loads((REFERENCE / file).read_text())
        _Z[file] = _case_z(_CASES[file], REFERENCE)
    run = next(r for r in _CASES[file]["runs"] if r["run"] == run_name)
    return _Z[file], run


def _run_python(z: np.ndarray, run: dict, **extra):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LocfdrWarning)
        result = locfdr(z, backend="python", **run["args"], **extra)
    assert [str(w.message) for w in caught if w.category is LocfdrWarning] == result.warnings
    return result


def _error_pattern(r_error: str) -> str:
    """R's message, except the rcond number of a singular matrix (that depends on the BLAS): match 'singular'."""
    return "singular" if "singular" in r_error else re.escape(r_error)


def _assert_matches(result, run: dict, folder: Path, *, compare_mat: bool = True) -> None:
    np.testing.assert_allclose(result.fdr, _load_fdr(run, folder), rtol=0, atol=FDR_ATOL)
    fp0 = _matrix(run["fp0"])
    assert list(result.fp0.index) == run["fp0"]["rownames"]
    assert list(result.fp0.columns) == run["fp0"]["colnames"]
    np.testing.assert_allclose(result.fp0.to_numpy(), fp0, rtol=EST_RTOL, atol=1e-12)  # NaN where R has NA
    assert list(result.Efdr.index) == list(run["Efdr"])
    np.testing.assert_allclose(result.Efdr.to_numpy(), _vector(run["Efdr"].values()), rtol=EST_RTOL, atol=1e-12)
    np.testing.assert_allclose(result.z_2, _vector(run["z.2"]), rtol=EST_RTOL)
    assert result.warnings == run["warnings"]
    if compare_mat:
        mat = _matrix(run["mat"])
        assert list(result.mat.columns) == run["mat"]["colnames"]
        np.testing.assert_array_equal(result.mat["counts"], mat[:, 8])
        # lfdrse is numerically noisy in near-empty bins (spec): compare it where the fitted density is > 1
        others = [i for i in range(mat.shape[1]) if i != 9]
        np.testing.assert_allclose(result.mat.to_numpy()[:, others], mat[:, others], rtol=1e-5, atol=1e-6)
        dense = mat[:, 4] > 1
        np.testing.assert_allclose(result.mat.to_numpy()[dense, 9], mat[dense, 9], rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(result.cdf1.to_numpy(), _matrix(run["cdf1"]), rtol=1e-5, atol=1e-9)
    if "mult" in run:
        np.testing.assert_allclose(result.mult.to_numpy(), _vector(run["mult"].values()), rtol=EST_RTOL)


def _assert_thresholds(result, z: np.ndarray, run: dict) -> None:
    ref = run["thresholds"]
    assert result.center == pytest.approx(ref["center_delta"], rel=EST_RTOL, abs=1e-12)
    for rule, key in (("paper", "paper_method"), ("tail", "tail_closed")):
        got = thresholds(result, z, level=ref["level"], rule=rule)
        assert got._asdict() == ref[key], rule


# --- every reference run ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "run_name"), _reference_runs())
def test_port_reproduces_r_reference(file, run_name):
    z, run = _reference(file, run_name)
    if run["error"] is not None:
        with pytest.raises((LocfdrError, ValueError), match=_error_pattern(run["error"])):
            _run_python(z, run)
        return
    result = _run_python(z, run)
    assert result.backend == "python"
    _assert_matches(result, run, REFERENCE)
    _assert_thresholds(result, z, run)


# --- the golden copy that ships with the package (always runs) -------------------------------------------------------


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("run_name", ["nt1_default", "nt2_central_matching", "nt0_theoretical", "nt3_split_normal"])
def test_port_reproduces_golden(golden, run_name):
    z = _vector(golden["z"])
    run = next(r for r in golden["runs"] if r["run"] == run_name)
    result = _run_python(z, run)
    _assert_matches(result, run, GOLDEN.parent, compare_mat=False)
    _assert_thresholds(result, z, run)


def test_warnings_are_issued_and_recorded(golden):
    z = _vector(golden["z"])
    with pytest.warns(LocfdrWarning, match="Discrepancy between central matching"):
        result = locfdr(z, nulltype=2, backend="python")
    assert result.warnings == [
        "Discrepancy between central matching and maximum likelihood estimates.\nConsider rerunning with nulltype = 1"
    ]


# --- independent checks ----------------------------------------------------------------------------------------------


def test_ml_null_of_a_normal_mixture_matches_the_truth():
    rng = np.random.default_rng(7)
    z = np.concatenate([rng.normal(0.2, 1.3, 19_000), rng.normal(5, 1, 1_000)])
    result = locfdr(z, backend="python")
    delta, sigma, p0 = result.fp0.loc["mlest"]
    assert delta == pytest.approx(0.2, abs=0.05)
    assert sigma == pytest.approx(1.3, abs=0.05)
    assert p0 == pytest.approx(0.95, abs=0.02)
    # the bin-level fdr of the per-value fdr: np.interp of mat's fdr column at z, held constant outside
    mat = result.mat
    np.testing.assert_allclose(result.fdr, np.interp(z, mat["x"], mat["fdr"]))
    assert result.fdr[z > 7].max() < 0.05 and result.fdr[np.abs(z - 0.2) < 1].min() == 1


def test_thresholds_on_hand_made_fdr():
    from linpert.interactions._locfdr import LocfdrResult

    z = np.array([-3.0, -2.0, -1.0, 0.5, 1.0, 2.0, 2.5, 3.0])
    fdr = np.array([0.01, 0.2, 0.9, 1.0, 0.04, 0.3, 0.049, 0.01])
    base = locfdr(np.random.default_rng(0).normal(size=500), backend="python")
    fake = LocfdrResult(**{**base.__dict__, "fdr": fdr, "call": {**base.call, "nulltype": 0}})
    assert thresholds(fake, z, rule="paper") == (-3.0, 2.5)  # |fdr-0.05|: 0.04 at -3; 0.001 at 2.5
    assert thresholds(fake, z, rule="tail") == (-3.0, 2.5)  # 2.0 has fdr 0.3, so the closed tail starts at 2.5
    assert thresholds(fake, z, level=0.02, rule="tail") == (-3.0, 3.0)
    with pytest.raises(ValueError, match="rule must be 'paper' or 'tail'"):
        thresholds(fake, z, rule="first")
    with pytest.raises(ValueError, match="pass the z it was fit on"):
        thresholds(fake, z[:3])


# --- input guards ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def normal_z():
    return np.random.default_rng(3).normal(size=2000)


def test_rejects_non_finite_values_and_says_where(normal_z):
    z = normal_z.copy()
    z[[5, 17]] = np.nan
    z[40] = np.inf
    with pytest.raises(ValueError, match=r"3 non-finite value\(s\) \(2 NaN, 1 infinite\) at position\(s\) 5, 17, 40"):
        locfdr(z, backend="python")


def test_rejects_too_few_values():
    with pytest.raises(ValueError, match="z has 50 values; locfdr needs at least 100"):
        locfdr(np.linspace(-2, 2, 50), backend="python")


def test_rejects_constant_input():
    with pytest.raises(ValueError, match="z is constant"):
        locfdr(np.full(500, 1.5), backend="python")


def test_rejects_non_1d_input(normal_z):
    with pytest.raises(ValueError, match=r"1-D vector of z-values, got shape \(1000, 2\)"):
        locfdr(normal_z.reshape(1000, 2), backend="python")


def test_no_central_peak_says_so():
    z = np.random.default_rng(1).beta(0.3, 0.3, 5000) * 6 - 3  # U-shaped: no null to fit in the middle
    with pytest.raises(LocfdrError, match="CM and ML Estimation failed, middle of histogram non-normal: .*no central"):
        locfdr(z, backend="python")
    with pytest.raises(LocfdrError, match=re.escape("CM estimation failed.  Rerun with nulltype = 1.")):
        locfdr(z, nulltype=2, backend="python")


def test_rejects_bad_options(normal_z):
    with pytest.raises(ValueError, match="the condition has length > 1"):
        locfdr(normal_z, pct=[-6, 6], backend="python")
    with pytest.raises(ValueError, match="nulltype must be 0, 1, 2 or 3"):
        locfdr(normal_z, nulltype=4, backend="python")
    with pytest.raises(ValueError, match=r"mlests must be a pair \(delta, sigma\)"):
        locfdr(normal_z, mlests=[0.0], backend="python")
    with pytest.raises(ValueError, match="backend must be 'auto', 'r' or 'python'"):
        locfdr(normal_z, backend="julia")


# --- R backend -------------------------------------------------------------------------------------------------------


def _fake_r_list(run: dict, folder: Path) -> dict:
    """The structure linpert._r.call copies out of R's locfdr list: dimnames dropped, a logical NA as INT_MIN."""
    z2 = _vector(run["z.2"])
    out = {
        "fdr": _load_fdr(run, folder),
        "fp0": _matrix(run["fp0"]),
        "Efdr": _vector(run["Efdr"].values()),
        "cdf1": _matrix(run["cdf1"]),
        "mat": _matrix(run["mat"]),
        "z.2": np.full(2, np.iinfo(np.int32).min, dtype=np.int32) if np.isnan(z2).all() else z2,
        "call": object(),
    }
    if "mult" in run:
        out["mult"] = _vector(run["mult"].values())
    return out


def _patch_r(monkeypatch, fake_call):
    monkeypatch.setattr(_r, "require", lambda package: None)
    monkeypatch.setattr(_r, "r_available", lambda package=None: True)
    monkeypatch.setattr(_r, "call", fake_call)


@pytest.mark.parametrize(
    ("file", "run_name"),
    [("norm_n1000.json", "nt1_default"), ("mix_sym_n10000.json", "nt3_split_normal"),
     ("mix_sym_n10000.json", "v_mult"), ("paper_like_sd0.3_n124000.json", "nt0_theoretical")],
)  # fmt: skip
def test_r_backend_converts_r_list(monkeypatch, file, run_name):
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is absent (needs ../shared)")
    z, run = _reference(file, run_name)
    seen = {}

    def fake_call(package, function, *args, **kwargs):
        seen.update(package=package, function=function, args=args, kwargs=kwargs)
        return _fake_r_list(run, REFERENCE), list(run["warnings"])

    _patch_r(monkeypatch, fake_call)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LocfdrWarning)
        result = locfdr(z, backend="auto", **run["args"])
    assert result.backend == "r"
    assert (seen["package"], seen["function"]) == ("locfdr", "locfdr")
    np.testing.assert_array_equal(seen["args"][0], z)
    assert seen["kwargs"]["plot"] == 0 and seen["kwargs"]["nulltype"] == run["args"].get("nulltype", 1)
    assert ("mult" in seen["kwargs"]) == ("mult" in run["args"]) and "mlests" not in seen["kwargs"]
    _assert_matches(result, run, REFERENCE)
    _assert_thresholds(result, z, run)


def test_r_backend_turns_r_errors_into_locfdr_error(monkeypatch, normal_z):
    def fake_call(package, function, *args, **kwargs):
        raise RuntimeError("R's locfdr::locfdr failed: CM estimation failed.  Rerun with nulltype = 1.")

    _patch_r(monkeypatch, fake_call)
    with pytest.raises(LocfdrError, match=re.escape("CM estimation failed.  Rerun with nulltype = 1.")):
        locfdr(normal_z, nulltype=2, backend="r")


def test_r_backend_without_r_locfdr_gives_install_hint(monkeypatch, normal_z):
    def missing(package):
        raise _r.RUnavailableError(f"The R package '{package}' is not installed: install it in R with ...")

    monkeypatch.setattr(_r, "require", missing)
    monkeypatch.setattr(_r, "r_available", lambda package=None: False)
    with pytest.raises(_r.RUnavailableError, match="'locfdr' is not installed"):
        locfdr(normal_z, backend="r")
    assert locfdr(normal_z, backend="auto").backend == "python"


_R_LOCFDR = _r.r_available("locfdr")


@pytest.mark.skipif(not _R_LOCFDR, reason="R's locfdr is not installed (install.packages('locfdr') in R)")
@pytest.mark.parametrize(
    ("file", "run_name"), [("small_n300.json", "nt1_default"), ("t5_n5000.json", "nt2_central_matching")]
)
def test_real_r_backend_matches_reference_and_port(file, run_name):
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is absent (needs ../shared)")
    z, run = _reference(file, run_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LocfdrWarning)
        from_r = locfdr(z, backend="r", **run["args"])
    assert from_r.backend == "r"
    _assert_matches(from_r, run, REFERENCE)
    np.testing.assert_allclose(from_r.fdr, _run_python(z, run).fdr, atol=FDR_ATOL)


def test_the_ports_shortcuts_give_numpys_bins_and_interpolation_bit_for_bit():
    """Binning and interpolating 1 M values by their distance to the first break (not a binary search each) and
    reading quantiles from a partition (not a sort) change no number: random ranges, values on, just beside and
    between the breaks and the bin centres."""
    from linpert.interactions._locfdr import _bins, _interp_even, _median, _partly_sorted, _quantile7

    rng = np.random.default_rng(1)
    for _ in range(200):
        n1 = int(rng.integers(5, 300))
        lo, up = sorted(rng.normal(size=2) * rng.uniform(0.01, 10))
        breaks = np.r_[lo, lo + np.arange(1, n1) * ((up - lo) / n1), up]
        fuzz = 1e-7 * np.median(np.diff(breaks))
        fuzzy = breaks + np.r_[-fuzz, np.full(n1, fuzz)]
        edges = np.r_[breaks, fuzzy, np.nextafter(fuzzy, np.inf), np.nextafter(fuzzy, -np.inf)]
        values = np.clip(np.r_[rng.uniform(lo, up, 2000), edges], lo, up)
        np.testing.assert_array_equal(_bins(values, fuzzy),
                                      np.clip(np.searchsorted(fuzzy, values, side="left") - 1, 0, n1 - 1))
        x, y = (breaks[1:] + breaks[:-1]) / 2, rng.uniform(size=n1)
        at = np.r_[rng.uniform(lo - 1, up + 1, 2000), x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)]
        np.testing.assert_array_equal(_interp_even(at, x, y), np.interp(at, x, y))
    for n in (200, 201, 124_000):
        z = rng.normal(size=n)
        quantiles = [0.01, 0.99, 0.25, 0.75, 0.1]
        partly, whole = _partly_sorted(z, quantiles), np.sort(z)
        assert [_quantile7(partly, p) for p in quantiles] == [_quantile7(whole, p) for p in quantiles]
        assert (_median(partly), partly[0], partly[-1]) == (_median(whole), whole[0], whole[-1])

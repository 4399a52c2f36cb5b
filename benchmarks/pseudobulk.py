"""Speed and memory of linpert.pseudobulk on a Replogle-sized cell matrix, against scanpy.get.aggregate.

The data: 160,000 cells × 5,000 genes, CSR float32 log1p-like values, 25 % non-zero (gene detection rates drawn
from Beta(1, 3)), 1,000 single-gene conditions of 150 cells plus 10,000 ctrl cells, cells in random order. It is
written chunk-wise to ``benchmarks/_data/`` (git-ignored) once and reused.

Every measurement runs in a fresh subprocess. Peak memory is the process's peak RSS during the call minus its RSS just
before the call (the "baseline": Python, the imports and, in memory, the loaded AnnData); the peak is reset before
each call through ``/proc/self/clear_refs``. For the backed runs the absolute peak RSS of the process is shown too.
Times are the best of ``--repeats`` calls in that subprocess (the machine is shared; the file stays in the page cache).

Run: ``.venv/bin/python benchmarks/pseudobulk.py`` (about 3 minutes on 2 cores; ``--cells 20000`` for a quick look).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "_data"
GiB = 2**30


# --- data ------------------------------------------------------------------------------------------------------------


def generate(path: Path, *, n_cells: int, n_genes: int, n_conditions: int, n_ctrl: int, density: float) -> None:
    """Write the cell-level h5ad: single-gene conditions of equal size plus ``n_ctrl`` ctrl cells, in random order."""
    rng = np.random.default_rng(0)
    symbols = np.array([f"GENE{i:05d}" for i in range(n_genes)])
    labels = np.array(["ctrl"] + [f"{g}+ctrl" for g in symbols[:n_conditions]], dtype=object)
    per_condition = (n_cells - n_ctrl) // n_conditions
    cells = np.concatenate([np.zeros(n_ctrl, int), np.repeat(np.arange(1, n_conditions + 1), per_condition)])
    cells = np.concatenate([cells, np.zeros(n_cells - len(cells), int)])  # the remainder joins ctrl
    write_cells(path, labels[rng.permutation(cells)], symbols, density, rng)


def write_cells(path: Path, condition: np.ndarray, symbols: np.ndarray, density: float, rng) -> None:
    """Write cells with these conditions chunk by chunk (never the whole matrix in memory), atomically: CSR float32
    log1p-like values, gene detection rates from a Beta with mean ``density``."""
    import anndata
    import h5py
    import pandas as pd

    try:
        from anndata.io import write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import write_elem

    n_cells, n_genes = len(condition), len(symbols)
    detection = rng.beta(1.0, (1 - density) / density, n_genes).astype(np.float32)  # mean = density
    tmp = path.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"], f.attrs["encoding-version"] = "anndata", "0.1.0"
        obs = pd.DataFrame({"condition": pd.Categorical(condition)}, index=[f"cell{i}" for i in range(n_cells)])
        var = pd.DataFrame({"gene_name": symbols}, index=[f"ENSG{i:011d}" for i in range(n_genes)])
        write_elem(f, "obs", obs)
        write_elem(f, "var", var)
        for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            write_elem(f, key, {})
        X = f.create_group("X")
        X.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_cells, n_genes)})
        data = X.create_dataset("data", (0,), np.float32, maxshape=(None,), chunks=(1 << 20,))
        indices = X.create_dataset("indices", (0,), np.int32, maxshape=(None,), chunks=(1 << 20,))
        indptr = np.zeros(n_cells + 1, dtype=np.int64)
        for start in range(0, n_cells, 2_000):
            stop = min(start + 2_000, n_cells)
            rows, cols = np.nonzero(rng.random((stop - start, n_genes), dtype=np.float32) < detection)
            values = np.log1p(rng.gamma(1.5, 2.0, len(cols))).astype(np.float32)
            n = data.shape[0]
            data.resize((n + len(cols),))
            indices.resize((n + len(cols),))
            data[n:], indices[n:] = values, cols.astype(np.int32)
            indptr[start + 1 : stop + 1] = n + np.cumsum(np.bincount(rows, minlength=stop - start))
        # int32 where it fits, as scipy itself makes it (int64 slows scipy's sparse product about tenfold)
        X.create_dataset("indptr", data=indptr.astype(np.int32) if indptr[-1] < 2**31 else indptr)
    anndata.read_h5ad(tmp, backed="r").file.close()  # it reads back as an AnnData
    os.replace(tmp, path)


# --- one measurement, in its own process ------------------------------------------------------------------------------


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM, the peak RSS, to the current RSS


def measure(name: str, path: Path, repeats: int, out: Path) -> dict:
    import warnings

    import anndata

    warnings.simplefilter("ignore", FutureWarning)
    if "NumPy twin" in name:
        os.environ["LINPERT_NUMBA"] = "0"
    if name.startswith("scanpy"):  # only where it is measured, so it does not weigh on linpert's peak
        import scanpy as sc
    else:
        import linpert

    loaders = {
        "linpert, in memory": lambda: anndata.read_h5ad(path),
        "linpert, in memory, NumPy twin": lambda: anndata.read_h5ad(path),
        "scanpy, in memory": lambda: anndata.read_h5ad(path),
        "scipy float32 product, in memory": lambda: anndata.read_h5ad(path),
        "read pass, in memory": lambda: anndata.read_h5ad(path),
        "h5py read of data and indices": lambda: None,
        "linpert, backed file (path)": lambda: None,
        "linpert, backed AnnData": lambda: anndata.read_h5ad(path, backed="r"),
        "scanpy, backed AnnData": lambda: anndata.read_h5ad(path, backed="r"),
    }
    start = time.perf_counter()
    adata = loaders[name]()
    load_seconds = time.perf_counter() - start
    calls = {
        "linpert, in memory": lambda: linpert.pseudobulk(adata),
        "linpert, in memory, NumPy twin": lambda: linpert.pseudobulk(adata),
        "scipy float32 product, in memory": lambda: float32_product(adata),
        "read pass, in memory": lambda: read_pass(adata.X),
        "h5py read of data and indices": lambda: h5py_read(path),
        "scanpy, in memory": lambda: sc.get.aggregate(adata, by="condition", func="mean"),
        "linpert, backed AnnData": lambda: linpert.pseudobulk(adata),
        "scanpy, backed AnnData": lambda: sc.get.aggregate(adata, by="condition", func="mean"),
        "linpert, backed file (path)": lambda: linpert.pseudobulk(path),
    }
    times, peaks, baseline, absolute, result = [], [], 0, 0, None
    for _ in range(repeats):
        result = None
        gc.collect()
        baseline = _status("VmRSS")
        _reset_peak()
        start = time.perf_counter()
        try:
            result = calls[name]()
        except Exception as error:  # report what happens, e.g. scanpy on a backed AnnData
            return {"name": name, "error": f"{type(error).__name__}: {error}".splitlines()[0][:200]}
        times.append(time.perf_counter() - start)
        absolute = max(absolute, _status("VmHWM"))
        peaks.append(_status("VmHWM") - baseline)
    if name.startswith("scanpy"):
        means, conditions = result.layers["mean"], result.obs_names.tolist()
    elif result is not None:
        means, conditions = (result.X, result.obs_names.tolist()) if hasattr(result, "X") else result
    if result is not None:
        np.save(out, np.asarray(means, dtype=np.float64))
        out.with_suffix(".json").write_text(json.dumps(conditions))
    return {
        "name": name,
        "seconds": min(times),
        "load_seconds": load_seconds,
        "peak_above_baseline": max(peaks),
        "baseline": baseline,
        "peak_absolute": absolute,
    }


def float32_product(adata):
    """The obvious baseline: a float32 indicator matrix times the float32 matrix, divided by the counts."""
    from scipy import sparse

    labels = adata.obs["condition"].astype(str).to_numpy()
    conditions, codes = np.unique(labels, return_inverse=True)
    indicator = sparse.csr_matrix((np.ones(len(codes), np.float32), (codes, np.arange(len(codes)))),
                                  shape=(len(conditions), len(codes)))
    sums = (indicator @ adata.X).toarray()
    return sums / np.bincount(codes)[:, None].astype(np.float32), [str(c) for c in conditions]


def read_pass(X):
    """One read of the stored values and column indices, both cores sharing it: the memory-bandwidth limit."""
    from concurrent.futures import ThreadPoolExecutor

    halves = [(array, slice(0, len(array) // 2)) for array in (X.data, X.indices)]
    halves += [(array, slice(len(array) // 2, None)) for array in (X.data, X.indices)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda part: part[0][part[1]].max(), halves))  # a reduction reads every byte, writes none


def h5py_read(path: Path, chunk_size: int = 20_000):
    """Read X/data and X/indices from the file, chunk by chunk into reused buffers: the file's reading limit."""
    import h5py

    with h5py.File(path, "r") as f:
        indptr = f["X/indptr"][:]
        buffers = {name: np.empty(int(np.diff(indptr[::chunk_size]).max(initial=0)) + 1, f[f"X/{name}"].dtype)
                   for name in ("data", "indices")}
        for start in range(0, len(indptr) - 1, chunk_size):
            lo, hi = int(indptr[start]), int(indptr[min(start + chunk_size, len(indptr) - 1)])
            for name, buffer in buffers.items():
                if hi > lo:
                    f[f"X/{name}"].read_direct(buffer, np.s_[lo:hi], np.s_[0: hi - lo])


def run_in_subprocess(name: str, path: Path, repeats: int) -> dict:
    out = DATA / f"result-{name.replace(' ', '_').replace(',', '').replace('(', '').replace(')', '')}.npy"
    command = [sys.executable, __file__, "--measure", name, "--path", str(path), "--repeats", str(repeats)]
    command += ["--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"name": name, "error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["out"] = str(out)
    out.unlink(missing_ok=True) if "error" in report else None
    return report


def load_result(report: dict) -> tuple[np.ndarray, list[str]] | None:
    if "out" not in report or not Path(report["out"]).exists():  # the read passes return no means
        return None
    out = Path(report["out"])
    return np.load(out), json.loads(out.with_suffix(".json").read_text())


def max_difference(a, b) -> float:
    (x, names_x), (y, names_y) = a, b
    order = {name: i for i, name in enumerate(names_y)}
    return float(np.max(np.abs(x - y[[order[n] for n in names_x]])))


# --- the table -------------------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores, Python {platform.python_version()}"


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("anndata", "scanpy", "scipy", "numpy", "h5py"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=160_000)
    parser.add_argument("--genes", type=int, default=5_000)
    parser.add_argument("--conditions", type=int, default=1_000)
    parser.add_argument("--ctrl", type=int, default=10_000)
    parser.add_argument("--density", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        try:
            print(json.dumps(measure(args.measure, Path(args.path), args.repeats, Path(args.out))))
        except Exception:
            traceback.print_exc()
            sys.exit(1)
        return

    DATA.mkdir(exist_ok=True)
    path = DATA / f"cells-{args.cells}x{args.genes}-{args.conditions}-{args.density:g}.h5ad"
    if args.regenerate or not path.exists():
        start = time.perf_counter()
        generate(
            path, n_cells=args.cells, n_genes=args.genes, n_conditions=args.conditions, n_ctrl=args.ctrl,
            density=args.density,
        )  # fmt: skip
        print(f"generated {path.name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    size = path.stat().st_size

    names = [
        "linpert, in memory",
        "linpert, in memory, NumPy twin",
        "scanpy, in memory",
        "scipy float32 product, in memory",
        "read pass, in memory",
        "linpert, backed file (path)",
        "linpert, backed AnnData",
        "scanpy, backed AnnData",
        "h5py read of data and indices",
    ]
    reports = {}
    for name in names:
        reports[name] = run_in_subprocess(name, path, args.repeats)
        print(f"{name}: {reports[name]}", file=sys.stderr)

    reference = load_result(reports["scanpy, in memory"]) or load_result(reports["linpert, in memory"])
    scanpy_memory = reports["scanpy, in memory"]
    print(f"Data: {args.cells:,} cells × {args.genes:,} genes, CSR float32, {args.density:.0%} non-zero, "
          f"{args.conditions:,} conditions + {args.ctrl:,} ctrl cells; file {size / GiB:.2f} GiB.")  # fmt: skip
    print(f"Machine: {machine()}; {versions()}.\n")
    print("| run | time (s) | vs scanpy in memory | vs scipy float32 | vs its limit | peak RSS above baseline | "
          "peak RSS (process) | max abs diff | read_h5ad before (s) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    limits = {"in memory": reports["read pass, in memory"], "backed": reports["h5py read of data and indices"]}
    baseline = reports["scipy float32 product, in memory"]
    for name in names:
        report = reports[name]
        if "error" in report:
            print(f"| {name} | fails: {report['error']} | | | | | | | |")
            continue
        ratio = lambda peer: f"{report['seconds'] / peer['seconds']:.2f}×" if "seconds" in peer else ""
        limit = limits["in memory" if "in memory" in name else "backed"]
        result = load_result(report)
        diff = f"{max_difference(result, reference):.1e}" if reference is not None and result is not None else ""
        print(
            f"| {name} | {report['seconds']:.3f} | {ratio(scanpy_memory)} | {ratio(baseline)} | {ratio(limit)} | "
            f"{report['peak_above_baseline'] / GiB:.2f} GiB | {report['peak_absolute'] / GiB:.2f} GiB | {diff} | "
            f"{report['load_seconds']:.1f} |"
        )
    print("\nmax abs diff: against scanpy's in-memory result (float64 means). Its limit: the read pass for runs in "
          "memory, the h5py read for runs from the file.")


if __name__ == "__main__":
    main()

"""Pseudobulk of a screen too large for memory, on a Dask cluster of 1 and of 2 workers.

A simulated Perturb-seq screen (default 2,000,000 cells × 8,000 genes, 6 % non-zero, 2,000 single-gene conditions
plus ``ctrl``, cells in random order) is written chunk by chunk to an anndata zarr store (``X`` as a CSR group of
``data``/``indices``/``indptr`` zarr arrays, the layout ``anndata.experimental.read_elem_lazy`` reads lazily as a
Dask array of scipy CSR blocks). It is never held in memory. Then ``linpert.pseudobulk(path, scheduler=client)``
runs on a ``distributed.LocalCluster`` of 1 and of 2 single-threaded worker processes; a thread samples every
worker's RSS through ``client.run`` every 0.2 s.

Run: ``.venv/bin/python benchmarks/dask_pseudobulk.py`` (``--cells 200000`` for a quick look). The store is kept in
``benchmarks/_data/`` (git-ignored) and reused when its parameters match.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
GiB = 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2_000_000)
    parser.add_argument("--genes", type=int, default=8_000)
    parser.add_argument("--conditions", type=int, default=2_000)
    parser.add_argument("--density", type=float, default=0.06)
    parser.add_argument("--chunk-sizes", default="20000,100000", help="cells per Dask task, comma-separated")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--store", type=Path, default=None)
    args = parser.parse_args()
    store = args.store or HERE / "_data" / f"dask_screen_{args.cells}x{args.genes}_{args.density:g}.zarr"
    params = {k: getattr(args, k) for k in ("cells", "genes", "conditions", "density")}

    t0 = time.perf_counter()
    generated = write_screen(store, **params)
    seconds = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    print(f"store {store}: {size / GiB:.2f} GiB, {generated['nnz']:,} non-zeros"
          + (f", written in {seconds:.0f} s" if generated["written"] else " (reused)"), flush=True)

    rows, results = [], {}
    for chunk_size in [int(n) for n in args.chunk_sizes.split(",")]:
        for n_workers in [int(n) for n in args.workers.split(",")]:
            row, results[n_workers, chunk_size] = measure(store, n_workers, chunk_size)
            rows.append(row)
            print(row, flush=True)
    first = results[rows[0]["workers"], rows[0]["chunk size"]]
    for row in rows:
        other = results[row["workers"], row["chunk size"]]
        row["max abs diff vs first"] = float(np.abs(other.X - first.X).max())
        single = next(r for r in rows if r["chunk size"] == row["chunk size"])
        row["speed-up vs 1 worker"] = single["seconds"] / row["seconds"]
        row["MB/s read (uncompressed)"] = generated["nnz"] * 8 / row["seconds"] / 1e6
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".3g") if _has_tabulate() else table.to_string(index=False))
    print(json.dumps({"store_gib": size / GiB, "nnz": generated["nnz"], **params, "rows": rows}, indent=1))


def write_screen(path: Path, *, cells: int, genes: int, conditions: int, density: float, seed: int = 0) -> dict:
    """Write the simulated screen to ``path`` chunk by chunk (unless a finished store with these parameters is there).

    Low-entropy but realistic values: 4,096 template cells are drawn once (gene detection rates from a Beta
    distribution with mean ``density``, log1p-normalised counts); each cell copies a random template and scales it by
    its condition's factor, so writing costs a gather and a multiply, not fresh random draws per value.
    """
    import anndata
    import zarr
    from anndata.io import write_elem
    from scipy import sparse

    marker = path / "linpert_params.json"
    wanted = {"cells": cells, "genes": genes, "conditions": conditions, "density": density, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return {"written": False, "nnz": int(zarr.open_group(path, mode="r")["X/indptr"][-1])}
    shutil.rmtree(path, ignore_errors=True)
    rng = np.random.default_rng(seed)

    # templates: per-gene detection rate ~ Beta(0.6, 0.6 (1 - d) / d), mean d; counts 1 + Geometric
    rate = rng.beta(0.6, 0.6 * (1 - density) / density, size=genes)
    n_templates = 4096
    detected = rng.random((n_templates, genes)) < rate
    counts = np.where(detected, rng.geometric(0.5, size=detected.shape), 0).astype(np.float32)
    library = np.maximum(counts.sum(1, keepdims=True), 1)
    templates = sparse.csr_matrix(np.log1p(counts / library * 1e4).astype(np.float32))
    template_nnz = np.diff(templates.indptr)

    names = [f"G{g}" for g in range(genes)]
    labels = np.array(["ctrl"] + [f"{names[g]}+ctrl" for g in rng.choice(genes, conditions, replace=False)])
    # 5 % control cells, the rest spread evenly over the perturbations, in random order
    weights = np.r_[0.05, np.full(conditions, 0.95 / conditions)]
    cell_condition = rng.choice(len(labels), size=cells, p=weights)
    cell_template = rng.integers(0, n_templates, size=cells)
    factor = (1 + 0.1 * rng.standard_normal(len(labels))).clip(0.5, 1.5).astype(np.float32)
    factor[0] = 1
    lengths = template_nnz[cell_template]
    indptr = np.r_[0, np.cumsum(lengths, dtype=np.int64)]
    nnz = int(indptr[-1])

    anndata.settings.zarr_write_format = 3
    root = zarr.open_group(path, mode="w", zarr_format=3)
    obs = pd.DataFrame(
        {"condition": pd.Categorical.from_codes(cell_condition, categories=labels)},
        index=pd.Index([f"cell{i}" for i in range(cells)]),
    )
    write_elem(root, "obs", obs)
    write_elem(root, "var", pd.DataFrame({"gene_name": names}, index=[f"ENSG{g:011d}" for g in range(genes)]))
    for key in ("layers", "obsm", "varm", "obsp", "varp", "uns"):
        write_elem(root, key, {})
    group = root.create_group("X")
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": [cells, genes]})
    chunk = 4_194_304  # values per zarr chunk: 16 MiB of float32
    data = group.create_array("data", shape=(nnz,), chunks=(chunk,), dtype="float32")
    indices = group.create_array("indices", shape=(nnz,), chunks=(chunk,), dtype="int32")
    group.create_array("indptr", shape=(cells + 1,), chunks=(1_048_576,), dtype="int64")[:] = indptr
    root.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})

    # write in slabs aligned to the zarr chunks, so no chunk is written twice
    slab = chunk * 16
    bounds = list(range(0, nnz, slab)) + [nnz]
    for a, b in zip(bounds[:-1], bounds[1:]):
        first = int(np.searchsorted(indptr, a, side="right")) - 1  # cell holding value a
        last = int(np.searchsorted(indptr, b, side="left"))  # cells first..last-1 cover [a, b)
        cells_here = np.arange(first, last)
        starts = templates.indptr[cell_template[cells_here]]
        n = lengths[cells_here]
        offsets = np.repeat(starts - indptr[cells_here], n)  # ragged gather of the templates' rows
        positions = np.arange(indptr[first], indptr[last]) + offsets
        values = templates.data[positions] * np.repeat(factor[cell_condition[cells_here]], n)
        lo = a - indptr[first]
        data[a:b] = values[lo : lo + b - a]
        indices[a:b] = templates.indices[positions][lo : lo + b - a]
        print(f"\rwrote {b / nnz:.0%} of {nnz:,} values", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    marker.write_text(json.dumps(wanted))
    return {"written": True, "nnz": nnz}


def measure(store: Path, n_workers: int, chunk_size: int):
    """Time one pseudobulk of the store on a fresh cluster, sampling each worker's peak RSS."""
    import psutil
    from distributed import Client, LocalCluster

    import linpert

    cluster = LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        memory_limit="8GiB",
    )
    client = Client(cluster)
    peaks: dict[str, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                for worker, rss in client.run(lambda: psutil.Process().memory_info().rss).items():
                    peaks[worker] = max(peaks.get(worker, 0), rss)
            except Exception:  # a worker starting or stopping
                pass
            time.sleep(0.2)

    def cpu_seconds() -> float:
        times = client.run(lambda: sum(psutil.Process().cpu_times()[:2]))
        return sum(times.values())

    try:
        client.run(_prepare_worker)
        sampler = threading.Thread(target=sample, daemon=True)
        idle = max(client.run(lambda: psutil.Process().memory_info().rss).values())
        cpu0 = cpu_seconds()
        sampler.start()
        t0 = time.perf_counter()
        result = linpert.pseudobulk(store, scheduler=client, chunk_size=chunk_size)
        seconds = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0
        done.set()
        sampler.join()
    finally:
        client.close()
        cluster.close()
    cells = int(result.obs["n_cells"].sum())
    row = {
        "workers": n_workers,
        "chunk size": chunk_size,
        "cells": cells,
        "seconds": seconds,
        "cells/s": cells / seconds,
        "worker CPU s": cpu,
        "cells per worker CPU s": cells / cpu,
        "idle worker RSS GiB": idle / GiB,
        "peak worker RSS GiB (max over workers)": max(peaks.values()) / GiB,
        "conditions": result.n_obs,
    }
    return row, result


def _prepare_worker() -> None:
    """One core per worker: zarr decodes on one thread (its default pool would spread a worker over all cores)."""
    import zarr

    import linpert._pseudobulk  # noqa: F401  (imports are not part of the timing)

    zarr.config.set({"threading.max_workers": 1})


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()

"""A whole Norman-sized ``linpert run`` from the cell file, stage by stage (issue 17's target: under 15 s, 2 cores).

The data: 84,000 cells × 19,264 genes, CSR float32, 30 % non-zero (about 3.9 GB of data and indices, like the real
screen's), ctrl plus 105 single-gene and 131 two-gene conditions, cells in random order; written once to
``benchmarks/_data/`` (git-ignored). The command is the one a user types:

    linpert run cells.h5ad --split double --seeds 1,2,3,4,5 --models no_change,additive,linear

It runs in a fresh process into a new folder (the wall time includes starting Python and importing linpert), then
once more into the same folder (every cell, figure and the report reused). A second fresh process repeats the
stages one by one with timers: reading and pseudobulking the file, the grid (fits, predictions, metrics, the
interaction analysis), the figures, the report. The peer, measured in the same run: reading the file's data and
indices with h5py.

Run: ``.venv/bin/python benchmarks/norman_run.py`` (the first time about 3 minutes to write the file).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from pseudobulk import DATA, h5py_read, machine, write_cells  # noqa: E402

COMMAND = ["--split", "double", "--seeds", "1,2,3,4,5", "--models", "no_change,additive,linear", "--quiet"]


def generate(path: Path, n_cells: int, n_genes: int, density: float) -> None:
    rng = np.random.default_rng(0)
    symbols = np.array([f"GENE{i:05d}" for i in range(n_genes)])
    singles = list(symbols[:105])
    pairs = list(itertools.combinations(range(105), 2))
    doubles = [f"{singles[a]}+{singles[b]}" for a, b in (pairs[i] for i in rng.choice(len(pairs), 131, replace=False))]
    labels = np.array(["ctrl"] + [f"{g}+ctrl" for g in singles] + doubles, dtype=object)
    n_ctrl = n_cells - (n_cells // len(labels)) * (len(labels) - 1)
    codes = np.concatenate([np.zeros(n_ctrl, int), np.repeat(np.arange(1, len(labels)), n_cells // len(labels))])
    write_cells(path, labels[rng.permutation(codes)], symbols, density, rng)


def stages(path: str, out: str) -> dict:
    """The CLI's steps one by one, timed (run in a fresh process)."""
    from linpert import benchmark
    from linpert.cli import _load
    from linpert.plot import write_figures
    from linpert.report import write_report

    times = {}
    start = time.perf_counter()
    data, name, cells = _load(path, condition_key="condition", progress=False, scheduler=None)
    times["read + pseudobulk"] = time.perf_counter() - start
    start = time.perf_counter()
    result = benchmark.run(data, split="double", seeds=[1, 2, 3, 4, 5], models=["no_change", "additive", "linear"],
                           out=out, dataset=name, progress=False, cells=cells)
    times["grid: fits, predictions, metrics, interactions"] = time.perf_counter() - start
    start = time.perf_counter()
    write_figures(result.out)
    times["figures"] = time.perf_counter() - start
    start = time.perf_counter()
    write_report([result.out], result.out / "report.html", title="linpert")
    times["report"] = time.perf_counter() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=84_000)
    parser.add_argument("--genes", type=int, default=19_264)
    parser.add_argument("--density", type=float, default=0.3)
    parser.add_argument("--stages", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages:
        print(json.dumps(stages(*args.stages)))
        return
    DATA.mkdir(exist_ok=True)
    path = DATA / f"norman-{args.cells}x{args.genes}-{args.density:g}.h5ad"
    if not path.exists():
        start = time.perf_counter()
        generate(path, args.cells, args.genes, args.density)
        print(f"wrote {path.name} ({path.stat().st_size / 2**30:.1f} GiB) in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
    linpert = Path(sys.executable).parent / "linpert"
    with tempfile.TemporaryDirectory(dir=DATA) as folder:
        h5py_read(path)  # the file into the page cache for everyone
        start = time.perf_counter()
        h5py_read(path)
        read = time.perf_counter() - start
        walls = []
        for _ in range(2):  # a new folder, then the same folder again
            start = time.perf_counter()
            subprocess.run([str(linpert), "run", str(path), "--out", f"{folder}/run", *COMMAND], check=True,
                           capture_output=True)
            walls.append(time.perf_counter() - start)
        shutil.rmtree(f"{folder}/run")
        done = subprocess.run([sys.executable, __file__, "--stages", str(path), f"{folder}/stages"], check=True,
                              capture_output=True, text=True)
        timed = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{args.cells:,} cells × {args.genes:,} genes, {args.density:.0%} non-zero; {machine()}.\n")
    print("| step | seconds |\n|---|---:|")
    print(f"| `linpert run` into a new folder (whole command, fresh process) | {walls[0]:.1f} |")
    print(f"| the same command again (everything reused) | {walls[1]:.1f} |")
    for step, seconds in timed.items():
        print(f"| stage: {step} | {seconds:.2f} |")
    print(f"| peer: h5py read of the file's data and indices | {read:.2f} |")


if __name__ == "__main__":
    main()

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

``--against REV`` compares with another revision instead, back to back: the command from a temporary git worktree of
``REV`` and from this code, alternating, ``--repeats`` times each after one untimed run of each (which compiles its
kernels), with each run's wall time, CPU time and peak memory (the machine's speed drifts within the hour, so only runs
side by side compare); then whether the two run folders hold the same tables (every parquet and CSV, timings aside).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
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
ROOT = Path(__file__).resolve().parent.parent


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
    from linpert.plot import start_figures, write_figures
    from linpert.report import write_report

    times, started = {}, {}
    start = time.perf_counter()
    data, name, cells = _load(path, condition_key="condition", progress=False, scheduler=None)
    times["read + pseudobulk"] = time.perf_counter() - start
    start = time.perf_counter()
    result = benchmark.run(data, split="double", seeds=[1, 2, 3, 4, 5], models=["no_change", "additive", "linear"],
                           out=out, dataset=name, progress=False, cells=cells,
                           on_scored=lambda folder: started.update(figures=start_figures(folder)))
    times["grid: fits, predictions, metrics, interactions (the figures of the scores begin meanwhile)"] = \
        time.perf_counter() - start
    start = time.perf_counter()
    write_figures(result.out, started=started["figures"])
    times["figures: the interaction figures, and waiting for the others"] = time.perf_counter() - start
    start = time.perf_counter()
    write_report([result.out], result.out / "report.html", title="linpert")
    times["report"] = time.perf_counter() - start
    return times


def against(revision: str, path: Path, repeats: int) -> None:
    """The command from ``revision`` and from this code, alternating; then whether their run folders agree."""
    with tempfile.TemporaryDirectory(dir=DATA) as folder:
        worktree = Path(folder) / "worktree"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), revision], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            codes = {revision: worktree / "python", "this code": ROOT / "python"}
            outs = {label: Path(folder) / label.replace(" ", "_") for label in codes}
            print(f"{path.name}; {machine()}.\n")
            print("| code | wall s | CPU s (user + system) | peak RSS GB |\n|---|---:|---:|---:|")
            for label, code in codes.items():  # a first run compiles the kernels of each code into its cache
                _timed_command(code, path, outs[label])
            for _ in range(repeats):
                for label, code in codes.items():
                    wall, cpu, rss = _timed_command(code, path, outs[label])
                    print(f"| {label} | {wall:.1f} | {cpu:.1f} | {rss:.2f} |", flush=True)
            same, compared = _same_tables(*outs.values())
            print(f"\n{same} of {compared} tables equal (every parquet and CSV of the two run folders, timings aside).")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)


def _timed_command(code: Path, path: Path, out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak resident GB of ``linpert run`` with the linpert of ``code``."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-c", "import sys; from linpert.cli import main; sys.exit(main())", "run", str(path),
               "--out", str(out), *COMMAND]
    with tempfile.TemporaryFile() as said:  # a file, not a pipe: a full pipe would stop the child
        start = time.perf_counter()
        child = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(code)}, stdout=subprocess.DEVNULL,
                                 stderr=said)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            said.seek(0)
            raise RuntimeError(f"linpert run from {code} failed: {said.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20


def _same_tables(first: Path, second: Path) -> tuple[int, int]:
    """How many of the first run folder's tables the second holds equally (timing columns and files aside)."""
    import pandas as pd

    from linpert._io import read_matrix  # a tidy matrix (the kept DE tables) or any other parquet table

    read = lambda p: read_matrix(p) if p.suffix == ".parquet" else pd.read_csv(p)  # noqa: E731
    timing = lambda frame: frame.drop(columns=[c for c in frame if "seconds" in c or "peak" in c])  # noqa: E731
    tables = [p.relative_to(first) for p in sorted(first.rglob("*")) if p.suffix in (".parquet", ".csv")
              and p.name != "timings.csv"]
    same = sum((second / t).is_file() and timing(read(first / t)).equals(timing(read(second / t))) for t in tables)
    return same, len(tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=84_000)
    parser.add_argument("--genes", type=int, default=19_264)
    parser.add_argument("--density", type=float, default=0.3)
    parser.add_argument("--against", metavar="REV", help="compare with this git revision, back to back")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each code with --against (default: 3)")
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
    if args.against:
        against(args.against, path, args.repeats)
        return
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

"""Speed and memory of linpert's locfdr port against R's locfdr 1.1-8 (when installed), on paper-sized inputs.

The data: z-values shaped like the paper's interaction scores (96 % N(0, 0.05²) null plus 4 % N(0, 0.3²) effects),
124,000 values (the paper's size), 600,000 (past locfdr's 500,000 switch to a wider ML window) and 1,000,000, seed 0.

The peers, each in the same run: R's locfdr called from Python through rpy2 (``backend="r"``), and R's locfdr run
directly by ``Rscript`` on the same values (read from a file before the timing), which is how an R user runs it.
Every measurement runs in a fresh process. Time: the best of ``--repeats`` calls after one warm-up call (imports,
and for R the start of R and the transfer of z, are outside the timing of the later calls). Peak memory: the peak of
Python allocations during one call, by ``tracemalloc`` in a separate call (R's own allocations are not seen by
tracemalloc, so R's columns show only time).

Run: ``.venv/bin/python benchmarks/locfdr.py`` (about 20 seconds); ``--write`` appends the table to
``benchmarks/README.md`` under ``## locfdr`` (replacing that section if present).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZES = (124_000, 600_000, 1_000_000)

_CHILD = r"""
import json, sys, time, tracemalloc, warnings
import numpy as np
from linpert import _r
from linpert.interactions._locfdr import locfdr

path, backend, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
z = np.fromfile(path, dtype="<f8")
if backend == "r" and not _r.r_available("locfdr"):
    print(json.dumps({"status": "not installed"}))
    sys.exit(0)
warnings.simplefilter("ignore")
result = locfdr(z, backend=backend)  # warm-up
times = []
for _ in range(repeats):
    start = time.perf_counter()
    result = locfdr(z, backend=backend)
    times.append(time.perf_counter() - start)
peak = None
if backend == "python":
    tracemalloc.start()
    locfdr(z, backend=backend)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
print(json.dumps({"status": "ok", "seconds": min(times), "peak_bytes": peak, "warnings": result.warnings,
                  "mlest": result.fp0.loc["mlest"].tolist()}))
"""


_RSCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
z <- readBin(args[1], "double", n = file.size(args[1]) / 8)
repeats <- as.integer(args[2])
if (!requireNamespace("locfdr", quietly = TRUE)) { cat('{"status": "not installed"}\n'); quit(status = 0) }
run <- function() suppressWarnings(locfdr::locfdr(z, plot = 0))
invisible(run())  # warm-up
best <- Inf
for (i in seq_len(repeats)) best <- min(best, system.time(run())[["elapsed"]])
cat(sprintf('{"status": "ok", "seconds": %.6f}\n', best))
"""


def write_values(n: int, path: Path) -> Path:
    """The z-values, as little-endian doubles that every process reads."""
    rng = np.random.default_rng(0)
    n_alt = int(0.04 * n)
    z = np.concatenate([rng.normal(0, 0.05, n - n_alt), rng.normal(0, 0.3, n_alt)])
    rng.shuffle(z)
    z.astype("<f8").tofile(path)
    return path


def measure_rscript(path: Path, repeats: int) -> dict:
    """R's locfdr run by Rscript itself, on the same values."""
    import shutil

    if shutil.which("Rscript") is None:
        return {"status": "no Rscript"}
    proc = subprocess.run(["Rscript", "-e", _RSCRIPT, str(path), str(repeats)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"status": f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(path: Path, backend: str, repeats: int) -> dict:
    """One subprocess: time and peak memory of ``locfdr`` on the values in ``path``."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "python") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), backend, str(repeats)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        return {"status": f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[tuple[int, dict, dict, dict]]) -> str:
    lines = [
        "| values | Python port: time | Python port: peak memory | R locfdr through rpy2 | R locfdr in Rscript | "
        "port vs Rscript | port warnings (same as R's) |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    ms = lambda m: f"{m['seconds'] * 1000:.0f} ms" if m["status"] == "ok" else m["status"]  # noqa: E731
    for n, py, r, rscript in rows:
        py_mem = f"{py['peak_bytes'] / 2**20:.1f} MiB" if py["status"] == "ok" else "–"
        ratio = (f"**{rscript['seconds'] / py['seconds']:.1f}× faster**"
                 if py["status"] == rscript["status"] == "ok" else "–")
        notes = "; ".join(_short(w) for w in py.get("warnings", [])) or "–"
        lines.append(f"| {n:,} | {ms(py)} | {py_mem} | {ms(r)} | {ms(rscript)} | {ratio} | {notes} |")
    return "\n".join(lines)


def _short(message: str) -> str:
    first = message.split(".  ")[0].split("\n")[0]
    return first if len(first) <= 40 else first[:39] + "…"


def write_section(text: str) -> None:
    """Put ``text`` under ``## locfdr`` in benchmarks/README.md, leaving other sections alone; atomic write."""
    readme = HERE / "README.md"
    old = readme.read_text() if readme.exists() else "# Benchmarks\n"
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "## locfdr"), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join([*lines[:start], text.rstrip("\n"), *([""] + lines[end:] if end < len(lines) else [])]) + "\n"
    fd, tmp = tempfile.mkstemp(dir=HERE, prefix=".README.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(new)
    os.replace(tmp, readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write the section into benchmarks/README.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in SIZES:
            path = write_values(n, Path(folder) / f"z{n}.bin")
            rows.append((n, measure(path, "python", args.repeats), measure(path, "r", args.repeats),
                         measure_rscript(path, args.repeats)))
    body = table(rows)
    section = (
        "## locfdr\n\n"
        "`benchmarks/locfdr.py`: `linpert.interactions.locfdr(z, backend=...)` with default arguments on z shaped "
        "like the paper's interaction scores (96 % N(0, 0.05²) + 4 % N(0, 0.3²), seed 0), beside R's locfdr "
        "through rpy2 and run by Rscript on the same values. Best of "
        f"{args.repeats} calls after a warm-up, each in a fresh process; peak memory = peak Python "
        "allocations of one call (tracemalloc). "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}.\n\n" + body + "\n"
    )
    print(section)
    if args.write:
        write_section(section)


if __name__ == "__main__":
    main()

"""Speed and memory of linpert's locfdr port against R's locfdr 1.1-8 (when installed), on paper-sized inputs.

The data: z-values shaped like the paper's interaction scores (96 % N(0, 0.05²) null plus 4 % N(0, 0.3²) effects),
124,000 values (the paper's size) and 600,000 (past locfdr's 500,000 switch to a wider ML window), seed 0.

Every measurement runs in a fresh subprocess. Time: the best of ``--repeats`` calls after one warm-up call (imports,
and for R the start of R and the transfer of z, are outside the timing of the later calls). Peak memory: the peak of
Python allocations during one call, by ``tracemalloc`` in a separate call (R's own allocations are not seen by
tracemalloc, so R's column shows only time).

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
SIZES = (124_000, 600_000)

_CHILD = r"""
import json, sys, time, tracemalloc, warnings
import numpy as np
from linpert import _r
from linpert.interactions._locfdr import locfdr

n, backend, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
n_alt = int(0.04 * n)
z = np.concatenate([rng.normal(0, 0.05, n - n_alt), rng.normal(0, 0.3, n_alt)])
rng.shuffle(z)
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


def measure(n: int, backend: str, repeats: int) -> dict:
    """One subprocess: time and peak memory of ``locfdr`` on n values."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "python") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n), backend, str(repeats)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        return {"status": f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[tuple[int, dict, dict]]) -> str:
    lines = [
        "| values | Python port: time | Python port: peak memory | R locfdr: time | port warnings (same as R's) |",
        "|---:|---:|---:|---:|---|",
    ]
    for n, py, r in rows:
        py_time = f"{py['seconds'] * 1000:.0f} ms" if py["status"] == "ok" else py["status"]
        py_mem = f"{py['peak_bytes'] / 2**20:.1f} MiB" if py["status"] == "ok" else "–"
        r_time = f"{r['seconds'] * 1000:.0f} ms" if r["status"] == "ok" else r["status"]
        notes = "; ".join(_short(w) for w in py.get("warnings", [])) or "–"
        lines.append(f"| {n:,} | {py_time} | {py_mem} | {r_time} | {notes} |")
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
    rows = [(n, measure(n, "python", args.repeats), measure(n, "r", args.repeats)) for n in SIZES]
    body = table(rows)
    section = (
        "## locfdr\n\n"
        "`benchmarks/locfdr.py`: `linpert.interactions.locfdr(z, backend=...)` with default arguments on z shaped "
        "like the paper's interaction scores (96 % N(0, 0.05²) + 4 % N(0, 0.3²), seed 0). Best of "
        f"{args.repeats} calls after a warm-up, each size in a fresh subprocess; peak memory = peak Python "
        "allocations of one call (tracemalloc). "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}.\n\n" + body + "\n"
    )
    print(section)
    if args.write:
        write_section(section)


if __name__ == "__main__":
    main()

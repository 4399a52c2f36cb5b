"""The R package against the Python package on the same work (issue 29's target: R within 1.3x of Python's time and
memory for simulate_screen, pseudobulk and call_interactions).

Each step runs in a fresh process per language, 3 (simulate) or 15 times after a small warm-up run (packages loaded,
kernels compiled) and after its inputs are made (untimed): the time is the best call's wall time, the memory the most
the process's peak resident set grew during one call (the peak is reset through ``/proc/self/clear_refs`` before each
call). ``R - Python`` is the bridge's cost per call, which does not grow with the work. R calls the R package
(installed in ``.venv/R-library``), which calls the same Python in the same process; the Python side calls
``linpert`` directly.

- ``simulate``: ``simulate("norman")`` at its defaults (~29,000 cells x 5,000 genes), returned as R's
  SingleCellExperiment / Python's AnnData;
- ``pseudobulk``: of those cells (a sparse dgCMatrix in R, CSR in Python); ``pseudobulk64``: the same, Python's
  values made doubles first, as R holds them (R has no 32-bit floats: its kernel reads twice the bytes);
- ``call_interactions``: on their pseudobulk, 1,000 read-out genes, the Python port of locfdr on both sides.

Run: ``.venv/bin/python benchmarks/r_bridge.py`` (R_LIBS must hold the R package: scripts/test.sh installs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# calls per step: the short steps (40 ms) vary by more than the bridge's cost between calls, so they get more
REPEATS = {"simulate": 3, "pseudobulk": 15, "pseudobulk64": 15, "call_interactions": 15}

# Shared by both languages' scripts: reset the peak RSS, read it (kB), read the current RSS (kB).
PY_STEP = """
import json, os, resource, time, warnings
warnings.simplefilter("ignore")
import linpert
from linpert.datasets import simulate
from linpert.interactions import call_interactions

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

def measure(step):
    times, growth = [], []
    for _ in range({repeats}):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = rss("VmRSS:")
        start = time.perf_counter()
        value = step()
        times.append(time.perf_counter() - start)
        growth.append(rss("VmHWM:") - before)
        del value
    return min(times), max(growth)

step = "{step}"
small = simulate("norman", n_genes=50, n_singles=4, n_doubles=2, cells_per_condition=5, n_control_cells=10)
linpert.pseudobulk(small, progress=False)  # warm: imports and compiled kernels, as in R below
cells = simulate("norman") if step != "simulate" else None
if step == "pseudobulk64":  # the same numbers as doubles, as R holds them
    cells.X = cells.X.astype("float64")
bulk = linpert.pseudobulk(cells, progress=False) if step == "call_interactions" else None
work = {{"simulate": lambda: simulate("norman"),
         "pseudobulk": lambda: linpert.pseudobulk(cells, progress=False),
         "pseudobulk64": lambda: linpert.pseudobulk(cells, progress=False),
         "call_interactions": lambda: call_interactions(bulk, n_genes=1000, backend="python")}}[step]
seconds, kb = measure(work)
print(json.dumps({{"seconds": seconds, "gib": kb / 2**20}}))
"""

R_STEP = """
suppressPackageStartupMessages(library(linpert))
rss <- function(field) {{
  line <- grep(paste0("^", field), readLines("/proc/self/status"), value = TRUE)
  as.numeric(strsplit(trimws(sub(field, "", line)), " +")[[1]][1])
}}
measure <- function(step) {{
  times <- growth <- numeric(0)
  for (i in seq_len({repeats})) {{
    gc()
    writeLines("5", "/proc/self/clear_refs")
    before <- rss("VmRSS:")
    start <- proc.time()[["elapsed"]]
    value <- step()
    times <- c(times, proc.time()[["elapsed"]] - start)
    growth <- c(growth, rss("VmHWM:") - before)
    rm(value)
  }}
  c(seconds = min(times), gib = max(growth) / 2^20)
}}
step <- "{step}"
# warm: the Bioconductor packages load and Python starts on first use, not inside a measured call
invisible(pseudobulk(simulate_screen("norman", n_genes = 50, n_singles = 4, n_doubles = 2, cells_per_condition = 5,
                                     n_control_cells = 10)))
cells <- if (step != "simulate") simulate_screen("norman")
bulk <- if (step == "call_interactions") pseudobulk(cells)
work <- switch(step,
  simulate = function() simulate_screen("norman"),
  pseudobulk = function() pseudobulk(cells),
  pseudobulk64 = function() pseudobulk(cells),
  call_interactions = function() suppressMessages(suppressWarnings(
    call_interactions(bulk, n_genes = 1000, backend = "python"))))
m <- measure(work)
cat(sprintf('{{"seconds": %.6f, "gib": %.6f}}\\n', m[["seconds"]], m[["gib"]]))
"""


def run(language: str, step: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py" if language == "python" else ".R", delete=False) as f:
        f.write((PY_STEP if language == "python" else R_STEP).format(step=step, repeats=REPEATS[step]))
    try:
        command = [sys.executable, f.name] if language == "python" else ["Rscript", f.name]
        env = {**os.environ, "LINPERT_PYTHON": sys.executable}
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
        if done.returncode != 0:
            raise RuntimeError(f"{language} {step} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(f.name)


def main() -> None:
    import platform

    print(f"Python {platform.python_version()}, {os.cpu_count()} cores; best of {REPEATS} calls.\n")
    print("| step | Python s | R s | R - Python s | R / Python time | Python peak growth GiB | R peak growth GiB "
          "| R / Python memory |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for step in ("simulate", "pseudobulk", "pseudobulk64", "call_interactions"):
        py, r = run("python", step), run("r", step)
        print(f"| {step} | {py['seconds']:.3f} | {r['seconds']:.3f} | {r['seconds'] - py['seconds']:.3f} "
              f"| {r['seconds'] / py['seconds']:.2f}x "
              f"| {py['gib']:.3f} | {r['gib']:.3f} | {r['gib'] / max(py['gib'], 1e-9):.2f}x |", flush=True)


if __name__ == "__main__":
    main()

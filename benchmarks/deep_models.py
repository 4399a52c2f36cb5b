"""Environment build time, fit time per epoch and peak memory of the deep models, beside the linear model.

    python benchmarks/deep_models.py [--models gears,cpa,scgpt,state,cellflow] [--python PATH ...] [--devices cpu,cuda]
                                     [--genes 5000] [--singles 100] [--doubles 124] [--cells 40] [--epochs 1]
                                     [--steps 200]

On a Norman-shaped simulated screen (the defaults: 5,000 genes, 100 singles, 124 doubles, 40 cells per condition,
2,000 control cells), each model is trained through linpert's adapter on the double split (seed 1), with the
split's validation doubles for early stopping, then predicts the scored doubles. One row per Python, model and
device:

- ``build_s``: building the model's isolated environment (pip, first use), or the seconds recorded when the cached
  one was built (marked ``*``); GEARS runs in this interpreter (``linpert[gears]``) and has none;
- ``epoch_s``: the worker's seconds per training epoch; ``fit_s``: the whole fit (worker start, data, graphs);
- ``predict_s``: predicting the scored doubles; ``peak_mib``: the worker's peak memory (GPU peak on CUDA, resident
  memory on the CPU);
- ``stack``: what the worker ran with.

The peer in the same run is linpert's linear model on the same split. ``--python`` builds and runs each model's
environment from other interpreters too (e.g. ``/usr/bin/python3.10``), which is how the stacks for Python 3.10 to
3.12 are checked. scGPT starts from a small randomly initialised checkpoint (``write_scgpt_checkpoint``: 64
dimensions, 2 layers; scGPT_human has 512 and 12), so its epoch time is a lower bound for the real weights. CPA runs
under its paper preset (its tutorial's settings); STATE trains its ``state_sm`` for ``--steps`` steps (its epochs are
not reported: it counts steps), and CellFlow its default velocity field for ``--steps`` iterations.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pandas as pd

import linpert
from linpert.adapters import (
    CellFlowModel,
    CpaModel,
    GearsModel,
    GeneformerDecoder,
    Runtime,
    ScBertDecoder,
    ScGptModel,
    StateModel,
    UceDecoder,
    gears_fork,
    write_geneformer_model,
    write_go_files,
    write_scbert_model,
    write_scgpt_checkpoint,
    write_uce_model,
)
from linpert.adapters._environment import venv_path, venv_record
from linpert.datasets import simulate
from linpert.models import LinearModel
from linpert.splits import double_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gears,cpa,scgpt")
    parser.add_argument("--python", action="append", help="base interpreter(s) of the venvs (default: this one)")
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--genes", type=int, default=5000)
    parser.add_argument("--singles", type=int, default=100)
    parser.add_argument("--doubles", type=int, default=124)
    parser.add_argument("--cells", type=int, default=40, help="cells per condition")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200, help="STATE's training steps, CellFlow's iterations")
    parser.add_argument("--geneformer-code", help="a clone of Geneformer's repository (0.1.0), for geneformer")
    parser.add_argument("--scbert-code", help="a clone of scBERT's repository (262fd4b9), for scbert")
    parser.add_argument("--fork", help="scFoundation's GEARS folder, for gears_fork (default: gears_fork()'s)")
    parser.add_argument("--out", help="also write the table as CSV here")
    parser.add_argument("--keep", help="keep each worker's run folder (data, logs, model) under this folder")
    args = parser.parse_args()

    cells = simulate("norman", n_genes=args.genes, n_singles=args.singles, n_doubles=args.doubles,
                     cells_per_condition=args.cells, seed=0)
    bulk = linpert.pseudobulk(cells)
    split = double_split(bulk.obs_names, seed=1)
    train, scored = bulk[list(split.train)].copy(), list(split.scored)
    folder = Path(tempfile.mkdtemp(prefix="linpert-bench-"))
    cells_path = folder / "cells.h5ad"
    cells.write_h5ad(cells_path)
    print(f"data: {cells.n_obs} cells x {cells.n_vars} genes, {len(split.train)} train / {len(split.val)} val / "
          f"{len(split.test)} test conditions, {args.epochs} epoch(s)", flush=True)

    rows = [_linear(train, scored)]
    pythons = args.python or [None]
    for python in pythons:
        for name in args.models.split(","):
            for device in args.devices.split(","):
                try:
                    row = _deep(name, python, device, cells_path, bulk, train, scored, split, folder, args)
                except Exception as err:  # report and go on: the table says which stack failed and why
                    lines = str(err).splitlines()
                    print(f"FAILED {name} (python {python or sys.executable}, {device}): {lines[0]}\n  "
                          + "\n  ".join(lines[-5:]), flush=True)
                    continue
                if row:
                    rows.append(row)
                    print(_table([row]).to_string(index=False, header=False), flush=True)
    table = _table(rows)
    print()
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)


def _linear(train, scored) -> dict:
    tracemalloc.start()
    t0 = time.perf_counter()
    model = LinearModel().fit(train)
    t1 = time.perf_counter()
    model.predict(scored)
    t2 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"model": "linear (peer)", "python": "%d.%d.%d" % sys.version_info[:3], "device": "cpu", "build_s": "",
            "epochs": "", "epoch_s": None, "fit_s": t1 - t0, "predict_s": t2 - t1, "peak_mib": peak,
            "stack": "linpert"}


def _model(name, python, device, cells_path, bulk, split, folder, args):
    epochs, keep, steps = args.epochs, args.keep, args.steps
    runtime = Runtime("venv", python=python)
    shared = {"cells": str(cells_path), "validation": list(split.val), "device": device, "work_dir": keep}
    genes = list(bulk.var_names)
    if name == "gears_fork":  # the paper's GEARS on Norman: scFoundation's 0.0.2 fork, in its own environment
        return GearsModel(go_files=str(write_go_files(genes, folder / "go")), code=args.fork or gears_fork(),
                          epochs=epochs, **shared)
    # the linear decoders: fine-tuned (Geneformer, scBERT) and embedded by the model's own code, from small random
    # models in the real formats; their epochs are the fine-tuning's
    decoder = {"cells": str(cells_path), "device": device}
    if name == "geneformer":
        ids = list(bulk.var["gene_id"]) if "gene_id" in bulk.var else genes  # Geneformer keys genes by Ensembl ID
        model = write_geneformer_model(folder / "geneformer", ids)
        return GeneformerDecoder(model=str(model), code=args.geneformer_code, epochs=epochs, **decoder)
    if name == "scbert":
        model = write_scbert_model(folder / "scbert", genes, code=args.scbert_code)
        return ScBertDecoder(model=str(model), code=args.scbert_code, epochs=epochs, **decoder)
    if name == "uce":
        return UceDecoder(model_files=str(write_uce_model(folder / "uce", genes)), **decoder)
    if name == "gears":  # this interpreter has linpert[gears]; other Pythons get a venv
        runtime = Runtime("current") if python is None else runtime
        return GearsModel(go_files=str(write_go_files(genes, folder / "go")), epochs=epochs,
                          runtime=runtime, **shared)
    if name == "cpa":
        return CpaModel(max_epochs=epochs, runtime=runtime, **shared)
    if name == "scgpt":
        checkpoint = folder / f"scgpt-{abs(hash(python))}"
        if not checkpoint.exists():
            write_scgpt_checkpoint(checkpoint, genes, runtime=runtime)
        return ScGptModel(checkpoint=str(checkpoint), epochs=epochs, early_stop=epochs, runtime=runtime, **shared)
    if name == "state":
        return StateModel(max_steps=steps, runtime=runtime, **shared)
    if name == "cellflow":  # trains a fixed budget and validates on nothing
        return CellFlowModel(num_iterations=steps, runtime=runtime, cells=str(cells_path), device=device,
                             work_dir=keep)
    raise SystemExit(f"unknown model {name!r}: use gears, gears_fork, cpa, scgpt, state, cellflow, geneformer, "
                     "scbert or uce")


def _deep(name, python, device, cells_path, bulk, train, scored, split, folder, args) -> dict | None:
    model = _model(name, python, device, cells_path, bulk, split, folder, args)
    if not hasattr(model, "stacks"):
        return _decoder(name, model, train, scored)
    runtime = Runtime.of(model.runtime if model.runtime is not None else model.default_runtime)
    build = ""
    if runtime.environment == "venv":
        stack = runtime.stack(model.stacks, model=model.name)
        env = venv_path(stack, name=stack.shared or model.name, python=python)  # where the launcher builds it
        cached = (env / ".linpert-complete").is_file()
        t0 = time.perf_counter()
        model._launcher()  # builds the environment on first use
        seconds = venv_record(env).get("build_seconds") if cached else time.perf_counter() - t0
        build = "cached" if seconds is None else f"{seconds:.0f}{'*' if cached else ''}"
    try:
        model.fit(train)
    except RuntimeError as err:
        if "no CUDA device" in str(err):
            print(f"{name} on {device}: skipped (no CUDA device)", flush=True)
            return None
        raise
    t0 = time.perf_counter()
    model.predict(scored)
    predict_s = time.perf_counter() - t0
    report = model.fit_report_
    per_epoch = report.get("epoch_seconds")
    if isinstance(per_epoch, list):
        per_epoch = sum(per_epoch) / len(per_epoch)
    predict = json.loads((model.run_dir_ / "predict.json").read_text())
    peak = max(model.peak_memory_mib_, predict.get("peak_gpu_mib") or predict.get("peak_rss_mib") or 0)
    versions = dict(model.versions_)
    return {"model": name, "python": versions.pop("python", "?"), "device": model.device_, "build_s": build,
            "epochs": report.get("epochs"), "epoch_s": per_epoch, "fit_s": model.fit_seconds_,
            "predict_s": predict_s, "peak_mib": peak,
            "stack": ", ".join(f"{k} {v}" for k, v in versions.items() if k in STACK_NAMES)}


def _decoder(name, model, train, scored) -> dict:
    """A linear decoder: its fit is the embedding (fine-tuning included) in the shared environment, then the ridge."""
    t0 = time.perf_counter()
    model.fit(train)
    t1 = time.perf_counter()
    model.predict(scored)
    t2 = time.perf_counter()
    versions = dict(model.versions_ or {})
    report = model.embedding_.attrs.get("worker", {})
    return {"model": name, "python": versions.pop("python", "?"), "device": report.get("device", "cpu"),
            "build_s": "shared", "epochs": model.epochs if hasattr(model, "epochs") else "", "epoch_s": None,
            "fit_s": t1 - t0, "predict_s": t2 - t1, "peak_mib": model.peak_memory_mib_ or float("nan"),
            "stack": ", ".join(f"{k} {v}" for k, v in versions.items() if k in STACK_NAMES)}


#: The packages the table names in its stack column.
STACK_NAMES = ("torch", "cpa-tools", "scgpt", "cell-gears", "gears", "arc-state", "cellflow-tools", "jax",
               "transformers", "uce-model", "geneformer", "performer-pytorch")


def _table(rows) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    for column in ("epoch_s", "fit_s", "predict_s", "peak_mib"):
        table[column] = table[column].map(lambda v: "" if v is None or v != v else f"{v:.3g}")
    return table


if __name__ == "__main__":
    main()

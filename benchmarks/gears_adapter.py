"""Epoch time and peak memory of GEARS through linpert's adapter, on a Norman-shaped simulated dataset.

    python benchmarks/gears_adapter.py [--genes 5000] [--singles 100] [--doubles 124] [--cells 40] [--epochs 1]

Trains GEARS (the paper's settings: hidden 64, batch 32) for ``--epochs`` on the double-perturbation split of a
simulated Norman-like screen, on CPU and, when the worker sees one, on CUDA, and prints one row per device: the
seconds per epoch (GEARS' training loop incl. its per-epoch train/val evaluation), the whole fit (worker start, data
preparation and cell graphs included), the prediction of the scored conditions and the worker's peak memory (GPU
peak on CUDA, resident memory on CPU). The peer in the same run is linpert's linear model on the same split.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import linpert
from linpert.adapters import GearsModel, write_go_files
from linpert.datasets import simulate
from linpert.models import LinearModel
from linpert.splits import double_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=5000)
    parser.add_argument("--singles", type=int, default=100)
    parser.add_argument("--doubles", type=int, default=124)
    parser.add_argument("--cells", type=int, default=40, help="cells per condition")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--devices", default="cpu,cuda")
    args = parser.parse_args()

    cells = simulate("norman", n_genes=args.genes, n_singles=args.singles, n_doubles=args.doubles,
                     cells_per_condition=args.cells, seed=0)
    bulk = linpert.pseudobulk(cells)
    split = double_split(bulk.obs_names, seed=1)
    train = bulk[list(split.train)].copy()
    folder = Path(tempfile.mkdtemp(prefix="linpert-bench-"))
    go = write_go_files(list(bulk.var_names), folder / "go")
    print(f"data: {cells.n_obs} cells x {cells.n_vars} genes, {len(split.train)} train / {len(split.val)} val / "
          f"{len(split.test)} test conditions, {args.epochs} epoch(s)")

    rows = []
    t0 = time.perf_counter()
    LinearModel().fit(train).predict(list(split.scored))
    rows.append(("linear (peer)", "cpu", float("nan"), time.perf_counter() - t0, float("nan"), float("nan")))
    for device in args.devices.split(","):
        model = GearsModel(cells=cells, go_files=go, validation=list(split.val), epochs=args.epochs, device=device)
        try:
            model.fit(train)
        except RuntimeError as err:
            if "no CUDA device" in str(err):
                print(f"{device}: skipped (no CUDA device)")
                continue
            raise
        model.predict(list(split.scored))
        rows.append((
            "gears", model.device_, model.fit_report_["epoch_seconds"], model.fit_seconds_, model.predict_seconds_,
            model.peak_memory_mib_,
        ))
    print(f"{'model':<14} {'device':<6} {'s/epoch':>9} {'fit s':>8} {'predict s':>10} {'peak MiB':>9}")
    for name, device, epoch, fit, predict, peak in rows:
        print(f"{name:<14} {device:<6} {epoch:>9.1f} {fit:>8.1f} {predict:>10.1f} {peak:>9.0f}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

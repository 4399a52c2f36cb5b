"""The field's metrics, linpert against Arc's cell-eval on the same predictions, measured in the same run.

    python benchmarks/field_metrics.py [--perturbations 300] [--genes 19264] [--repeats 3]

Builds a screen of the given size (observed and predicted pseudobulks, a control profile), scores the three
discrimination scores with linpert and with cell-eval 0.8.2 (its own code, in an isolated environment built on first
use), checks that the values agree to 1e-9, and prints the best-of-``repeats`` seconds of each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from linpert.adapters._environment import ensure_venv
from linpert.metrics import discrimination_score

PEER = Path(__file__).parent / "peers" / "cell_eval_peer.py"


def screen(n: int, g: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(g)]
    ctrl = rng.gamma(2, 0.5, g)
    obs = ctrl + rng.normal(0, 0.5, (n, g)) * (rng.random((n, g)) < 0.3)
    obs[np.arange(n), np.arange(n)] += 3
    pred = ctrl + 0.3 * (obs - ctrl) + rng.normal(0, 1.0, (n, g))
    return pred, obs, ctrl, genes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perturbations", type=int, default=300)
    parser.add_argument("--genes", type=int, default=19_264)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pred, obs, ctrl, genes = screen(args.perturbations, args.genes)
    names = genes[: args.perturbations]
    python = ensure_venv(["cell-eval==0.8.2"], name="cell-eval", progress=True) / "bin" / "python"
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.npz"
        np.savez(source, predicted=pred, observed=obs, control=ctrl, perturbations=np.array(names, dtype=str),
                 genes=np.array(genes, dtype=str))
        peer = {}
        for _ in range(args.repeats):
            subprocess.run([str(python), str(PEER), str(source), f"{folder}/out.json"], check=True,
                           capture_output=True)
            result = json.loads(Path(f"{folder}/out.json").read_text())
            for metric, entry in result.items():
                peer.setdefault(metric, []).append(entry["seconds"])
                peer[metric + ":values"] = entry["values"]
    index = [f"{name}+ctrl" for name in names]
    P, O = pd.DataFrame(pred, index, genes), pd.DataFrame(obs, index, genes)
    for metric in ("l1", "l2", "cosine"):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            ours = discrimination_score(P, O, control=ctrl, metric=metric)
            times.append(time.perf_counter() - start)
        name = f"discrimination_{metric}"
        difference = float(np.max(np.abs(ours.to_numpy() - np.asarray(peer[name + ":values"]))))
        rows.append({"metric": name, "linpert_s": min(times), "cell_eval_s": min(peer[name]),
                     "speed-up": min(peer[name]) / min(times), "max |difference|": difference})
    print(f"{args.perturbations} perturbations × {args.genes:,} genes, best of {args.repeats}, Python "
          f"{sys.version.split()[0]}")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()

"""The field's metrics, linpert against Arc's cell-eval on the same predictions, measured in the same run.

    python benchmarks/field_metrics.py [--perturbations 300] [--genes 19264] [--repeats 3]
                                       [--de-cells 50000] [--de-genes 19264]

Builds a screen of the given size (observed and predicted pseudobulks, a control profile), scores the three
discrimination scores with linpert and with cell-eval 0.8.2 (its own code, in an isolated environment built on first
use), checks that the values agree to 1e-9, and prints the best-of-``repeats`` seconds of each. Then tests every gene
of a simulated cell-level screen (``--de-cells``; 0 skips it) for differential expression, with linpert and with
pdex as cell-eval calls it, once each, and prints the seconds, the largest differences and the peak memory.
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
from linpert.metrics import differential_expression, discrimination_score

PEER = Path(__file__).parent / "peers" / "cell_eval_peer.py"
DE_PEER = Path(__file__).parent / "peers" / "cell_eval_de_peer.py"


def screen(n: int, g: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(g)]
    ctrl = rng.gamma(2, 0.5, g)
    obs = ctrl + rng.normal(0, 0.5, (n, g)) * (rng.random((n, g)) < 0.3)
    obs[np.arange(n), np.arange(n)] += 3
    pred = ctrl + 0.3 * (obs - ctrl) + rng.normal(0, 1.0, (n, g))
    return pred, obs, ctrl, genes


def de_screen(n_cells: int, n_genes: int, n_perturbations: int = 300, n_control: int = 5000, seed: int = 0):
    """log1p counts of a cell-level screen: control cells, then equal groups that each change 2 % of the genes."""
    import anndata
    from scipy import sparse

    rng = np.random.default_rng(seed)
    per = (n_cells - n_control) // n_perturbations
    codes = np.r_[np.zeros(n_control, int), np.repeat(np.arange(1, n_perturbations + 1), per)]
    base = rng.gamma(0.3, 1.0, n_genes)
    changed = rng.random((n_perturbations, n_genes)) < 0.02
    scale = np.vstack([np.ones(n_genes), np.exp(rng.normal(0, 0.8, (n_perturbations, n_genes)) * changed)])
    blocks = [sparse.csr_matrix(np.log1p(rng.poisson(base * scale[codes[rows]]).astype(np.float32)))
              for rows in np.array_split(np.arange(len(codes)), max(1, len(codes) // 1000))]
    labels = np.array(["non-targeting"] + [f"P{k}" for k in range(n_perturbations)])[codes]
    obs = pd.DataFrame({"target_gene": labels, "condition": labels}, index=[f"c{i}" for i in range(len(codes))])
    return anndata.AnnData(sparse.vstack(blocks).tocsr(), obs=obs,
                           var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))


def compare_de(python: Path, n_cells: int, n_genes: int) -> None:
    """linpert's differential_expression against pdex on the same cells, once each; peak memory of each process."""
    import resource

    cells = de_screen(n_cells, n_genes)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "screen.h5ad"
        cells.write_h5ad(path)
        run = subprocess.run(["/usr/bin/time", "-f", "%M", str(python), str(DE_PEER), str(path), "-",
                              f"{folder}/de.npz"], check=True, capture_output=True, text=True)
        peer_kib = int(run.stderr.strip().splitlines()[-1])
        theirs = dict(np.load(f"{folder}/de.npz"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    ours = differential_expression(cells, control="non-targeting")
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ours = ours.rows(list(theirs["perturbations"]))
    worst = {}
    for name in ("p_value", "fdr", "log2_fold_change"):
        a, b = getattr(ours, name).to_numpy(), theirs[name]
        with np.errstate(invalid="ignore"):  # inf - inf where both are infinite: equal
            worst[name] = float(np.max(np.where(a == b, 0.0, np.abs(a - b))))
    print(f"\nDifferential expression, {n_cells:,} cells × {n_genes:,} genes, {len(theirs['perturbations'])} "
          f"perturbations against {int((cells.obs['condition'] == 'non-targeting').sum()):,} control cells, "
          f"{cells.X.nnz / np.prod(cells.shape):.0%} non-zero, once each:")
    table = pd.DataFrame([
        {"run": "linpert differential_expression", "seconds": seconds,
         "peak RSS of the process (GiB)": after / 2**20, "note": f"grew {max(after - before, 0) / 2**20:.2f} GiB"},
        {"run": "pdex (cell-eval's DE)", "seconds": float(theirs["seconds"]),
         "peak RSS of the process (GiB)": peer_kib / 2**20, "note": "reads the file too"},
    ])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"speed-up {float(theirs['seconds']) / seconds:.1f}×; largest differences: "
          + ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perturbations", type=int, default=300)
    parser.add_argument("--genes", type=int, default=19_264)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--de-cells", type=int, default=50_000)
    parser.add_argument("--de-genes", type=int, default=19_264)
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
    if args.de_cells:
        compare_de(python, args.de_cells, args.de_genes)


if __name__ == "__main__":
    main()

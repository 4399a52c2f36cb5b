"""Speed of the whole benchmark runner on paper-sized pseudobulks (issue 3's targets, 2 cores).

- double: a Norman-sized pseudobulk (225 conditions × 19,264 genes), 5 seeds, no change + additive + linear model;
  target under 5 s.
- single: a Replogle-RPE1-sized pseudobulk (1,544 conditions × 5,000 genes), GEARS' simulation split, 2 seeds,
  mean + linear model; target under 10 s.

The pseudobulks are synthetic (low-rank effects around a log-normal control profile): the runner's cost depends on
the shapes, not on the values. Prints a markdown table. Run: `.venv/bin/python benchmarks/runner.py`.
"""

from __future__ import annotations

import itertools
import os
import platform
import time

import anndata
import numpy as np
import pandas as pd

from linpert import benchmark


def synthetic_pseudobulk(n_genes: int, n_singles: int, n_doubles: int, *, rank: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    genes = [f"G{i:05d}" for i in range(n_genes)]
    ctrl = np.exp(rng.normal(-1.0, 1.2, n_genes))
    loadings = rng.normal(size=(n_genes, rank)) * 0.1
    targets = genes[:n_singles]
    factors = {g: rng.normal(size=rank) for g in targets}
    pairs = list(itertools.combinations(range(n_singles), 2))
    doubles = [tuple(targets[i] for i in pairs[k]) for k in rng.choice(len(pairs), n_doubles, replace=False)]
    combos = [()] + [(g,) for g in targets] + doubles
    names = ["ctrl"] + [f"{g}+ctrl" for g in targets] + ["+".join(d) for d in doubles]
    X = np.empty((len(combos), n_genes))
    for i, combo in enumerate(combos):
        X[i] = ctrl + loadings @ sum((factors[g] for g in combo), np.zeros(rank)) + rng.normal(0, 0.02, n_genes)
    order = [0] + sorted(range(1, len(names)), key=names.__getitem__)
    obs = pd.DataFrame(
        {
            "genes": [names[i].replace("+ctrl", "").replace("ctrl", "") for i in order],
            "kind": [["control", "single", "double"][len(combos[i])] for i in order],
            "n_cells": np.full(len(order), 100, dtype=np.int64),
        },
        index=pd.Index([names[i] for i in order], name="condition"),
    )
    return anndata.AnnData(X=X[order], obs=obs, var=pd.DataFrame(index=genes))


CASES = [
    ("double (Norman-sized)", dict(n_genes=19_264, n_singles=100, n_doubles=124), "double", [1, 2, 3, 4, 5],
     ["no_change", "additive", "linear"], 5.0),
    ("single (RPE1-sized)", dict(n_genes=5_000, n_singles=1_543, n_doubles=0), "simulation", [1, 2],
     ["mean", "linear"], 10.0),
]


def main() -> None:
    rows = []
    for label, shape, split, seeds, models, target in CASES:
        data = synthetic_pseudobulk(**shape)
        t0 = time.perf_counter()
        result = benchmark.run(data, split=split, seeds=seeds, models=models, progress=False)
        wall = time.perf_counter() - t0
        fit = result.timings.groupby("model")["fit_seconds"].sum()
        rows.append(
            {
                "benchmark": label,
                "pseudobulk": f"{data.n_obs} × {data.n_vars}",
                "seeds": len(seeds),
                "models": ", ".join(models),
                "rows scored": len(result.results),
                "wall s": round(wall, 2),
                "target s": target,
                "met": "yes" if wall < target else "NO",
                "fit s per model": ", ".join(f"{m} {s:.2f}" for m, s in fit.items()),
            }
        )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()

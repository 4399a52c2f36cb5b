"""How close the simulator's presets land to the paper's published statistics, over several seeds.

    python benchmarks/simulation_calibration.py [--seeds 0 1 2 3 4]

For each seed, simulates the preset, pseudobulks it and runs the paper's benchmark as the demo does (Norman: double
split, seeds 1-5, no change / additive / linear, with the interaction analysis; Replogle: simulation split, seeds
1-2, mean / linear). Prints one table per preset: each statistic per seed beside the published figure (read from
``linpert.published`` where the source data hold it) and the target range the presets are held to.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import linpert
from linpert import benchmark, published

# the paper's figures that are not in its per-perturbation source data (Fig. 1c text: no change's AUPRC)
PUBLISHED_NO_CHANGE_AUPRC = 0.33


def norman(seed: int) -> dict[str, float]:
    bulk = linpert.pseudobulk(linpert.datasets.simulate("norman", seed=seed), progress=False)
    run = benchmark.run(bulk, split="double", models=["no_change", "additive", "linear"], progress=False)
    calls, auc = run.interaction_calls, run.interactions.auc_summary
    auprc = auc[auc["metric"] == "auprc"].set_index("model")["mean"]
    l2 = run.results.groupby("model")["l2"].mean()
    classes = calls.counts.drop("additive")
    called = max(int(classes.sum()), 1)
    return {
        "interactions (% of pairs)": 100 * calls.n_interactions / len(calls.table),
        "buffering (% of calls)": 100 * classes["buffering"] / called,
        "synergy (% of calls)": 100 * classes["synergy"] / called,
        "opposite (% of calls)": 100 * classes["opposite"] / called,
        "other (% of calls)": 100 * classes["other"] / called,
        "locfdr thresholds (lower)": calls.lower,
        "locfdr thresholds (upper)": calls.upper,
        "no change AUPRC": auprc["no_change"],
        "linear AUPRC": auprc["linear"],
        "additive / no change L2": l2["additive"] / l2["no_change"],
    }


def replogle(seed: int) -> dict[str, float]:
    bulk = linpert.pseudobulk(linpert.datasets.simulate("replogle", seed=seed), progress=False)
    run = benchmark.run(bulk, split="simulation", seeds=[1, 2], models=["mean", "linear"], progress=False)
    means = run.results.groupby("model")[["l2", "pearson_delta"]].mean()
    return {"mean baseline Pearson delta": means.at["mean", "pearson_delta"],
            "linear / mean L2": means.at["linear", "l2"] / means.at["mean", "l2"]}


def published_norman() -> dict[str, str]:
    l2 = published.results("norman").groupby("model")["l2"].mean()
    classes = published.interactions("interaction_classes").set_index("class")["pairs"]
    calls = classes.drop("additive")
    share = lambda c: f"{100 * calls.get(c, 0) / calls.sum():.1f}"  # noqa: E731
    return {
        "interactions (% of pairs)": f"{100 * calls.sum() / classes.sum():.1f}",
        "buffering (% of calls)": share("buffering"),
        "synergy (% of calls)": share("synergy"),
        "opposite (% of calls)": "about 0",
        "other (% of calls)": share("other"),
        "locfdr thresholds (lower)": "about -0.2",
        "locfdr thresholds (upper)": "about 0.2",
        "no change AUPRC": f"{PUBLISHED_NO_CHANGE_AUPRC}",
        "linear AUPRC": "below no change",
        "additive / no change L2": f"{l2['additive'] / l2['no_change']:.2f}",
    }


def published_replogle() -> dict[str, str]:
    rows = []
    for dataset in ("adamson", "replogle_k562", "replogle_rpe1"):
        means = published.results(dataset).groupby("model")[["l2", "pearson_delta"]].mean()
        rows.append((means.at["mean", "pearson_delta"], means.at["linear", "l2"] / means.at["mean", "l2"]))
    pd_range, l2_range = zip(*rows)
    return {"mean baseline Pearson delta": f"{min(pd_range):.2f}-{max(pd_range):.2f}",
            "linear / mean L2": f"{min(l2_range):.2f}-{max(l2_range):.2f}"}


TARGETS = {
    "interactions (% of pairs)": "2-8",
    "buffering (% of calls)": "largest class",
    "opposite (% of calls)": "< 10",
    "no change AUPRC": "> linear's",
    "additive / no change L2": "0.35-0.65",
    "mean baseline Pearson delta": "0.41-0.72 (published range)",
    "linear / mean L2": "0.97-1.04 (published range)",
}


def table(measure, seeds, reference) -> pd.DataFrame:
    columns = {}
    for seed in seeds:
        t0 = time.perf_counter()
        columns[f"seed {seed}"] = measure(seed)
        print(f"  seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    frame = pd.DataFrame(columns)
    frame.insert(0, "published", pd.Series(reference))
    frame["target"] = pd.Series(TARGETS).reindex(frame.index).fillna("")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with pd.option_context("display.width", 160, "display.precision", 3, "display.max_columns", 20):
        print("Norman preset (simulated) vs the paper's Norman")
        print(table(norman, args.seeds, published_norman()).to_string())
        print("\nReplogle preset (simulated) vs the paper's Adamson, Replogle K562 and RPE1")
        print(table(replogle, args.seeds, published_replogle()).to_string())


if __name__ == "__main__":
    main()

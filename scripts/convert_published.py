"""Convert the paper's published source data into the compact tables that ship with linpert (run once).

    python scripts/convert_published.py [SOURCE_FOLDER]

SOURCE_FOLDER holds the source data of Ahlmann-Eltze, Huber & Anders, Nature Methods 2025 (CC BY 4.0), as in
``../shared/reference/paper-source-data/``. The tables are written to ``python/linpert/published/data/`` with
linpert's column, dataset and model names; ``linpert.published`` reads them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "python" / "linpert" / "published" / "data"
DATASETS = {
    "norman_from_scfoundation": "norman",
    "adamson": "adamson",
    "replogle_k562_essential": "replogle_k562",
    "replogle_rpe1_essential": "replogle_rpe1",
}
# the paper's method names that are linpert's models; the others keep the paper's name
MODELS = {"additive_model": "additive", "no_change": "no_change", "mean": "mean", "lpm_selftrained": "linear"}


def _model(name: str) -> str:
    return MODELS.get(name, name)


def results(source: Path) -> pd.DataFrame:
    """One row per dataset, seed, model and perturbation: Fig. 1a (doubles) and Fig. 2a (singles), Panel A."""
    doubles = pd.read_excel(source / "perturbation_prediction.xlsx", sheet_name="Panel A").assign(split="double")
    singles = pd.read_excel(source / "single_perturbation_prediction.xlsx", sheet_name="Panel A")
    table = pd.concat([doubles, singles.assign(split="simulation")], ignore_index=True)
    return pd.DataFrame({
        "dataset": table["dataset_name"].map(DATASETS),
        "split": table["split"],
        "seed": table["seed"].astype("int64"),
        "model": table["method"].map(_model),
        "perturbation": table["perturbation"].astype(str),
        "set": table["train"].astype(str),
        "l2": table["l2"].astype(float),
        "pearson_delta": table["r2_delta"].astype(float),
        "r2": table["r2"].astype(float),
    })


def tpr_fdp(source: Path) -> pd.DataFrame:
    """Fig. 1c: recall of the observed interactions against the false discovery proportion, per model."""
    table = pd.read_excel(source / "perturbation_prediction.xlsx", sheet_name="Panel C")
    return pd.DataFrame({"dataset": "norman", "model": table["method"].map(_model), "fdp": table["fdp"],
                         "tpr": table["tpr"]})


def interaction_classes(source: Path) -> pd.DataFrame:
    """Fig. 1e: the observed (double, gene) pairs per class at 5 % fdr."""
    table = pd.read_excel(source / "perturbation_prediction.xlsx", sheet_name="Panel E")
    return pd.DataFrame({"dataset": "norman", "class": table["label"].str.lower(), "pairs": table["n"].astype("int64"),
                         "fraction": table["frac"]})


def top_predictions(source: Path) -> pd.DataFrame:
    """Fig. 1f: each model's top predicted interactions and their observed class."""
    table = pd.read_excel(source / "perturbation_prediction.xlsx", sheet_name="Panel F")
    return pd.DataFrame({
        "dataset": "norman",
        "seed": table["seed"].astype("int64"),
        "model": table["method"].map(_model),
        "perturbation": table["perturbation"].astype(str),
        "gene": table["gene_name"].astype(str),
        "ctrl": table["baseline"],
        "observed": table["ground_truth"],
        "additive": table["ref"],
        "predicted": table["value"],
        "observed_deviation": table["obs_minus_add"],
        "predicted_deviation": table["pred_minus_add"],
        "class": table["interaction_label"].str.lower(),
    })


def resources(source: Path) -> pd.DataFrame:
    """Extended Data Fig. 10: elapsed, user and system seconds and peak memory of each fit, and the GPU it had."""
    table = pd.read_excel(source / "suppl-resource_usage.xlsx")
    parts = table["name"].str.rsplit("-", n=2, expand=True)
    return pd.DataFrame({
        "dataset": parts[0].map(lambda name: DATASETS.get(name, name)),
        "seed": parts[1].astype("int64"),
        "model": parts[2].map(_model),
        "metric": table["metric"],
        "value": table["value"].astype(float),
        "gpu": table["gpu_available"].fillna("").astype(str).str.removeprefix("gpu="),
    })


def main(source: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tables = {"results": results, "tpr_fdp": tpr_fdp, "interaction_classes": interaction_classes,
              "top_predictions": top_predictions, "resources": resources}
    for name, build in tables.items():
        table = build(source)
        table.to_parquet(OUT / f"{name}.parquet", index=False, compression="zstd")
        print(f"{name}: {len(table):,} rows -> {OUT / name}.parquet")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "reference" / "paper-source-data")

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
# the paper's method names that are linpert's models; the others keep the paper's name. The linear model's variants
# of Fig. 2c are named by their embeddings (linpert.published.MODEL_SPECS gives each one's model spec).
MODELS = {"additive_model": "additive", "no_change": "no_change", "mean": "mean", "lpm_selftrained": "linear",
          "lpm_gearsPertEmb": "linear_go_pert", "lpm_k562PertEmb": "linear_k562_pert",
          "lpm_rpe1PertEmb": "linear_rpe1_pert", "lpm_randomGeneEmb": "linear_random_gene",
          "lpm_randomPertEmb": "linear_random_pert", "lpm_scFoundationGeneEmb": "linear_scfoundation_gene",
          "lpm_scgptGeneEmb": "linear_scgpt_gene"}


def _model(name: str) -> str:
    return MODELS.get(name, name)


def results(source: Path) -> pd.DataFrame:
    """One row per dataset, seed, model and perturbation: Fig. 1a (doubles, Panel A), Fig. 2a (singles, Panel A) and
    Fig. 2c (every linear-model variant and deep model on the perturbations all of them predict, training rows too).

    ``figure`` says where a row was published; Fig. 2a and 2c give the same numbers where they overlap.
    """
    keys = ["dataset_name", "seed", "method", "perturbation"]
    doubles = pd.read_excel(source / "perturbation_prediction.xlsx", sheet_name="Panel A").assign(figure="1a")
    single = source / "single_perturbation_prediction.xlsx"
    fig2a = pd.read_excel(single, sheet_name="Panel A").assign(figure="2a")
    fig2c = pd.read_excel(single, sheet_name="Panel C").assign(figure="2c")
    both = fig2a.merge(fig2c[keys], on=keys).assign(figure="2a,2c")
    singles = pd.concat([both, fig2a, fig2c], ignore_index=True).drop_duplicates(keys)  # first: the shared rows
    table = pd.concat([doubles.assign(split="double"), singles.assign(split="simulation")], ignore_index=True)
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
        "figure": table["figure"],
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


def _published_names(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's column, dataset and method names as linpert's; every other column as published, in snake case."""
    renames = {"dataset_name": "dataset", "method": "model", "gene_name": "gene", "pert": "perturbation"}
    table = table.rename(columns=lambda c: renames.get(c, c.replace(".", "_")))
    if "dataset" in table:
        table["dataset"] = table["dataset"].map(lambda name: DATASETS.get(name, name))
    if "model" in table:
        table["model"] = table["model"].map(_model)
    return table


def _sheet(file: str, sheet: str | int = 0):
    return lambda source: _published_names(pd.read_excel(source / file, sheet_name=sheet))


def l2_by_n(source: Path) -> pd.DataFrame:
    """Extended Data Figs 2b and 8b: L2 over the first n genes (ordered by control expression, or by |obs − ctrl|
    for the doubles), over all genes; mean and standard error across perturbations."""
    doubles = pd.read_excel(source / "suppl-pearson_delta_performance.xlsx", sheet_name="Panel B")
    singles = pd.read_excel(source / "suppl-pearson_delta_performance_single_pert.xlsx", sheet_name="Panel B")
    table = pd.concat([doubles, singles.assign(sorted_by="expr")], ignore_index=True)
    table = _published_names(table).rename(columns={"rank": "n", "dist_mean": "l2_mean", "dist_se": "l2_se"})
    return table[["dataset", "model", "sorted_by", "n", "l2_mean", "l2_se"]]


#: Every sheet of the source data, by the name linpert.published.table() gives it. The Panel A sheets of the two
#: suppl-pearson_delta files repeat Figs 1a and 2a (checked by the tests) and are in ``results``.
TABLES = {
    "results": results,
    "tpr_fdp": tpr_fdp,
    "interaction_classes": interaction_classes,
    "top_predictions": top_predictions,
    "resources": resources,
    "l2_by_n": l2_by_n,
    "fig1b_predictions": _sheet("perturbation_prediction.xlsx", "Panel B"),
    "dataset_overview": _sheet("suppl-dataset_overview.xlsx", "Panel B"),
    "dataset_genes": _sheet("suppl-dataset_overview.xlsx", "Panel C"),
    "transfer_baselines": _sheet("suppl-k562_rpe1_transfer.xlsx", "Panel A"),
    "transfer_pearson_delta": _sheet("suppl-k562_rpe1_transfer.xlsx", "Panel C"),
    "top_gene_plots": _sheet("suppl-top_gene_plots.xlsx"),
    "gene_recurrence": _sheet("suppl-non_additive_gene_reoccurence.xlsx", "Panel A"),
    "perturbation_recurrence": _sheet("suppl-non_additive_gene_reoccurence.xlsx", "Panel B"),
}


def main(source: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tables = TABLES
    for name, build in tables.items():
        table = build(source)
        table.to_parquet(OUT / f"{name}.parquet", index=False, compression="zstd")
        print(f"{name}: {len(table):,} rows -> {OUT / name}.parquet")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "reference" / "paper-source-data")

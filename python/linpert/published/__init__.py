"""The paper's published results, shipped with linpert so that every run can be read beside them.

Ahlmann-Eltze, Huber & Anders, "Deep-learning-based gene perturbation effect prediction does not yet outperform
simple linear baselines", *Nature Methods* (2025), source data, licensed CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/). ``scripts/convert_published.py`` converted the source data once into
the tables in ``data/``, with linpert's names: datasets ``norman``, ``adamson``, ``replogle_k562``,
``replogle_rpe1``; models ``no_change``, ``additive``, ``mean``, ``linear`` (the paper's ``additive_model`` and
``lpm_selftrained``), the linear model's embedding variants of Fig. 2c by their embeddings (:data:`MODEL_SPECS`),
the others under the paper's names (``scgpt``, ``scfoundation``, ``gears``, ``cpa``, ``uce33``, ...).
Every sheet of the source data is a table here (:data:`TABLES`, :func:`table`).

Examples
--------
>>> from linpert import published
>>> table = published.results("norman")
>>> float(round(table.groupby("model")["l2"].mean()["additive"], 2))
2.77
>>> sorted(published.DATASETS)
['adamson', 'norman', 'replogle_k562', 'replogle_rpe1']
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

__all__ = ["CITATION", "DATASETS", "MODEL_SPECS", "TABLES", "fidelity", "interactions", "l2_by_n", "resources",
           "results", "summary", "table"]

_DATA = Path(__file__).parent / "data"
#: The paper's datasets, by linpert's name, and the split each was benchmarked on.
DATASETS = {"norman": "double", "adamson": "simulation", "replogle_k562": "simulation",
            "replogle_rpe1": "simulation"}
CITATION = ("Ahlmann-Eltze C, Huber W, Anders S. Deep-learning-based gene perturbation effect prediction does not yet "
            "outperform simple linear baselines. Nature Methods (2025). Source data CC BY 4.0.")
_INTERACTION_TABLES = ("tpr_fdp", "interaction_classes", "top_predictions")
#: Every published table, by name: what it holds and where the paper shows it.
TABLES = {
    "results": "per-perturbation L2, Pearson delta and r² of every model and seed (Figs 1a, 2a, 2c)",
    "tpr_fdp": "recall of the observed interactions against the false discovery proportion (Fig. 1c)",
    "interaction_classes": "observed (double, gene) pairs per interaction class (Fig. 1e)",
    "top_predictions": "each model's top predicted interactions and their classes (Fig. 1f)",
    "resources": "time and peak memory of each fit (Extended Data Fig. 10)",
    "l2_by_n": "L2 over the first n of all genes, mean and SE over perturbations (Extended Data Figs 2b, 8b)",
    "fig1b_predictions": "predicted and observed expression of one double per model, gene by gene (Fig. 1b)",
    "dataset_overview": "UMAP of the perturbations' mean profiles, cells and genes per perturbation (ED Fig. 1)",
    "dataset_genes": "predicted and control expression of the genes of each dataset (Extended Data Fig. 1)",
    "transfer_baselines": "control expression of each gene in K562 and RPE1 (Extended Data Fig. 9a)",
    "transfer_pearson_delta": "Pearson delta of the transfer model against the cell lines' baselines (ED Fig. 9c)",
    "top_gene_plots": "predicted against observed expression of chosen genes across doubles (Extended Data Fig. 6)",
    "gene_recurrence": "genes among each model's top predicted interactions (Extended Data Fig. 5a)",
    "perturbation_recurrence": "perturbations among each model's top predicted interactions (ED Fig. 5b)",
}
#: The linear-model variants of Fig. 2c and the linpert model spec that runs each (a run that labels a model so is
#: compared with it by :func:`fidelity`: ``--models "linear_go_pert=linear(perturbation_embedding=go)"``).
MODEL_SPECS = {
    "linear": "linear",
    "linear_go_pert": "linear(perturbation_embedding=go)",
    "linear_k562_pert": "linear(perturbation_embedding=transfer:<replogle_k562 pseudobulk>)",
    "linear_rpe1_pert": "linear(perturbation_embedding=transfer:<replogle_rpe1 pseudobulk>)",
    "linear_random_gene": "linear(gene_embedding=random)",
    "linear_random_pert": "linear(perturbation_embedding=random)",
    "linear_scfoundation_gene": "linear(gene_embedding=scfoundation:<models.ckpt>)",
    "linear_scgpt_gene": "linear(gene_embedding=scgpt:<scGPT_human>)",
}


@cache
def _table(name: str) -> pd.DataFrame:
    return pd.read_parquet(_DATA / f"{name}.parquet")


def _check_dataset(dataset: str | None) -> None:
    if dataset is not None and dataset not in DATASETS:
        raise ValueError(f"The paper published no results for {dataset!r}; its datasets are: {', '.join(DATASETS)}.")


def results(dataset: str | None = None) -> pd.DataFrame:
    """Per-perturbation L2, Pearson delta and r² of every published model and seed (Figs 1a, 2a and 2c).

    Columns: ``dataset``, ``split``, ``seed``, ``model``, ``perturbation``, ``set`` (train, test or val; Fig. 2c
    also published the training perturbations), ``l2``, ``pearson_delta``, ``r2``, as in
    :func:`linpert.benchmark.run`'s results, and ``figure`` (``1a``, ``2a``, ``2c`` or ``2a,2c``: where the row was
    published; the two figures give the same numbers where they overlap).
    """
    _check_dataset(dataset)
    table = _table("results")
    return (table if dataset is None else table[table["dataset"] == dataset]).reset_index(drop=True).copy()


def summary(dataset: str, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published results of one dataset summarised like a run's ``summary.csv`` (``n``, mean and median L2,
    Pearson delta), one row per model, over the scored perturbations (test ∪ val), with ``source = "published"``.

    ``rows``: a run's results (or any table with ``seed`` and ``perturbation``): only the published rows of those
    seeds and perturbations are summarised, so that the run's summary and the published one average over the same
    perturbations. ``n`` says how many rows each model has.
    """
    from ..metrics._registry import summarise

    table = results(dataset)
    table = table[table["set"] != "train"]
    if rows is not None:
        table = table.merge(rows[["seed", "perturbation"]].drop_duplicates(), on=["seed", "perturbation"])
    return summarise(table.drop(columns="figure")).assign(source="published")


def table(name: str) -> pd.DataFrame:
    """One published table by name (:data:`TABLES`), with linpert's dataset and model names."""
    if name not in TABLES:
        raise ValueError(f"Unknown published table {name!r}; choose one of: {', '.join(TABLES)}.")
    return _table(name).copy()


def l2_by_n(dataset: str | None = None) -> pd.DataFrame:
    """The published L2 over the first ``n`` of all genes (``dataset, model, sorted_by, n, l2_mean, l2_se``):
    genes ordered by control expression (``sorted_by = "expr"``) or, for the doubles, by ``|obs − ctrl|``
    (``"de"``); the mean and standard error over perturbations (Extended Data Figs 2b and 8b)."""
    _check_dataset(dataset)
    curves = table("l2_by_n")
    return curves if dataset is None else curves[curves["dataset"] == dataset].reset_index(drop=True)


def interactions(table: str | None = None) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """The published interaction analysis of Norman: ``tpr_fdp`` (Fig. 1c), ``interaction_classes`` (Fig. 1e) and
    ``top_predictions`` (Fig. 1f). One table by name, or all three as a dict."""
    if table is None:
        return {name: _table(name).copy() for name in _INTERACTION_TABLES}
    if table not in _INTERACTION_TABLES:
        raise ValueError(f"Unknown table {table!r}; choose one of: {', '.join(_INTERACTION_TABLES)}.")
    return _table(table).copy()


def resources() -> pd.DataFrame:
    """Elapsed, user and system seconds and peak memory (``max_mem_kbytes``) of each published fit, and its GPU."""
    return _table("resources").copy()


def fidelity(run_results: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """How closely a run reproduces the published models it shares with the paper, per model.

    Rows of ``run_results`` are matched to the published ones by seed, model and perturbation; ``max_abs_l2_diff``
    is the largest difference of their L2 (the check to make after downloading the paper's data: the baselines on
    the same data and split reproduce it). Models or perturbations the paper did not publish are left out.
    """
    _check_dataset(dataset)
    keys = ["seed", "model", "perturbation"]
    matched = run_results.merge(results(dataset)[keys + ["l2"]], on=keys, suffixes=("", "_published"))
    difference = (matched["l2"] - matched["l2_published"]).abs()
    return (matched.assign(difference=difference).groupby("model", sort=False)
            .agg(n=("difference", "size"), max_abs_l2_diff=("difference", "max")).reset_index())

"""The paper's published results, shipped with linpert so that every run can be read beside them.

Ahlmann-Eltze, Huber & Anders, "Deep-learning-based gene perturbation effect prediction does not yet outperform
simple linear baselines", *Nature Methods* (2025), source data, licensed CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/). ``scripts/convert_published.py`` converted the source data once into
the tables in ``data/``, with linpert's names: datasets ``norman``, ``adamson``, ``replogle_k562``,
``replogle_rpe1``; models ``no_change``, ``additive``, ``mean``, ``linear`` (the paper's ``additive_model`` and
``lpm_selftrained``), the others under the paper's names (``scgpt``, ``scfoundation``, ``gears``, ``cpa``, ...).

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

__all__ = ["CITATION", "DATASETS", "fidelity", "interactions", "resources", "results", "summary"]

_DATA = Path(__file__).parent / "data"
#: The paper's datasets, by linpert's name, and the split each was benchmarked on.
DATASETS = {"norman": "double", "adamson": "simulation", "replogle_k562": "simulation",
            "replogle_rpe1": "simulation"}
CITATION = ("Ahlmann-Eltze C, Huber W, Anders S. Deep-learning-based gene perturbation effect prediction does not yet "
            "outperform simple linear baselines. Nature Methods (2025). Source data CC BY 4.0.")
_INTERACTION_TABLES = ("tpr_fdp", "interaction_classes", "top_predictions")


@cache
def _table(name: str) -> pd.DataFrame:
    return pd.read_parquet(_DATA / f"{name}.parquet")


def _check_dataset(dataset: str | None) -> None:
    if dataset is not None and dataset not in DATASETS:
        raise ValueError(f"The paper published no results for {dataset!r}; its datasets are: {', '.join(DATASETS)}.")


def results(dataset: str | None = None) -> pd.DataFrame:
    """Per-perturbation L2, Pearson delta and r² of every published model and seed (Figs 1a and 2a, Panel A).

    Columns: ``dataset``, ``split``, ``seed``, ``model``, ``perturbation``, ``set`` (test or val), ``l2``,
    ``pearson_delta``, ``r2``, as in :func:`linpert.benchmark.run`'s results.
    """
    _check_dataset(dataset)
    table = _table("results")
    return (table if dataset is None else table[table["dataset"] == dataset]).reset_index(drop=True).copy()


def summary(dataset: str) -> pd.DataFrame:
    """The published results of one dataset summarised like a run's ``summary.csv`` (mean and median L2, Pearson
    delta), one row per model, with ``source = "published"``."""
    from ..metrics._registry import summarise

    return summarise(results(dataset)).assign(source="published")


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
    matched = run_results.merge(results(dataset), on=keys, suffixes=("", "_published"))
    difference = (matched["l2"] - matched["l2_published"]).abs()
    return (matched.assign(difference=difference).groupby("model", sort=False)
            .agg(n=("difference", "size"), max_abs_l2_diff=("difference", "max")).reset_index())

"""The metrics the runner computes, by name: the paper's, the field's, and any a user registers.

A metric is a function of one :class:`Scoring` (one model and split seed: every scored perturbation's prediction and
observation on the read-out genes, the control profile and the mean of the training perturbations) that returns one
value per scored perturbation. :func:`linpert.benchmark.run` adds a column per metric to ``results``, computed from the
stored predictions, so adding a metric never refits a model.

Examples
--------
>>> from linpert.metrics import register_metric
>>> register_metric("max_abs_error", lambda s: np.nanmax(np.abs(s.predicted - s.observed), axis=1),
...                 higher_is_better=False, description="largest error over the read-out genes")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._errors import raised_in
from ._de import DifferentialExpression


@dataclass(frozen=True)
class Scoring:
    """What a metric sees for one model and split seed: perturbations × read-out genes, and the references."""

    predicted: pd.DataFrame
    observed: pd.DataFrame
    control: np.ndarray  # the ctrl profile on the read-out genes
    reference: np.ndarray  # the mean of the training perturbations on the read-out genes (Systema's reference)
    de: DifferentialExpression | None = None  # the observed cells' DE genes, where cells were given
    predicted_de: DifferentialExpression | None = None  # the predicted cells' DE genes, where the prediction is cells


@dataclass(frozen=True)
class Metric:
    name: str
    function: Callable[[Scoring], np.ndarray | pd.Series]
    higher_is_better: bool
    description: str = ""
    needs_cells: bool = False  # it reads Scoring.de: computed only where cells are given


#: Metric name -> :class:`Metric`, in the order of the result columns. The paper's three come from
#: :func:`linpert.metrics.score` and are always computed.
METRICS: dict[str, Metric] = {}
#: The paper's metrics, from :func:`linpert.metrics.score`, and whether higher is better.
PAPER_METRICS = {"l2": False, "pearson_delta": True, "r2": True}


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the paper's or a registered metric is the better one."""
    return PAPER_METRICS[name] if name in PAPER_METRICS else METRICS[name].higher_is_better


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The metrics, the paper's and the registered ones, that are columns of ``table``, in the registry's order."""
    return [name for name in (*PAPER_METRICS, *METRICS) if name in table.columns]


def register_metric(name: str, function: Callable[[Scoring], np.ndarray | pd.Series], *, higher_is_better: bool,
                    description: str = "", needs_cells: bool = False, replace: bool = False) -> Metric:
    """Add a per-perturbation metric that the runner, the scorecard, the report and the CLI pick up by ``name``.

    ``needs_cells``: the metric reads the observed cells' differential expression (``Scoring.de``), so it is
    computed only where cells are given (``run(cells=...)``, ``linpert score``). ``replace``: replace a metric you
    registered before under ``name`` (linpert's own are never replaced: their numbers are documented)."""
    if not isinstance(name, str) or not name.isidentifier() or name in PAPER_METRICS or name in (
            "dataset", "split", "seed", "model", "perturbation", "kind", "set", "reason", "common"):
        raise ValueError(f"A metric needs a new identifier for a name (it becomes a column), got {name!r}.")
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is one of linpert's own metrics; give yours another name.")
    if name in METRICS and not replace:
        raise ValueError(f"A metric {name!r} is registered already; pass replace=True to replace it.")
    if not callable(function):
        raise TypeError(f"A metric is a function of a linpert.metrics.Scoring, got {type(function).__name__}.")
    METRICS[name] = Metric(name, function, bool(higher_is_better), description, bool(needs_cells))
    return METRICS[name]


def _builtin() -> None:
    from ._de import de_overlap
    from ._field import centroid_accuracy, discrimination_score, mae, mse, pearson_delta_perturbed

    for metric in ("l1", "l2", "cosine"):
        register_metric(
            f"discrimination_{metric}",
            lambda s, m=metric: discrimination_score(s.predicted, s.observed, control=s.control, metric=m),
            higher_is_better=True,
            description=f"cell-eval's discrimination score ({metric}): 1 when the prediction is nearest its own "
            "observed effect",
        )
    register_metric("pearson_delta_perturbed",
                    lambda s: pearson_delta_perturbed(s.predicted, s.observed, reference=s.reference),
                    higher_is_better=True, description="Systema: Pearson delta against the training perturbations' mean")
    register_metric("centroid_accuracy", lambda s: centroid_accuracy(s.predicted, s.observed, reference=s.reference),
                    higher_is_better=True, description="Systema: nearest observed perturbation is its own")
    register_metric("mae", lambda s: mae(s.predicted, s.observed), higher_is_better=False,
                    description="mean absolute error over the read-out genes")
    register_metric("mse", lambda s: mse(s.predicted, s.observed), higher_is_better=False,
                    description="mean squared error over the read-out genes")
    register_metric("de_overlap",
                    lambda s: de_overlap(s.predicted if s.predicted_de is None else s.predicted_de,
                                         s.de.rows(s.observed.index), control=s.control),
                    higher_is_better=True, needs_cells=True,
                    description="cell-eval's overlap_at_N: share of the observed DE genes (Wilcoxon, BH 5 %) among "
                    "the prediction's top genes")


_BUILTIN: frozenset[str] = frozenset()
_builtin()
_BUILTIN = frozenset(METRICS)


def resolve_metrics(names, *, cells: bool = False) -> list[str]:
    """The registered metrics to compute: all by default (those that need cells only where ``cells``), or the
    names given (the paper's three always run)."""
    if names is None:
        return [n for n, metric in METRICS.items() if cells or not metric.needs_cells]
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in METRICS and n not in PAPER_METRICS]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}; known: {', '.join([*PAPER_METRICS, *METRICS])}. Register "
                         "one with linpert.metrics.register_metric.")
    cellular = [n for n in names if n in METRICS and METRICS[n].needs_cells]
    if cellular and not cells:
        raise ValueError(f"{', '.join(cellular)} needs cells (differential expression is tested cell by cell), and "
                         "only a pseudobulk was given: pass the cells (run(cells=...); on the command line, run on the "
                         "cell-level .h5ad) or leave it out of the metrics.")
    return [n for n in names if n in METRICS]


def needs_cells(names: list[str]) -> bool:
    """Whether any of the named metrics reads the observed cells' DE genes (``Scoring.de``)."""
    return any(METRICS[name].needs_cells for name in names if name in METRICS)


def score_all(scoring: Scoring, names: list[str]) -> pd.DataFrame:
    """The paper's metrics and the named registered ones of one scoring, one row per perturbation."""
    from ._paper import score

    paper = score(scoring.predicted.to_numpy(), scoring.observed.to_numpy(), scoring.control)
    return pd.concat([paper.set_index(scoring.observed.index), compute(scoring, names)], axis=1)


def compute(scoring: Scoring, names: list[str]) -> pd.DataFrame:
    """The named metrics of one scoring, one row per perturbation (in ``scoring.observed``'s order)."""
    columns = {}
    rows = len(scoring.observed)
    for name in names:
        try:
            values = METRICS[name].function(scoring)
        except Exception as err:
            raised_in(err, f"in metric {name!r}", user_code=name not in _BUILTIN)
            raise
        values = values.reindex(scoring.observed.index) if isinstance(values, pd.Series) else np.asarray(values)
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"Metric {name!r} returned values that are not numbers ({err}).") from None
        if values.shape != (rows,):
            raise ValueError(f"Metric {name!r} returned {values.size} values in shape {values.shape} for {rows} "
                             "perturbations: a metric returns one value per row of scoring.observed.")
        columns[name] = values
    return pd.DataFrame(columns, index=scoring.observed.index)


def beyond_the_paper(table: pd.DataFrame) -> bool:
    """Whether a results or scorecard table holds any metric beyond the paper's three."""
    return any(name in table.columns for name in METRICS)


def scorecard(results: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset, split and model; one column per metric (its mean over perturbations and seeds) and
    ``best_in``: the metrics where the model is best (lowest L2, MAE or MSE; highest for the others)."""
    keys = ["dataset", "split", "model"]
    metrics = metric_columns(results)
    table = results.groupby(keys, sort=False)[metrics].mean().reset_index()
    higher = {m: higher_is_better(m) for m in metrics}
    best = {m: set() for m in metrics}
    for _, group in table.groupby(["dataset", "split"], sort=False):
        for m in metrics:
            column = group[m]
            if column.notna().any():
                best[m].add(column.idxmax() if higher[m] else column.idxmin())
    table["best_in"] = [", ".join(m for m in metrics if i in best[m]) for i in table.index]
    return table


def summarise(results: pd.DataFrame, timings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean and median L2 and mean Pearson delta per dataset, split and model (and mean fit time when given)."""
    keys = ["dataset", "split", "model"]
    summary = (
        results.groupby(keys, sort=False)
        .agg(
            n=("l2", "size"),
            unscored=("l2", lambda l2: int(l2.isna().sum())),  # rows without a prediction: see results' reason
            l2_mean=("l2", "mean"),
            l2_median=("l2", "median"),
            pearson_delta_mean=("pearson_delta", "mean"),
        )
        .reset_index()
    )
    if timings is not None and len(timings):
        t = timings.groupby(keys, sort=False)[["fit_seconds", "predict_seconds", "peak_mib"]].mean().reset_index()
        summary = summary.merge(t, on=keys, how="left")
    return summary

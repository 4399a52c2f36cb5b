"""Score predictions given as cells, in cell-eval's format, on the paper's and the field's metrics.

A Virtual-Cell-Challenge-style submission is a ``pred.h5ad`` of predicted cells beside a ``real.h5ad`` of observed
ones, each with a column naming every cell's perturbation (its target gene, or the control label). Both are
pseudobulked by that column (:func:`linpert.pseudobulk`) and scored perturbation by perturbation, beside two
references computed from the observed cells: ``no_change`` (the control profile) and ``observed_mean`` (the mean of
the observed perturbations: the prediction that knows the average effect and nothing specific, which L2 and Pearson
delta against control flatter and the discrimination scores expose).

``de_overlap`` (cell-eval's overlap_at_N) takes the DE genes of the observed cells against their control cells; the
predicted cells are tested the same way when they include control cells, as cell-eval requires, and otherwise their
mean profile ranks the genes.

Examples
--------
>>> from linpert.submission import score_submission
>>> table = score_submission("pred.h5ad", "real.h5ad", perturbation_key="target_gene",
...                          control="non-targeting")  # doctest: +SKIP
>>> linpert.metrics.scorecard(table)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from ._conditions import CONTROL

__all__ = ["calibrated", "score_submission"]

#: The references scored beside a submission, from the observed cells alone.
REFERENCES = ("no_change", "observed_mean")
#: The model name of the replicate ceiling's rows.
CEILING = "replicate_ceiling"


def score_submission(
    predicted: Any,
    observed: Any,
    *,
    perturbation_key: str = "target_gene",
    control: str = "non-targeting",
    metrics: list[str] | None = None,
    label: str = "submission",
    calibrate: bool = True,
) -> pd.DataFrame:
    """Per-perturbation scores of predicted cells against observed cells, with the two references beside them.

    Parameters
    ----------
    predicted, observed
        Cells × genes: AnnData objects or ``.h5ad`` paths, with the same genes and ``obs[perturbation_key]``.
    perturbation_key
        The ``obs`` column naming each cell's perturbation (a target gene symbol) or ``control``.
    control
        The label of control cells (cell-eval's ``non-targeting`` by default).
    metrics
        Names from :data:`linpert.metrics.METRICS` beside the paper's (default: all).
    label
        The model name the submission's rows get.
    calibrate
        Also score the replicate ceiling (``model = "replicate_ceiling"``: one half of each perturbation's observed
        cells predicting the other, :func:`linpert.metrics.replicate_ceiling`), for :func:`calibrated`.

    Returns
    -------
    DataFrame
        Like :func:`linpert.benchmark.run`'s results: ``dataset``, ``split``, ``model``, ``perturbation`` and a
        column per metric, for the submission and the references; over all genes, effects against the control.
    """
    from ._pseudobulk import pseudobulk
    from .metrics import differential_expression, replicate_ceiling
    from .metrics._de import by_gene
    from .metrics._registry import Scoring, needs_cells, resolve_metrics, score_all

    names = resolve_metrics(metrics, cells=True)
    observed_cells = _relabelled(observed, perturbation_key, control, "observed")
    predicted_cells = _relabelled(predicted, perturbation_key, control, "predicted", needs_control=False)
    real = pseudobulk(observed_cells, condition_key="condition", gene_key=None)
    pred = pseudobulk(predicted_cells, condition_key="condition", gene_key=None)
    perturbations = [c for c in real.obs_names if c != CONTROL]
    _check_coverage(pred, real, perturbations)
    genes = list(real.var_names)
    observed_table = pd.DataFrame(_dense(real[perturbations].X), index=perturbations, columns=genes)
    ctrl = _dense(real[CONTROL].X).ravel()
    reference = observed_table.mean().to_numpy()
    candidates = {
        label: pd.DataFrame(_dense(pred[perturbations].X), index=perturbations, columns=genes),
        "no_change": pd.DataFrame(np.tile(ctrl, (len(perturbations), 1)), index=perturbations, columns=genes),
        "observed_mean": pd.DataFrame(np.tile(reference, (len(perturbations), 1)), index=perturbations, columns=genes),
    }
    de = predicted_de = sorted_values = None
    if needs_cells(names):
        sorted_values = by_gene(observed_cells.X)  # sorted once, for this test and the ceiling's
        de = differential_expression(observed_cells, sorted_values=sorted_values).rows(perturbations)
        if CONTROL in set(predicted_cells.obs["condition"]):  # tested like the observed cells, as cell-eval does
            predicted_de = differential_expression(predicted_cells).rows(perturbations)
    parts = []
    for model, table in candidates.items():
        cells_de = predicted_de if model == label else None  # the references are profiles
        scores = score_all(Scoring(table, observed_table, ctrl, reference, de=de, predicted_de=cells_de), names)
        parts.append(scores.rename_axis("perturbation").reset_index().assign(model=model))
    if calibrate:
        ceiling = replicate_ceiling(observed_cells, metrics=names, sorted_values=sorted_values).drop(columns="reason")
        parts.append(ceiling.reset_index().assign(model=CEILING))
    results = pd.concat(parts, ignore_index=True).assign(dataset="submission", split="all")
    first = ["dataset", "split", "model", "perturbation"]
    return results[first + [c for c in results.columns if c not in first]]


def calibrated(table: pd.DataFrame, *, reference: str = "observed_mean") -> pd.DataFrame:
    """The scaled scores of :func:`score_submission`'s table: 0 at ``reference``, 1 at the replicate ceiling.

    One row per model and metric: the mean scaled score, its 95 % bootstrap interval and whether it lies above 0
    (:func:`linpert.metrics.scaled_scores`).
    """
    from .metrics import scaled_scores

    if CEILING not in set(table["model"]):
        raise ValueError("The table has no replicate ceiling: score with calibrate=True (it needs observed cells).")
    ceiling = table[table["model"] == CEILING].set_index("perturbation")
    return scaled_scores(table[table["model"] != CEILING], ceiling, reference=reference)


def _check_coverage(pred, real, perturbations: list[str]) -> None:
    """Refuse predictions that miss an observed perturbation, add one, or are on other genes: say which."""
    missing = sorted(set(perturbations) - set(pred.obs_names))
    extra = sorted(set(pred.obs_names) - set(real.obs_names) - {CONTROL})
    problems = [f"{len(missing)} perturbations have no predicted cells (e.g. {', '.join(missing[:3])})"] * bool(missing)
    problems += [f"{len(extra)} predicted perturbations were not observed (e.g. {', '.join(extra[:3])})"] * bool(extra)
    problems += ["the genes differ"] * (list(pred.var_names) != list(real.var_names))
    if problems:
        raise ValueError(f"The predicted cells do not cover the observed ones: {'; '.join(problems)}. Predict every "
                         "observed perturbation on the observed genes.")


def _relabelled(cells: Any, key: str, control: str, what: str, *, needs_control: bool = True):
    """The cells with ``obs['condition']`` in linpert's names (``control`` -> ``ctrl``, ``G`` -> ``G+ctrl``)."""
    import anndata

    if isinstance(cells, (str, os.PathLike)):
        from .datasets._readers import _open

        cells = _open(cells, backed=False)
    if not isinstance(cells, anndata.AnnData):
        raise TypeError(f"The {what} cells must be an AnnData or an .h5ad path, got {type(cells).__name__}.")
    if key not in cells.obs:
        raise KeyError(f"The {what} cells have no obs column {key!r}; their columns are: "
                       f"{', '.join(map(repr, cells.obs.columns)) or 'none'}. Pass perturbation_key=...")
    labels = cells.obs[key].astype(str)
    if needs_control and control not in set(labels):
        raise ValueError(f"The {what} cells have no control cells labelled {control!r} in obs[{key!r}]; pass "
                         "control=... with the label they use.")
    cells = cells.copy()
    cells.obs["condition"] = np.where(labels == control, CONTROL, labels + f"+{CONTROL}")
    return cells


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)

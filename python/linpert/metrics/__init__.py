"""How a prediction is scored: the paper's metrics, the field's newer ones, and a registry the runner reads.

* The paper's (spec §5): :func:`score` (L2, Pearson delta, r over the read-out genes), :func:`l2_by_n`,
  :func:`prediction_spread`, :func:`bootstrap_ratio` and :func:`forest_table`.
* The field's, which resist a model that predicts the average perturbation (Systema, Viñas Torné et al. 2025;
  cell-eval, Arc Institute): :func:`discrimination_score`, :func:`centroid_accuracy`,
  :func:`pearson_delta_perturbed`, :func:`mae`, :func:`mse`; and from cells, :func:`differential_expression`
  (Wilcoxon, Benjamini-Hochberg) and :func:`de_overlap` (cell-eval's ``overlap_at_N``).
* Calibrated scores: :func:`replicate_ceiling` (one half of a condition's cells predicting the other) and
  :func:`scaled_scores` (0 the reference baseline, 1 the ceiling, with a bootstrap interval).
* :data:`METRICS` and :func:`register_metric`: every per-perturbation metric the runner computes, by name; add
  one with a function and a name and it appears in ``results``, the scorecard, the report and the CLI.
"""

from __future__ import annotations

from ._calibration import replicate_ceiling, scaled_scores
from ._de import DifferentialExpression, de_overlap, differential_expression
from ._field import centroid_accuracy, discrimination_score, mae, mse, pearson_delta_perturbed
from ._paper import (
    bootstrap_ratio,
    forest_table,
    l2,
    l2_by_n,
    l2_grid,
    pearson_delta,
    prediction_spread,
    r2,
    score,
    top_expressed_genes,
)
from ._registry import METRICS, Metric, Scoring, register_metric, scorecard

__all__ = [
    "DifferentialExpression",
    "METRICS",
    "Metric",
    "Scoring",
    "bootstrap_ratio",
    "centroid_accuracy",
    "de_overlap",
    "differential_expression",
    "discrimination_score",
    "forest_table",
    "l2",
    "l2_by_n",
    "l2_grid",
    "mae",
    "mse",
    "pearson_delta",
    "pearson_delta_perturbed",
    "prediction_spread",
    "r2",
    "register_metric",
    "replicate_ceiling",
    "scaled_scores",
    "score",
    "scorecard",
    "top_expressed_genes",
]

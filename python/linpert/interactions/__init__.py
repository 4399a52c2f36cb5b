"""Genetic interactions of double perturbations: calling them, classifying them, and scoring models that predict them.

* :func:`locfdr`, :func:`thresholds`: Efron's local false discovery rate (R's ``locfdr`` 1.1-8, ported).
* :func:`additive_deviation`, :func:`call_interactions`: the observed interactions (spec §4.1–4.4);
  :func:`classify_deviations`: the same calls from a locfdr fit made elsewhere (R's, through the R package).
* :func:`classify_prediction`, :func:`tpr_fdp_curve`, :func:`auprc`, :func:`roc_auc`, :func:`evaluate_interactions`:
  how well a model's predictions find them (spec §4.5–4.8, paper Fig. 1c–f and Extended Data Figs 3–5).
"""

from __future__ import annotations

from ._calling import (
    LOCFDR_FALLBACKS,
    OBSERVED_CLASSES,
    PREDICTED_CLASSES,
    InteractionCalls,
    additive_deviation,
    call_interactions,
    classify_deviations,
    classify_observed,
    classify_prediction,
)
from ._evaluation import (
    FDP_GRID,
    ZERO_DEVIATION,
    InteractionEvaluation,
    auprc,
    average_curves,
    evaluate_interactions,
    interaction_pairs,
    mean_se,
    predicted_deviation,
    predicts_no_interactions,
    recurrence,
    roc_auc,
    top_predictions,
    tpr_fdp_curve,
)
from ._locfdr import LocfdrError, LocfdrResult, locfdr, thresholds

__all__ = [
    "FDP_GRID",
    "LOCFDR_FALLBACKS",
    "OBSERVED_CLASSES",
    "PREDICTED_CLASSES",
    "ZERO_DEVIATION",
    "InteractionCalls",
    "InteractionEvaluation",
    "LocfdrError",
    "LocfdrResult",
    "additive_deviation",
    "auprc",
    "average_curves",
    "call_interactions",
    "classify_deviations",
    "classify_observed",
    "classify_prediction",
    "evaluate_interactions",
    "interaction_pairs",
    "locfdr",
    "mean_se",
    "predicted_deviation",
    "predicts_no_interactions",
    "recurrence",
    "roc_auc",
    "thresholds",
    "top_predictions",
    "tpr_fdp_curve",
]

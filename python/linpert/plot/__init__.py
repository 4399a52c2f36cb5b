"""The paper's figures, drawn from a benchmark run (matplotlib, Agg canvas; no pyplot state is touched).

Each function takes the tables :func:`linpert.benchmark.run` writes, or the run folder itself, and returns a
matplotlib Figure; :func:`write_figures` writes every figure that applies to a run to ``<run>/figures/``
(:func:`start_figures` begins those that need no interaction analysis early, in another process).

* :func:`beeswarm_l2`, :func:`pearson_delta`: error per perturbation and model (Fig. 1a, 2a; ED Figs 2a, 8a).
* :func:`observed_vs_predicted`: one perturbation up close (Fig. 1b).
* :func:`forest`: mean L2 ratio to the mean baseline (Fig. 2c). :func:`l2_by_n`: error against n (ED Figs 2b, 8b).
* :func:`prediction_spread` (ED Fig. 7), :func:`resources` (ED Fig. 10).
* :func:`tpr_fdp` (Fig. 1c), :func:`precision_recall_roc` (ED Fig. 4), :func:`interaction_classes` (Fig. 1e),
  :func:`deviation_scatter` and :func:`class_mosaic` (Fig. 1f), :func:`deviation_qq` and :func:`locfdr_histogram`
  (ED Fig. 3), :func:`gene_predictions` (ED Fig. 6).
* :func:`dataset_overview` (ED Fig. 1), :func:`transfer_error` (ED Fig. 9).

Examples
--------
>>> from linpert import plot
>>> fig = plot.beeswarm_l2("linpert-results/demo/double")  # doctest: +SKIP
>>> plot.write_figures("linpert-results/demo/double")  # doctest: +SKIP
"""

from __future__ import annotations

from ._extended import class_mosaic, dataset_overview, deviation_qq, gene_predictions, transfer_error
from ._figures import (
    beeswarm_l2,
    forest,
    l2_by_n,
    observed_vs_predicted,
    pearson_delta,
    prediction_spread,
    resources,
    scorecard_heatmap,
)
from ._interactions import (
    deviation_scatter,
    interaction_classes,
    locfdr_histogram,
    precision_recall_roc,
    ranking_curves,
    tpr_fdp,
)
from ._run import RunFolder
from ._style import display_name, model_colours
from ._write import CAPTIONS, figure_bytes, figure_names, figures, start_figures, write_figures

__all__ = [
    "CAPTIONS",
    "RunFolder",
    "beeswarm_l2",
    "class_mosaic",
    "dataset_overview",
    "deviation_qq",
    "gene_predictions",
    "scorecard_heatmap",
    "transfer_error",
    "deviation_scatter",
    "display_name",
    "figure_bytes",
    "figure_names",
    "figures",
    "forest",
    "interaction_classes",
    "l2_by_n",
    "locfdr_histogram",
    "model_colours",
    "observed_vs_predicted",
    "pearson_delta",
    "precision_recall_roc",
    "prediction_spread",
    "ranking_curves",
    "resources",
    "start_figures",
    "tpr_fdp",
    "write_figures",
]

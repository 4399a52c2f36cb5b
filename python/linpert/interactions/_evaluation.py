"""How well a model's predictions find the observed interactions (spec §4.5–4.8; paper Fig. 1c,f, ED Figs 4–5).

A model "calls" an interaction where its prediction departs from the additive expectation; ranking the (double,
gene) pairs by ``|predicted − additive|`` and comparing with the observed calls gives the TPR-versus-FDP curve
(equations (4)–(6)), the precision-recall and ROC areas, the classes of its strongest calls, and which genes and
perturbations recur among them.

Pairs whose prediction is NaN (a model that could not predict a perturbation) are never called: they are left out of
the ranking but their observed interactions still count among the positives, so they cost recall.

A predicted deviation within floating-point tolerance of zero (:data:`ZERO_DEVIATION`) is zero: the additive model
differs from the additive expectation only by the order of its sums (±1e-15), and ranking that noise would "call"
interactions it never predicted. A model with no deviation at all predicts no interactions: it is listed in
``no_interactions`` and left out of the curves, areas, top classes and recurrence (the paper leaves additive out too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._calling import InteractionCalls, classify_prediction

#: The FDP grid of the paper's curves: 101 points in [0, 1].
FDP_GRID = np.linspace(0.0, 1.0, 101)
#: A predicted deviation at most this times ``max(1, |predicted|, |additive|)`` is rounding, and counts as zero.
ZERO_DEVIATION = 1e-12


def predicted_deviation(predicted, additive) -> np.ndarray:
    """``predicted − additive``, with deviations within floating-point tolerance of zero set to exactly zero.

    >>> predicted_deviation(np.array([2.0 + 4e-16, 2.5, np.nan]), np.array([2.0, 2.0, 2.0])).tolist()
    [0.0, 0.5, nan]
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    additive = np.asarray(additive, dtype=np.float64)
    deviation = predicted - additive
    scale = np.maximum(1.0, np.maximum(np.abs(predicted), np.abs(additive)))
    return np.where(np.abs(deviation) <= ZERO_DEVIATION * scale, 0.0, deviation)


@dataclass
class InteractionEvaluation:
    """What :func:`evaluate_interactions` returns: tidy tables for plotting (all plain DataFrames).

    Attributes
    ----------
    pairs
        One row per model, seed, scored double and read-out gene: ``predicted``, ``additive``, ``observed``,
        ``interaction`` (observed call) and ``class`` (observed class).
    curves
        The TPR-versus-FDP curve per model and seed on the FDP grid (``model, seed, fdp, tpr``).
    tpr_fdp
        The curves averaged over seeds (``model, fdp, tpr, n_seeds``): the paper's Fig. 1c.
    auc
        Per model and seed: ``auprc``, ``roc_auc``, ``n_pairs``, ``n_positive``.
    auc_summary
        Per model and metric: ``mean``, ``se`` (sd / √n_seeds) and ``n_seeds`` (ED Fig. 4).
    top_classes
        Each model's ``top_k`` pairs by ``|predicted − additive|`` pooled over seeds, with the predicted and observed
        classes (Fig. 1f).
    recurrence
        Counts of genes and perturbations among each model's top ``recurrence_k`` pairs per seed, and the same for the
        observed deviations (``model = 'ground_truth'``) (ED Fig. 5).
    no_interactions
        Models whose every prediction equals the additive expectation (to rounding): they predict no interaction, so
        they have no rows in the tables above but ``pairs``.
    """

    pairs: pd.DataFrame
    curves: pd.DataFrame
    tpr_fdp: pd.DataFrame
    auc: pd.DataFrame
    auc_summary: pd.DataFrame
    top_classes: pd.DataFrame
    recurrence: pd.DataFrame
    thresholds: tuple[float, float] = field(default=(np.nan, np.nan))
    no_interactions: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------------ ranking helpers
def _ranked_labels(observed_calls, predicted, additive) -> tuple[np.ndarray, int, int]:
    """Observed labels in the order of descending ``|predicted − additive|`` (stable), NaN scores left out."""
    labels = np.asarray(observed_calls, dtype=bool).ravel()
    score = np.abs(predicted_deviation(np.ravel(predicted), np.ravel(additive)))
    if not labels.size == score.size:
        raise ValueError(
            f"observed_calls has {labels.size} values but predicted/additive have {score.size}; pass one value per "
            "(double, gene) pair in the same order."
        )
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    keep = ~np.isnan(score)
    order = np.argsort(-score[keep], kind="stable")
    return labels[keep][order], n_pos, n_neg


def tpr_fdp_curve(observed_calls, predicted, additive, *, grid: np.ndarray = FDP_GRID) -> pd.DataFrame:
    """True-positive rate as a function of the false discovery proportion (spec §4.6; paper eqs (4)–(6)).

    Pairs are ranked by descending ``|predicted − additive|``; at each rank ``tp`` and ``fp`` count the observed
    interactions and non-interactions so far, ``fdp = fp / max(1, fp + tp)``. The points are sorted by ``fdp``
    (stable) and ``tpr = cummax(tp) / #positives``; the curve is interpolated linearly onto ``grid`` as R's
    ``approx(fdp, tpr, xout = grid, yleft = 0, yright = 1)`` does (tied ``fdp`` values take the mean ``tpr``).

    Parameters
    ----------
    observed_calls
        Booleans: whether each (double, gene) pair is an observed interaction.
    predicted, additive
        The model's prediction and the additive expectation of the same pairs.
    grid
        FDP values at which to report the TPR.

    Returns
    -------
    pandas.DataFrame
        Columns ``fdp`` (the grid) and ``tpr``; all NaN when there is no observed interaction.

    Examples
    --------
    >>> calls = np.array([True, False, True, False])
    >>> tpr_fdp_curve(calls, np.array([4.0, 3.0, 2.0, 1.0]), np.zeros(4), grid=np.array([0, 0.25, 0.5, 0.75])).tpr.tolist()
    [0.5, 0.875, 1.0, 1.0]
    """
    return _tpr_fdp(_ranked_labels(observed_calls, predicted, additive), grid)


def _tpr_fdp(ranked: tuple[np.ndarray, int, int], grid: np.ndarray) -> pd.DataFrame:
    labels, n_pos, _ = ranked
    grid = np.asarray(grid, dtype=np.float64)
    if n_pos == 0 or labels.size == 0:
        return pd.DataFrame({"fdp": grid, "tpr": np.full(grid.size, np.nan)})
    tp = np.cumsum(labels)
    fp = np.cumsum(~labels)
    fdp = fp / np.maximum(1, fp + tp)
    order = np.argsort(fdp, kind="stable")
    fdp, tpr = fdp[order], np.maximum.accumulate(tp[order]) / n_pos
    x, first = np.unique(fdp, return_index=True)
    y = np.add.reduceat(tpr, first) / np.diff(np.append(first, tpr.size))  # mean tpr of tied fdp (approx's ties)
    return pd.DataFrame({"fdp": grid, "tpr": np.interp(grid, x, y, left=0.0, right=1.0)})


def average_curves(curves: pd.DataFrame, *, by: str | list[str] = "model") -> pd.DataFrame:
    """Average TPR-versus-FDP curves over seeds: the mean ``tpr`` per group and ``fdp`` (and how many seeds).

    Examples
    --------
    >>> c = pd.DataFrame({"model": "m", "seed": [1, 1, 2, 2], "fdp": [0, 1, 0, 1], "tpr": [0.2, 1, 0.4, 1]})
    >>> average_curves(c).tpr.tolist()
    [0.30000000000000004, 1.0]
    """
    keys = [by] if isinstance(by, str) else list(by)
    return (
        curves.groupby([*keys, "fdp"], sort=False)
        .agg(tpr=("tpr", "mean"), n_seeds=("tpr", "size"))
        .reset_index()
    )


def auprc(observed_calls, predicted, additive) -> float:
    """Area under the precision-recall curve as the paper computes it (spec §4.7).

    Pairs are ranked by descending ``|predicted − additive|``; each rank gives a point (recall, precision). The
    points are sorted by ascending precision (ties: descending recall, so the curve is traced monotonically; the
    paper's stable sort left tie order to chance), the conventional end point (recall 0, precision 1) is added, and
    the area is the trapezoid sum ``−Σ mean(precision) · Δrecall``. A perfect ranking gives 1. NaN when there are no
    positives.

    Examples
    --------
    >>> auprc(np.array([True, True, False, False]), np.array([4.0, 3.0, 2.0, 1.0]), np.zeros(4))
    1.0
    """
    return _auprc(_ranked_labels(observed_calls, predicted, additive))


def _auprc(ranked: tuple[np.ndarray, int, int]) -> float:
    labels, n_pos, _ = ranked
    if n_pos == 0:
        return float("nan")
    tp = np.cumsum(labels)
    precision = np.append(tp / np.arange(1, labels.size + 1), 1.0)
    recall = np.append(tp / n_pos, 0.0)
    order = np.lexsort((-recall, precision))
    precision, recall = precision[order], recall[order]
    return float(-np.sum((precision[1:] + precision[:-1]) / 2 * np.diff(recall)))


def roc_auc(observed_calls, predicted, additive) -> float:
    """Area under the ROC curve (recall against false positive rate) by the trapezoid rule (spec §4.7).

    The points of the ranking, from (0, 0), sorted by false positive rate (stable); the area is
    ``Σ mean(recall) · Δfpr``. Without tied scores it equals the Mann–Whitney U statistic over ``#pos · #neg``. NaN
    when either class is empty.

    Examples
    --------
    >>> roc_auc(np.array([True, False, True, False]), np.array([4.0, 3.0, 2.0, 1.0]), np.zeros(4))
    0.75
    """
    return _roc_auc(_ranked_labels(observed_calls, predicted, additive))


def _roc_auc(ranked: tuple[np.ndarray, int, int]) -> float:
    labels, n_pos, n_neg = ranked
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    tpr = np.append(0.0, np.cumsum(labels) / n_pos)
    fpr = np.append(0.0, np.cumsum(~labels) / n_neg)
    order = np.argsort(fpr, kind="stable")
    tpr, fpr = tpr[order], fpr[order]
    return float(np.sum((tpr[1:] + tpr[:-1]) / 2 * np.diff(fpr)))


def mean_se(values: pd.Series) -> tuple[float, float]:
    """Mean and standard error (sample sd / √n) of per-seed values, as the paper's ED Fig. 4 labels."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    se = float(np.std(v, ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(np.mean(v)), se


# ------------------------------------------------------------------------------------------------ top predictions
def top_predictions(pairs: pd.DataFrame, *, k: int = 500, by: str | list[str] = "model") -> pd.DataFrame:
    """Each group's ``k`` pairs with the largest ``|predicted − additive|``, with the predicted class (Fig. 1f).

    ``pairs`` needs ``ctrl``, ``additive`` and ``predicted`` (plus whatever else to keep); NaN predictions are skipped
    and ties keep the table's order. Adds ``rank`` (1 = largest), ``predicted_deviation`` and ``predicted_class``
    (:func:`classify_prediction`).
    """
    keys = [by] if isinstance(by, str) else list(by)
    deviation = predicted_deviation(pairs["predicted"].to_numpy(), pairs["additive"].to_numpy())
    scored = np.flatnonzero(~np.isnan(deviation))
    size = np.abs(deviation)
    # each group's positions, largest first (ties in table order), groups in sorted order: what a stable sort of the
    # whole table by the keys and the size would give, without sorting a million rows on text keys
    groups = pairs[keys].iloc[scored].groupby(keys, sort=True).indices
    picked = [_largest(size, scored[positions], k) for _, positions in sorted(groups.items(), key=lambda kv: kv[0])]
    rows = np.concatenate(picked) if picked else np.array([], dtype=np.int64)
    top = pairs.iloc[rows].assign(predicted_deviation=deviation[rows])  # only the picked rows are copied
    top["rank"] = np.concatenate([np.arange(1, len(p) + 1) for p in picked]) if picked else []
    top["predicted_class"] = classify_prediction(top["ctrl"], top["additive"], top["predicted"])
    return top.reset_index(drop=True)


def _largest(size: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` positions with the largest ``size``, largest first, ties in the order given: the head of a stable
    descending sort, found by a partition first (a group holds up to a million pairs, the head 500)."""
    values = size[positions]
    if len(values) > k:
        kth = np.partition(values, len(values) - k)[len(values) - k]  # the k-th largest
        keep = values > kth
        keep[np.flatnonzero(values == kth)[: k - int(keep.sum())]] = True  # the first of the ties at the cut
        positions, values = positions[keep], values[keep]
    return positions[np.argsort(-values, kind="stable")]


def recurrence(pairs: pd.DataFrame, *, k: int = 100) -> pd.DataFrame:
    """How often each gene and perturbation appears among the top ``k`` pairs per model and seed (ED Fig. 5).

    The ranking is by ``|predicted − additive|``; a ``ground_truth`` row per seed ranks the same pairs by the observed
    ``|deviation|``. Returns ``model, seed, what ('gene' / 'perturbation'), name, n``, most frequent first.
    """
    truth = (
        pairs.drop_duplicates(["seed", "perturbation", "gene"])
        .assign(model="ground_truth", predicted=lambda d: d["observed"])
    )
    top = pd.concat([top_predictions(one, k=k, by=["model", "seed"]) for one in (truth, pairs)], ignore_index=True)
    tables = []
    for what in ("gene", "perturbation"):
        counts = top.groupby(["model", "seed", what], sort=False).size().rename("n").reset_index()
        tables.append(counts.rename(columns={what: "name"}).assign(what=what))
    out = pd.concat(tables, ignore_index=True)[["model", "seed", "what", "name", "n"]]
    return out.sort_values(["model", "seed", "what", "n"], ascending=[True, True, True, False],
                           kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ all together
def interaction_pairs(calls: InteractionCalls | pd.DataFrame, predictions: Mapping) -> pd.DataFrame:
    """One tidy table of observed calls and each model's predictions over the pairs it predicted.

    ``predictions`` maps ``(seed, model)`` to a DataFrame of predicted absolute expression (rows: conditions,
    columns: genes). Only doubles and genes present in the calls are kept (singles and others are ignored).
    """
    table = calls.table if isinstance(calls, InteractionCalls) else calls
    keep = ["perturbation", "gene", "ctrl", "additive", "observed", "deviation", "interaction", "class"]
    observed = table[keep]
    # the rows and columns of each prediction the pairs look up, found once per distinct name
    perturbation_codes, perturbations = pd.factorize(observed["perturbation"])
    gene_codes, genes = pd.factorize(observed["gene"])
    parts = []
    for (seed, model), frame in predictions.items():
        frame = pd.DataFrame(frame)
        rows = frame.index.get_indexer(perturbations)[perturbation_codes]
        columns = frame.columns.get_indexer(genes)[gene_codes]
        found = (rows >= 0) & (columns >= 0)  # an inner join that keeps the calls' order
        predicted = frame.to_numpy(dtype=np.float64)[rows[found], columns[found]]
        parts.append(observed[found].assign(predicted=predicted, model=model, seed=seed))
    if not parts:
        raise ValueError("No predictions given: pass a mapping {(seed, model): DataFrame of predictions}.")
    pairs = pd.concat(parts, ignore_index=True)
    return pairs[["model", "seed", *keep[:5], "predicted", *keep[5:]]]


def evaluate_interactions(
    calls: InteractionCalls,
    predictions: Mapping,
    *,
    top_k: int = 500,
    recurrence_k: int = 100,
    grid: np.ndarray = FDP_GRID,
) -> InteractionEvaluation:
    """Score every model's interaction predictions against the observed calls (spec §4.5–4.8).

    Parameters
    ----------
    calls
        The observed calls (:func:`call_interactions`, on the full data as in the paper).
    predictions
        ``{(seed, model): DataFrame}`` of predicted absolute expression of the scored doubles (rows) on read-out genes
        (columns), e.g. the runner's stored predictions.
    top_k
        Pairs per model (pooled over seeds) in ``top_classes`` (the paper: 500).
    recurrence_k
        Pairs per model and seed counted in ``recurrence`` (the paper: 100).
    grid
        The FDP grid of the curves.

    Returns
    -------
    InteractionEvaluation
        Tidy tables: curves per seed, curves averaged, AUPRC/ROC AUC per seed and summarised, top classes, recurrence.
    """
    pairs = interaction_pairs(calls, predictions)
    curves, aucs = [], []
    for (model, seed), group in pairs.groupby(["model", "seed"], sort=False):
        ranked = _ranked_labels(group["interaction"].to_numpy(), group["predicted"].to_numpy(),
                                group["additive"].to_numpy())  # once for the curve and both areas
        curves.append(_tpr_fdp(ranked, grid).assign(model=model, seed=seed))
        aucs.append(
            {
                "model": model,
                "seed": seed,
                "auprc": _auprc(ranked),
                "roc_auc": _roc_auc(ranked),
                "n_pairs": len(group),
                "n_positive": int(group["interaction"].sum()),
            }
        )
    curves = pd.concat(curves, ignore_index=True)[["model", "seed", "fdp", "tpr"]]
    auc = pd.DataFrame(aucs)
    summary = []
    for model, group in auc.groupby("model", sort=False):
        for metric in ("auprc", "roc_auc"):
            mean, se = mean_se(group[metric])
            summary.append({"model": model, "metric": metric, "mean": mean, "se": se, "n_seeds": len(group)})
    top = top_predictions(pairs, k=top_k, by="model")
    top = top.rename(columns={"class": "observed_class"})
    silent = predicts_no_interactions(pairs)

    def ranked(table: pd.DataFrame) -> pd.DataFrame:
        # computed with every model, then the silent ones left out: the others' rows are exactly as without them
        return table[~table["model"].isin(silent)].reset_index(drop=True)

    return InteractionEvaluation(
        pairs=pairs,
        curves=ranked(curves),
        tpr_fdp=ranked(average_curves(curves)),
        auc=ranked(auc),
        auc_summary=ranked(pd.DataFrame(summary)),
        top_classes=ranked(top),
        recurrence=ranked(recurrence(pairs, k=recurrence_k)),
        thresholds=(calls.lower, calls.upper),
        no_interactions=tuple(silent),
    )


def predicts_no_interactions(pairs: pd.DataFrame) -> list[str]:
    """The models of ``pairs`` whose every predicted deviation from the additive expectation is zero (to rounding)."""
    deviation = predicted_deviation(pairs["predicted"].to_numpy(), pairs["additive"].to_numpy())
    predicted = ~np.isnan(deviation)
    deviates = pd.Series(deviation[predicted] != 0.0).groupby(pairs["model"].to_numpy()[predicted], sort=False).any()
    return [str(model) for model, any_deviation in deviates.items() if not any_deviation]

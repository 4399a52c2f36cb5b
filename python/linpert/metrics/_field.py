"""The field's newer metrics, which a model that predicts the average perturbation cannot game.

L2 and Pearson delta against control reward predicting the systematic shift every perturbation shares (Systema,
Viñas Torné et al., *Nat. Biotechnol.* 2025; Mejia et al. 2025). These metrics ask instead whether a prediction is
specific to its perturbation:

* :func:`discrimination_score`: cell-eval's ``discrimination_score_l1`` (and its l2 and cosine variants): the
  normalised rank of the true perturbation's observed effect among all observed effects, by distance to the
  predicted effect, the target genes left out. 1 is best (the true one is nearest), ``1/n`` worst.
* :func:`centroid_accuracy` and :func:`pearson_delta_perturbed`: Systema's, with effects taken against the mean of
  the training perturbations rather than against control, so that the shared shift no longer scores.
* :func:`mae` and :func:`mse` over the read-out genes.

Inputs are conditions × genes tables (DataFrame or AnnData, canonical condition names such as ``G3+ctrl``), matched
by name; each function returns one value per condition (a Series named after the metric).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .._conditions import parse_condition

#: Fewest perturbations a rank metric needs: with fewer, its value says nothing and is NaN (with a warning).
MIN_RANKED = 3
_DISTANCES = ("l1", "l2", "cosine")


def _frame(table: Any, what: str) -> pd.DataFrame:
    from anndata import AnnData

    if isinstance(table, AnnData):
        X = table.X.toarray() if hasattr(table.X, "toarray") else table.X
        return pd.DataFrame(np.asarray(X, dtype=np.float64), index=table.obs_names.astype(str),
                            columns=table.var_names.astype(str))
    if isinstance(table, pd.DataFrame):
        return table.astype(np.float64)
    raise TypeError(f"{what} must be a conditions × genes DataFrame or AnnData, got {type(table).__name__}.")


def _aligned(predicted: Any, observed: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables on the same conditions and genes, in the observed order; a clear error naming any difference."""
    pred, obs = _frame(predicted, "predicted"), _frame(observed, "observed")
    for what, table in (("predictions", pred), ("observed table", obs)):
        for axis, names in (("perturbations", table.index), ("genes", table.columns)):
            if names.has_duplicates:
                raise ValueError(f"The {what} repeat{'s' * (what != 'predictions')} {axis} "
                                 f"({', '.join(map(str, sorted(set(names[names.duplicated()]))[:3]))}): give each "
                                 "once, one row per perturbation and one column per gene.")
    for axis, a, b in (("perturbations", pred.index, obs.index), ("genes", pred.columns, obs.columns)):
        missing, extra = list(b.difference(a)), list(a.difference(b))
        if missing or extra:
            said = [f"misses {len(missing)} (e.g. {', '.join(map(str, missing[:3]))})"] if missing else []
            said += [f"has {len(extra)} extra (e.g. {', '.join(map(str, extra[:3]))})"] if extra else []
            raise ValueError(f"The predictions' {axis} differ from the observed ones: the prediction "
                             f"{' and '.join(said)}. Predict exactly the observed {axis}.")
    return pred.loc[obs.index, obs.columns], obs


def _control(control: Any, genes: pd.Index, what: str = "control") -> np.ndarray:
    if isinstance(control, pd.Series):
        missing = genes.difference(control.index.astype(str))
        if len(missing) or control.index.has_duplicates:
            problem = (f"misses {len(missing)} of the tables' genes (e.g. {', '.join(map(str, missing[:3]))})"
                       if len(missing) else "repeats genes")
            raise ValueError(f"The {what} Series {problem}: give one value per gene of the tables, indexed by gene.")
        return control.set_axis(control.index.astype(str)).reindex(genes).to_numpy(np.float64)
    values = np.asarray(control, dtype=np.float64).ravel()
    if values.size != len(genes):
        raise ValueError(f"control has {values.size} values but the tables have {len(genes)} genes.")
    return values


def _targets(conditions: pd.Index, genes: pd.Index) -> list[np.ndarray]:
    """Per condition, the columns of its target genes (a gene named like the perturbation, as cell-eval matches)."""
    column = {gene: i for i, gene in enumerate(genes)}
    out = []
    for name in conditions:
        try:
            wanted = parse_condition(name).genes
        except ValueError:  # not a canonical name (e.g. cell-eval's bare gene names): the name itself
            wanted = (name,)
        out.append(np.array([column[g] for g in wanted if g in column], dtype=np.int64))
    return out


def _distances(pred: np.ndarray, obs: np.ndarray, targets: list[np.ndarray] | None, metric: str) -> np.ndarray:
    """``D[p, q]``: distance between predicted effect p and observed effect q, over the genes but p's targets."""
    if metric == "l1":
        D = _cdist(pred, obs, "cityblock")
    elif metric == "l2":
        D = _cdist(pred, obs, "sqeuclidean")
    else:
        dot = pred @ obs.T
        pred_sq, obs_sq = np.square(pred).sum(1)[:, None], np.tile(np.square(obs).sum(1), (len(pred), 1))
    for p, cols in enumerate(targets or []):
        if not cols.size:
            continue
        if metric == "l1":
            D[p] -= np.abs(pred[p, cols] - obs[:, cols]).sum(axis=1)
        elif metric == "l2":
            D[p] -= np.square(pred[p, cols] - obs[:, cols]).sum(axis=1)
        else:
            dot[p] -= obs[:, cols] @ pred[p, cols]
            pred_sq[p] -= np.square(pred[p, cols]).sum()
            obs_sq[p] -= np.square(obs[:, cols]).sum(axis=1)
    if metric == "l2":
        return np.sqrt(np.maximum(D, 0.0))
    if metric == "cosine":
        with np.errstate(invalid="ignore", divide="ignore"):
            return 1.0 - dot / np.sqrt(pred_sq * obs_sq)
    return np.maximum(D, 0.0)


def _cdist(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """scipy's exact ``cdist``, its rows split over the cores (it releases the GIL): 300 × 19,264 genes in < 1 s."""
    from concurrent.futures import ThreadPoolExecutor

    from scipy.spatial.distance import cdist

    from .._threads import threads

    # pandas hands out its values column-major; cdist walks rows, and is 4x slower on the transposed layout
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    workers = min(threads().kernels, 4, len(a))
    if workers < 2 or a.size * len(b) < 10_000_000:
        return cdist(a, b, metric)
    with ThreadPoolExecutor(workers) as pool:
        parts = pool.map(lambda rows: cdist(a[rows], b, metric), np.array_split(np.arange(len(a)), workers))
        return np.vstack(list(parts))


def _rank_of_own(D: np.ndarray, own: np.ndarray) -> np.ndarray:
    """For each row, how many observed effects (columns) rank before its own column ``own[row]``: nearer, or as near
    and listed earlier (a stable sort's order)."""
    mine = D[np.arange(len(D)), own][:, None]
    earlier = np.arange(D.shape[1])[None, :] < own[:, None]
    return (D < mine).sum(axis=1) + ((D == mine) & earlier).sum(axis=1)


def _predicted_rows(pred: pd.DataFrame) -> np.ndarray:
    """Rows the model predicted (every gene finite); a rank metric is NaN for the others."""
    return np.isfinite(pred.to_numpy()).all(axis=1)


def discrimination_score(predicted: Any, observed: Any, *, control: Any, metric: str = "l1",
                         exclude_target: bool = True) -> pd.Series:
    """How well each prediction picks out its own perturbation among all observed ones (cell-eval's score).

    For perturbation p, the observed effects of every perturbation (``observed − control``) are ranked by their
    distance to p's predicted effect (``predicted − control``); the score is ``1 − rank / n``, with rank 0 for the
    nearest: 1 when p's own observed effect is the nearest, ``1/n`` when it is the farthest.

    Parameters
    ----------
    predicted, observed
        Conditions × genes (DataFrame or AnnData) over the same conditions and genes, matched by name.
    control
        The control profile over those genes (Series indexed by gene, or an array in the tables' gene order).
    metric
        ``"l1"`` (cell-eval's default), ``"l2"`` or ``"cosine"``.
    exclude_target
        Leave each perturbation's target genes out of its distances (its guide sets them, trivially).

    Returns
    -------
    Series
        One value per condition, named ``discrimination_<metric>``; NaN for all with fewer than
        :data:`MIN_RANKED` perturbations, and NaN where the distance is undefined: the cosine of a zero predicted
        effect (the no-change model's), which cell-eval's scikit-learn call instead ranks by the order of its ties.

    Examples
    --------
    >>> genes = ["A", "B", "C", "D"]
    >>> obs = pd.DataFrame([[2, 0, 1, 0], [0, 2, 0, 1], [0, 0, 2, 2]], index=["A+ctrl", "B+ctrl", "C+ctrl"],
    ...                    columns=genes, dtype=float)
    >>> pred = obs.iloc[[0, 2, 1]].set_axis(obs.index)  # B's and C's predictions swapped
    >>> discrimination_score(pred, obs, control=np.zeros(4)).round(3).tolist()
    [1.0, 0.667, 0.667]
    """
    if metric not in _DISTANCES:
        raise ValueError(f"metric must be one of {', '.join(_DISTANCES)}, got {metric!r}.")
    pred, obs = _aligned(predicted, observed)
    name = f"discrimination_{metric}"
    if len(obs) < MIN_RANKED:
        warnings.warn(f"{name} needs at least {MIN_RANKED} perturbations to rank, got {len(obs)}: NaN.",
                      RuntimeWarning, stacklevel=2)
        return pd.Series(np.nan, index=obs.index, name=name)
    ctrl = _control(control, obs.columns)
    rows = _predicted_rows(pred)
    targets = [t for t, keep in zip(_targets(obs.index, obs.columns), rows) if keep] if exclude_target else None
    D = _distances(pred.to_numpy()[rows] - ctrl, obs.to_numpy() - ctrl, targets, metric)
    scores = np.full(len(obs), np.nan)
    # a distance can be undefined (cosine to a zero effect, as no change predicts): such a prediction has no rank
    scores[rows] = np.where(np.isfinite(D).all(axis=1), 1.0 - _rank_of_own(D, np.flatnonzero(rows)) / len(obs), np.nan)
    return pd.Series(scores, index=obs.index, name=name)


def centroid_accuracy(predicted: Any, observed: Any, *, reference: Any) -> pd.Series:
    """Whether each prediction is nearer its own observed profile than any other's, against a perturbed reference.

    Systema's centroid accuracy: effects are taken against ``reference``, the mean of the training perturbations,
    and each predicted effect is matched to the observed effect of highest Pearson correlation. 1 where that is its
    own perturbation, 0 elsewhere; the mean is the share of perturbations told apart.

    Examples
    --------
    >>> obs = pd.DataFrame([[2.0, 0, 1], [0, 2.0, 0], [0, 0, 2.0]], index=["A+ctrl", "B+ctrl", "C+ctrl"],
    ...                    columns=["A", "B", "C"])
    >>> centroid_accuracy(obs, obs, reference=np.zeros(3)).tolist()
    [1.0, 1.0, 1.0]
    """
    pred, obs = _aligned(predicted, observed)
    if len(obs) < MIN_RANKED:
        warnings.warn(f"centroid_accuracy needs at least {MIN_RANKED} perturbations, got {len(obs)}: NaN.",
                      RuntimeWarning, stacklevel=2)
        return pd.Series(np.nan, index=obs.index, name="centroid_accuracy")
    ref = _control(reference, obs.columns, "reference")
    rows = _predicted_rows(pred)
    a, b = pred.to_numpy()[rows] - ref, obs.to_numpy() - ref
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (a @ b.T) / np.sqrt(np.square(a).sum(1)[:, None] * np.square(b).sum(1)[None, :])
    D = np.where(np.isfinite(corr), -corr, np.inf)  # the most correlated observed effect comes first
    hits = np.full(len(obs), np.nan)
    defined = np.isfinite(corr[np.arange(len(D)), np.flatnonzero(rows)])  # a constant effect correlates with nothing
    hits[rows] = np.where(defined, (_rank_of_own(D, np.flatnonzero(rows)) == 0).astype(float), np.nan)
    return pd.Series(hits, index=obs.index, name="centroid_accuracy")


def pearson_delta_perturbed(predicted: Any, observed: Any, *, reference: Any) -> pd.Series:
    """Systema's Pearson delta: ``cor(predicted − reference, observed − reference)`` per condition, where
    ``reference`` is the mean of the training perturbations, so the shift they all share no longer scores.

    Examples
    --------
    >>> obs = pd.DataFrame([[2.0, 0, 1], [0, 2.0, 0]], index=["A+ctrl", "B+ctrl"], columns=["A", "B", "C"])
    >>> pearson_delta_perturbed(obs, obs, reference=obs.mean()).round(3).tolist()
    [1.0, 1.0]
    """
    from ._paper import _rowwise_cor

    pred, obs = _aligned(predicted, observed)
    ref = _control(reference, obs.columns, "reference")
    values = _rowwise_cor(pred.to_numpy() - ref, obs.to_numpy() - ref)
    return pd.Series(values, index=obs.index, name="pearson_delta_perturbed")


def mae(predicted: Any, observed: Any) -> pd.Series:
    """Mean absolute error over the genes, per condition (NaN genes dropped; an all-NaN row is NaN)."""
    pred, obs = _aligned(predicted, observed)
    return pd.Series(_row_mean(np.abs(pred.to_numpy() - obs.to_numpy())), index=obs.index, name="mae")


def mse(predicted: Any, observed: Any) -> pd.Series:
    """Mean squared error over the genes, per condition (NaN genes dropped; an all-NaN row is NaN)."""
    pred, obs = _aligned(predicted, observed)
    return pd.Series(_row_mean(np.square(pred.to_numpy() - obs.to_numpy())), index=obs.index, name="mse")


def _row_mean(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, values, 0.0).sum(axis=1) / finite.sum(axis=1)

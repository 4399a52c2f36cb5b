"""Calibrated scores: each metric scaled so that 0 is a reference baseline and 1 is what the data agree with itself.

The **replicate ceiling** of a metric is its value when one random half of each condition's cells predicts the other
half: what the data agree with themselves. It needs cells; a pseudobulk has none to split. A model's **scaled
score** on a metric is ``(model − reference) / (ceiling − reference)`` of the metric's means over perturbations, where
the reference is a baseline scored on the same perturbations (the mean for singles, additive for doubles); a
bootstrap over perturbations gives its interval, and the question is whether that interval lies above 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._conditions import CONTROL
from ._de import by_gene, grouped_de_rounds

#: Fewest cells a condition needs for a half-split (two per half); with fewer its ceiling is NaN, with a reason.
MIN_CELLS = 4


def replicate_ceiling(cells: Any, *, condition_key: str = "condition", metrics: list[str] | None = None,
                      n_splits: int = 10, seed: int = 0, sorted_values=None) -> pd.DataFrame:
    """Per condition and metric, how well one half of the condition's cells predicts the other half.

    Each of ``n_splits`` rounds splits every condition's cells (control included) at random into two halves, averages
    each half, and scores half A as the prediction of half B with the paper's and the registered metrics (effects
    against half B's control, Systema's reference the mean of half B's perturbations); the ceiling is the mean over
    rounds.

    Parameters
    ----------
    cells
        Cells × genes AnnData with ``obs[condition_key]`` in linpert's names (``ctrl``, ``A+ctrl``, ``A+B``).
    metrics
        Registered metrics beside the paper's (default: all).
    sorted_values
        :func:`linpert.metrics._de.by_gene` of ``cells.X`` where the caller has it (the DE-gene overlap's tests).

    Returns
    -------
    DataFrame
        One row per perturbation: a column per metric and ``reason`` (why a ceiling is NaN: too few cells).
    """
    from ._registry import PAPER_METRICS, Scoring, needs_cells, resolve_metrics, score_all

    names = resolve_metrics(metrics, cells=True)
    labels = cells.obs[condition_key].astype(str).to_numpy()
    conditions = list(dict.fromkeys(labels))
    if CONTROL not in conditions:
        raise ValueError(f"The cells have no control cells ('{CONTROL}' in obs[{condition_key!r}]) to take effects "
                         "against.")
    counts = pd.Series(labels).value_counts()
    splittable = [c for c in conditions if c != CONTROL and counts[c] >= MIN_CELLS]
    if counts[CONTROL] < MIN_CELLS:
        splittable = []
    needs_de = needs_cells(names)
    if needs_de and sorted_values is None:
        sorted_values = by_gene(cells.X)  # sorted once for every round's test
    rng = np.random.default_rng(seed)
    genes = cells.var_names.astype(str)
    n_codes = len(splittable) + 1
    splits = [_halves(labels, [CONTROL, *splittable], rng) for _ in range(n_splits if splittable else 0)]
    means = _half_means(cells.X, splits, n_codes)
    tests = (grouped_de_rounds(cells.X, np.array([halves[1] for halves in splits]), splittable, genes,
                               sorted_values=sorted_values, means=[half_b for _, half_b in means])
             if needs_de and splits else [None] * len(splits))
    rounds = []
    for (half_a, half_b), de in zip(means, tests):
        pred = pd.DataFrame(half_a[1:], index=splittable, columns=genes)
        obs = pd.DataFrame(half_b[1:], index=splittable, columns=genes)
        rounds.append(score_all(Scoring(pred, obs, half_b[0], obs.mean().to_numpy(), de=de), names))
    perturbations = [c for c in conditions if c != CONTROL]
    table = (sum(rounds) / len(rounds)).reindex(perturbations) if rounds else pd.DataFrame(
        index=pd.Index(perturbations), columns=[*PAPER_METRICS, *names], dtype=float)
    table["reason"] = [""
                       if c in splittable else f"fewer than {MIN_CELLS} cells ({counts[c]}) or control cells to split"
                       for c in perturbations]
    return table.rename_axis("perturbation")


def _halves(labels: np.ndarray, conditions: list[str], rng: np.random.Generator) -> np.ndarray:
    """Two rows of condition codes per cell: a random half of each condition's cells, and the other half (-1: not
    in that half)."""
    codes = pd.Categorical(labels, categories=conditions).codes.astype(np.int64)  # -1: a condition not split
    order = rng.permutation(len(labels))
    order = order[np.argsort(codes[order], kind="stable")]  # each condition's cells together, in random order
    order = order[codes[order] >= 0]
    sizes = np.bincount(codes[order], minlength=len(conditions))
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    rank = np.arange(len(order)) - starts  # each cell's place in its condition's random order
    half = np.repeat(sizes // 2, sizes)  # equal halves: an odd cell out is left out
    halves = np.full((2, len(labels)), -1)
    halves[0, order[rank < half]] = codes[order[rank < half]]
    second = (rank >= half) & (rank < 2 * half)
    halves[1, order[second]] = codes[order[second]]
    return halves


def _half_means(X, splits: list[np.ndarray], n_codes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per round (its two rows of halves' codes), each half's mean expression per code (codes × genes): all rounds
    from one pass over the cells each; a cell is in one half at most, so the halves' codes are numbered one after
    the other."""
    from scipy import sparse

    from .._pseudobulk._reduce import add_rows_rounds

    if not splits:
        return []
    codes = np.array([np.where(a >= 0, a, np.where(b >= 0, b + n_codes, -1)) for a, b in splits])
    sums = np.zeros((len(splits), 2 * n_codes, X.shape[1]))
    add_rows_rounds(X if isinstance(X, np.ndarray) else sparse.csr_matrix(X), codes, sums)
    counts = np.stack([np.bincount(row[row >= 0], minlength=2 * n_codes) for row in codes])
    with np.errstate(invalid="ignore", divide="ignore"):
        both = sums / counts[:, :, None]
    return [(one[:n_codes], one[n_codes:]) for one in both]


def scaled_scores(results: pd.DataFrame, ceiling: pd.DataFrame, *, reference: str, n_boot: int = 1000,
                  seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Each model's scaled score per metric, with a bootstrap interval and whether it lies above 0.

    ``results`` has one row per model and perturbation (and seed) with metric columns; ``reference`` is the model
    whose score is 0; ``ceiling`` is :func:`replicate_ceiling`'s table. The scaled score is ``(model − reference) /
    (ceiling − reference)`` of the metric's means over the perturbations all three have, so a perturbation where the
    ceiling barely differs from the reference cannot blow it up; the interval resamples those perturbations.
    """
    from ._registry import higher_is_better, metric_columns

    metrics = [m for m in metric_columns(results) if m in ceiling.columns]
    if reference not in set(results["model"]):
        raise ValueError(f"The reference model {reference!r} is not in the results; models: "
                         f"{', '.join(dict.fromkeys(results['model']))}.")
    keys = [k for k in ("seed", "perturbation") if k in results.columns]
    base = results[results["model"] == reference].set_index(keys)[metrics]
    rows = []
    for model, part in results.groupby("model", sort=False):
        values = part.set_index(keys)[metrics]
        perturbations = values.index.get_level_values("perturbation")
        for metric in metrics:
            triple = np.column_stack([values[metric].to_numpy(), base[metric].reindex(values.index).to_numpy(),
                                      ceiling[metric].reindex(perturbations).to_numpy()])
            triple = triple[np.isfinite(triple).all(axis=1)]
            rows.append({"model": model, "metric": metric, "n": len(triple),
                         **_scaled_with_interval(triple, higher_is_better(metric), n_boot, seed, level)})
    return pd.DataFrame(rows)


def _scaled_with_interval(triple: np.ndarray, higher: bool, n_boot: int, seed: int, level: float) -> dict:
    """``(model − reference) / (ceiling − reference)`` of the column means, and its bootstrap interval.

    NaN, with the reason, where the ceiling does not beat the reference: half of a condition's cells are then too
    few to say what the data agree with, and the scale would point the wrong way.
    """
    def scaled(means: np.ndarray) -> np.ndarray:
        span = means[..., 2] - means[..., 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(np.abs(span) > 1e-12, (means[..., 0] - means[..., 1]) / span, np.nan)

    empty = {"scaled": np.nan, "lower": np.nan, "upper": np.nan, "above_0": False}
    if not len(triple):
        return {**empty, "reason": "no perturbation with the model, the reference and a ceiling"}
    gain = triple[:, 2].mean() - triple[:, 1].mean()
    if not (gain > 0 if higher else gain < 0):
        return {**empty, "reason": "the replicate ceiling does not beat the reference (too few cells per half)"}
    rng = np.random.default_rng(seed)
    boots = scaled(triple[rng.integers(0, len(triple), (n_boot, len(triple)))].mean(axis=1))
    lower, upper = np.nanquantile(boots, [(1 - level) / 2, (1 + level) / 2]) if np.isfinite(boots).any() else (
        np.nan, np.nan)
    return {"scaled": float(scaled(triple.mean(axis=0))), "lower": float(lower), "upper": float(upper),
            "above_0": bool(lower > 0), "reason": ""}

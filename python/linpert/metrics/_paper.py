"""The paper's metrics (spec §5): L2 distance, Pearson delta, L2 over the top-n genes, spread, bootstrap.

Arrays in, numbers out. Vectors are one perturbation's profile over genes; matrices are perturbations × genes.
Genes where the prediction or the truth is NaN are dropped, per perturbation, before scoring, as the paper does with
its NA genes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._config import renamed

__all__ = [
    "bootstrap_ratio",
    "forest_table",
    "l2",
    "l2_by_n",
    "l2_grid",
    "pearson_delta",
    "prediction_spread",
    "r2",
    "score",
    "top_expressed_genes",
]


@renamed(ctrl="control", n="n_genes")
def top_expressed_genes(control: np.ndarray, n_genes: int = 1000) -> np.ndarray:
    """Indices of the ``n_genes`` genes with the highest control mean, highest first; ties keep the first occurrence.

    These are the paper's read-out genes (``n_genes = 1000``). NaN control values sort last.

    Examples
    --------
    >>> top_expressed_genes(np.array([0.5, 2.0, 1.0, 2.0]), n_genes=3)
    array([1, 3, 2])
    """
    control = np.asarray(control, dtype=np.float64).ravel()
    if n_genes < 0:
        raise ValueError(f"n_genes must be non-negative, got {n_genes}.")
    key = np.where(np.isnan(control), np.inf, -control)
    return np.argsort(key, kind="stable")[: min(n_genes, control.size)]


# --------------------------------------------------------------------------------------- per-perturbation metrics
def _as_matrix(x: np.ndarray) -> np.ndarray:
    """A perturbations × genes float64 matrix; NaN marks a missing gene, but an infinite value is refused: dropping
    it gene by gene would store a finite score over fewer genes."""
    x = np.asarray(x, dtype=np.float64)
    infinite = np.isinf(x)
    if infinite.any():
        rows = np.flatnonzero(infinite.reshape(-1, x.shape[-1]).any(axis=1)) if x.ndim else np.array([0])
        raise ValueError(f"{int(infinite.sum())} infinite values (in rows {rows[:5].tolist()}) among the values to "
                         "score: an expression profile is finite. Mark a value that is not known as NaN.")
    return x[None, :] if x.ndim == 1 else x


def _rowwise_cor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` over entries finite in both."""
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(axis=1)
    a = np.where(ok, a, 0.0)
    b = np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(ok, a - a.sum(axis=1, keepdims=True) / n[:, None], 0.0)
        b = np.where(ok, b - b.sum(axis=1, keepdims=True) / n[:, None], 0.0)
        saa, sbb = (a * a).sum(axis=1), (b * b).sum(axis=1)
        r = (a * b).sum(axis=1) / np.sqrt(saa * sbb)
    # a constant vector (e.g. the no-change model's delta, zero up to rounding) has no correlation
    tiny = 1e-24 * np.maximum(n, 1)
    r[(n < 2) | (saa <= tiny) | (sbb <= tiny)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _rowwise_l2(predicted: np.ndarray, observed: np.ndarray) -> np.ndarray:
    d = predicted - observed
    ok = np.isfinite(d)
    out = np.sqrt(np.where(ok, d * d, 0.0).sum(axis=1))
    out[~ok.any(axis=1)] = np.nan
    return out


@renamed(pred="predicted", obs="observed")
def l2(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Euclidean distance ``sqrt(Σ (predicted − observed)²)`` over the genes (not divided by their number).

    Examples
    --------
    >>> l2(np.array([1.0, 2.0, np.nan]), np.array([4.0, 6.0, 0.0]))
    5.0
    """
    return float(_rowwise_l2(_as_matrix(predicted), _as_matrix(observed))[0])


@renamed(pred="predicted", obs="observed", ctrl="control")
def pearson_delta(predicted: np.ndarray, observed: np.ndarray, control: np.ndarray) -> float:
    """``cor(predicted − control, observed − control)``; NaN when ``predicted − control`` is constant (e.g. the
    no-change model).

    Examples
    --------
    >>> round(pearson_delta(np.array([2.0, 3.0, 5.0]), np.array([1.0, 3.0, 4.0]), np.ones(3)), 4)
    0.9286
    """
    control = np.asarray(control, dtype=np.float64)
    return float(_rowwise_cor(_as_matrix(predicted) - control, _as_matrix(observed) - control)[0])


@renamed(pred="predicted", obs="observed")
def r2(predicted: np.ndarray, observed: np.ndarray) -> float:
    """``cor(predicted, observed)`` of absolute expression (the paper calls it r2; it is a correlation, not squared)."""
    return float(_rowwise_cor(_as_matrix(predicted), _as_matrix(observed))[0])


@renamed(pred="predicted", obs="observed", ctrl="control")
def score(predicted: np.ndarray, observed: np.ndarray, control: np.ndarray) -> pd.DataFrame:
    """Score each row (perturbation) of ``predicted`` against the same row of ``observed``.

    Parameters
    ----------
    predicted, observed
        Perturbations × genes. NaN genes are dropped per row; an all-NaN prediction scores NaN.
    control
        The control profile over the same genes.

    Returns
    -------
    DataFrame
        One row per perturbation, columns ``l2``, ``pearson_delta``, ``r2``.

    Examples
    --------
    >>> score(np.array([[2.0, 3.0, 5.0]]), np.array([[1.0, 3.0, 4.0]]), np.ones(3)).round(3)
          l2  pearson_delta     r2
    0  1.414          0.929  0.929
    """
    predicted, observed = _as_matrix(predicted), _as_matrix(observed)
    control = np.asarray(control, dtype=np.float64).ravel()
    if predicted.shape != observed.shape or control.size != predicted.shape[1]:
        raise ValueError(
            f"Shapes do not match: predicted {predicted.shape}, observed {observed.shape}, control {control.shape}. "
            "Pass perturbations × genes matrices over the same genes and the control profile over those genes."
        )
    observed = np.where(np.isfinite(predicted), observed, np.nan)
    return pd.DataFrame(
        {
            "l2": _rowwise_l2(predicted, observed),
            "pearson_delta": _rowwise_cor(predicted - control, observed - control),
            "r2": _rowwise_cor(predicted, observed),
        }
    )


# ------------------------------------------------------------------------------------------------- L2 by n
def l2_grid(n_genes: int) -> np.ndarray:
    """The gene counts at which :func:`l2_by_n` reports, up to ``n_genes``.

    As the paper's code: ``c(1:100, seq(101, 1000, by = 10), seq(1001, n_genes, by = 100))``, i.e. every n up to
    100, then 101, 111, ..., 991, then 1001, 1101, ...

    Examples
    --------
    >>> g = l2_grid(1250)
    >>> g[98:103].tolist(), g[-4:].tolist()
    ([99, 100, 101, 111, 121], [991, 1001, 1101, 1201])
    """
    grid = np.concatenate([np.arange(1, 101), np.arange(101, 1001, 10), np.arange(1001, n_genes + 1, 100)])
    return grid[grid <= n_genes]


@renamed(pred="predicted", obs="observed", ctrl="control")
def l2_by_n(predicted: np.ndarray, observed: np.ndarray, control: np.ndarray, *, order: str = "expression"
            ) -> pd.DataFrame:
    """``sqrt(cumsum((predicted − observed)²))`` over the top-n genes, as a function of n.

    Parameters
    ----------
    predicted, observed
        Perturbations × genes (or one profile).
    control
        The control profile over the same genes.
    order
        ``"expression"``: genes by decreasing control mean (the same for every perturbation; ties by first
        occurrence). ``"de"``: genes by decreasing ``|observed − control|``, per perturbation (this order uses the
        truth).

    Returns
    -------
    DataFrame
        Tidy: ``perturbation`` (row number), ``n``, ``l2``, at the n of :func:`l2_grid`. NaN genes add nothing.

    Examples
    --------
    >>> l2_by_n(np.array([1.0, 1.0]), np.array([4.0, 5.0]), np.array([2.0, 1.0]))["l2"].tolist()
    [3.0, 5.0]
    """
    predicted, observed = _as_matrix(predicted), _as_matrix(observed)
    control = np.asarray(control, dtype=np.float64).ravel()
    if predicted.shape != observed.shape or control.size != predicted.shape[1]:
        raise ValueError(
            f"Shapes do not match: predicted {predicted.shape}, observed {observed.shape}, control {control.shape}."
        )
    if order == "expression":
        genes = top_expressed_genes(control, n_genes=control.size)
    elif order == "de":
        genes = de_gene_order(observed, control)
    else:
        raise ValueError(f"order must be 'expression' or 'de', got {order!r}.")
    return l2_along(predicted, observed, genes)


def de_gene_order(observed: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Per perturbation (row), the genes by decreasing ``|observed − control|``, ties by first occurrence, NaN last:
    the ``"de"`` order of :func:`l2_by_n`."""
    change = np.abs(np.asarray(observed, dtype=np.float64) - np.asarray(control, dtype=np.float64).ravel())
    return np.argsort(np.where(np.isfinite(change), -change, np.inf), axis=1, kind="stable")


def l2_along(predicted: np.ndarray, observed: np.ndarray, genes: np.ndarray) -> pd.DataFrame:
    """:func:`l2_by_n` with the genes' order given: one order for every row, or one per row (a benchmark sorts
    each perturbation's genes once, not once per model)."""
    sq = (predicted - observed) ** 2
    sq = np.where(np.isfinite(sq), sq, 0.0)
    sq = sq[:, genes] if genes.ndim == 1 else np.take_along_axis(sq, genes, axis=1)
    grid = l2_grid(sq.shape[1])
    values = np.sqrt(np.cumsum(sq, axis=1)[:, grid - 1])
    n_pert = predicted.shape[0]
    return pd.DataFrame(
        {
            "perturbation": np.repeat(np.arange(n_pert), grid.size),
            "n": np.tile(grid, n_pert),
            "l2": values.ravel(),
        }
    )


# ------------------------------------------------------------------------------------------------- spread
@renamed(pred="predicted", obs="observed")
def prediction_spread(predicted: np.ndarray, observed: np.ndarray) -> pd.DataFrame:
    """Per gene, the standard deviation across perturbations of the predictions and of the truth.

    Extended Data Fig. 7 of the paper: a model that predicts nearly the same profile for every perturbation has a
    much smaller spread than the data. Sample sd (``ddof=1``, as R's ``sd``) over the finite values.

    Returns
    -------
    DataFrame
        One row per gene (column number): ``sd_pred``, ``sd_obs``.

    Examples
    --------
    >>> prediction_spread(np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([[0.0, 1.0], [4.0, 3.0]])).round(3)
       sd_pred  sd_obs
    0    1.414   2.828
    1    0.000   1.414
    """
    predicted, observed = _as_matrix(predicted), _as_matrix(observed)
    if predicted.shape != observed.shape:
        raise ValueError(
            f"predicted {predicted.shape} and observed {observed.shape} must have the same shape (perturbations × "
            "genes)."
        )
    with warnings.catch_warnings():  # a gene with fewer than two finite values has no sd: NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        return pd.DataFrame({"sd_pred": np.nanstd(predicted, axis=0, ddof=1),
                             "sd_obs": np.nanstd(observed, axis=0, ddof=1)})


# ---------------------------------------------------------------------------------------------- bootstrap
def bootstrap_ratio(
    values: np.ndarray, reference: np.ndarray, *, n_boot: int = 10_000, seed: int = 0, ci: float = 0.95
) -> pd.Series:
    """Mean of the per-perturbation ratio ``values / reference`` with a bootstrap confidence interval.

    The paper's forest plot: ``l2 / l2_of_mean_baseline`` per perturbation, 10,000 resamples of the mean, the
    2.5 % and 97.5 % quantiles. Pairs where either value is NaN (or the ratio is not finite) are dropped.

    Returns
    -------
    Series
        ``mean`` (of the observed ratios), ``lower``, ``upper`` (bootstrap quantiles), ``se`` (the standard
        deviation of the bootstrap means) and ``n`` (pairs used).

    Examples
    --------
    >>> out = bootstrap_ratio(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]), n_boot=1000)
    >>> float(out["mean"]), bool(out["lower"] < 1.0 < out["upper"])
    (1.0, True)
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    reference = np.asarray(reference, dtype=np.float64).ravel()
    if values.shape != reference.shape:
        raise ValueError(f"values {values.shape} and reference {reference.shape} must pair up one to one.")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie between 0 and 1, got {ci}.")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = values / reference
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size == 0:
        return pd.Series({"mean": np.nan, "lower": np.nan, "upper": np.nan, "se": np.nan, "n": 0})
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // ratio.size)  # bound the memory of the index matrix
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = ratio[rng.integers(0, ratio.size, size=(stop - start, ratio.size))].mean(axis=1)
    alpha = (1 - ci) / 2
    lower, upper = np.quantile(means, [alpha, 1 - alpha])
    se = means.std(ddof=1) if n_boot > 1 else np.nan
    return pd.Series({"mean": ratio.mean(), "lower": lower, "upper": upper, "se": se, "n": ratio.size})


def forest_table(
    results: pd.DataFrame, *, reference: str = "mean", n_boot: int = 10_000, seed: int = 0, ci: float = 0.95
) -> pd.DataFrame:
    """The paper's forest plot (Fig. 2c) as a table: per dataset and model, the mean ratio ``l2 / l2_reference``.

    Each model's per-perturbation L2 is divided by the ``reference`` model's L2 on the same dataset, seed and
    perturbation (and split, when the table has that column); rows of the ``test`` and ``val`` sets are used when
    the table has a ``set`` column, and the seeds are pooled. The mean ratio and its bootstrap interval come from
    :func:`bootstrap_ratio` (``n_boot`` resamples, the ``(1 − ci)/2`` and ``(1 + ci)/2`` quantiles).

    Parameters
    ----------
    results
        The runner's per-perturbation table: ``dataset``, ``seed``, ``model``, ``perturbation``, ``l2`` (and
        optionally ``split``, ``set``).
    reference
        The model whose L2 is the denominator (the paper: the mean baseline).

    Returns
    -------
    DataFrame
        One row per dataset (and split) and non-reference model: ``mean``, ``lower``, ``upper``, ``se``, ``n``.

    Examples
    --------
    >>> table = pd.DataFrame({"dataset": "d", "seed": 1, "model": ["mean", "mean", "linear", "linear"],
    ...                       "perturbation": ["A+ctrl", "B+ctrl"] * 2, "l2": [2.0, 4.0, 1.0, 3.0]})
    >>> forest_table(table, n_boot=100)[["dataset", "model", "mean", "n"]]
      dataset   model   mean  n
    0       d  linear  0.625  2
    """
    needed = ["dataset", "seed", "model", "perturbation", "l2"]
    missing = [c for c in needed if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks the columns {missing}; pass the runner's per-perturbation table.")
    table = results
    if "set" in table.columns:
        table = table[table["set"].isin(["test", "val"])]
    groups = ["dataset", "split"] if "split" in table.columns else ["dataset"]
    keys = [*groups, "seed", "perturbation"]
    if reference not in set(table["model"]):
        raise ValueError(
            f"The reference model {reference!r} is not in results (models: {sorted(set(table['model']))}); "
            "name one of them with reference=."
        )
    ref = table.loc[table["model"] == reference, [*keys, "l2"]]
    if ref.duplicated(keys).any():
        raise ValueError(f"The reference model {reference!r} has more than one row per {keys}.")
    paired = table[table["model"] != reference].merge(ref, on=keys, how="inner", suffixes=("", "_reference"))
    rows = []
    for (*group, model), part in paired.groupby([*groups, "model"], sort=True):
        stats = bootstrap_ratio(part["l2"].to_numpy(), part["l2_reference"].to_numpy(), n_boot=n_boot, seed=seed, ci=ci)
        rows.append({**dict(zip(groups, group)), "model": model, "reference": reference, **stats.to_dict()})
    columns = [*groups, "model", "reference", "mean", "lower", "upper", "se", "n"]
    out = pd.DataFrame(rows, columns=columns)
    out["n"] = out["n"].astype(np.int64)
    return out

"""Genetic interactions: the deviation of a double from the additive expectation, called with Efron's local fdr.

For every double ``A+B`` and read-out gene (spec §4): ``add = A + B − ctrl`` and ``dev = AB − add``. The deviations
of all pairs go through ``locfdr`` (empirical null, ``nulltype = 1``); the thresholds are the deviations whose local
fdr is closest to the level on each side, and a pair with ``dev`` beyond them is an interaction.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._conditions import CONTROL, parse_condition, require_one_row_each
from .._config import renamed

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

#: Observed interaction classes, in the order of the paper's Fig. 1e (``additive`` = no interaction).
OBSERVED_CLASSES = ("additive", "buffering", "synergy", "opposite", "other")
#: Classes of a predicted deviation (spec §4.5); ``other`` where the additive change is zero.
PREDICTED_CLASSES = ("buffering", "synergy", "opposite", "other")

DEVIATION_COLUMNS = ["perturbation", "gene", "ctrl", "single_a", "single_b", "observed", "additive", "deviation"]


@dataclass
class InteractionCalls:
    """What :func:`call_interactions` returns.

    Attributes
    ----------
    table
        One row per (double, read-out gene): the columns of :func:`additive_deviation` plus ``fdr`` (local fdr of the
        deviation), ``interaction`` (bool) and ``class`` (one of :data:`OBSERVED_CLASSES`).
    lower, upper
        The thresholds: a pair is an interaction when ``deviation < lower`` or ``deviation > upper``.
    locfdr
        The :class:`~linpert.interactions.LocfdrResult` of the fit.
    counts
        Number of pairs per class, in the order of :data:`OBSERVED_CLASSES`.
    missing_singles
        Doubles left out because a single was not measured, with the missing singles.
    level, rule
        The fdr level and threshold rule used.
    settings
        The locfdr options the fit used beyond R's defaults (``{}``: the paper's).
    fallback
        Why the paper's settings were not used (each failed fit, in order), or None when they were.
    """

    table: pd.DataFrame
    lower: float
    upper: float
    locfdr: Any
    counts: pd.Series
    missing_singles: dict[str, list[str]] = field(default_factory=dict)
    level: float = 0.05
    rule: str = "paper"
    settings: dict[str, Any] = field(default_factory=dict)
    fallback: str | None = None

    @property
    def n_interactions(self) -> int:
        return int(self.table["interaction"].sum())

    def __repr__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        return (
            f"InteractionCalls({len(self.table)} pairs, {self.n_interactions} interactions at fdr {self.level}; "
            f"thresholds ({self.lower:.3g}, {self.upper:.3g}); {counts})"
        )


@renamed(data="pb")
def additive_deviation(
    pb: AnnData, *, genes: Sequence[str] | Sequence[int] | None = None, n_genes: int = 1000
) -> pd.DataFrame:
    """Observed expression of every double against the additive expectation of its two singles.

    Parameters
    ----------
    pb
        A pseudobulk (see :func:`linpert.pseudobulk`) with ``ctrl``, singles ``A+ctrl`` and doubles ``A+B``.
    genes
        Read-out genes (names or column indices). Default: the ``n_genes`` highest control means
        (:func:`linpert.metrics.top_expressed_genes`, ties by first occurrence), highest first.
    n_genes
        Number of read-out genes when ``genes`` is not given.

    Returns
    -------
    pandas.DataFrame
        Columns ``perturbation, gene, ctrl, single_a, single_b, observed, additive, deviation``, doubles in the
        pseudobulk's order and genes in read-out order, with ``additive = single_a + single_b − ctrl`` and
        ``deviation = observed − additive``. Doubles whose singles are not both measured are left out with a warning
        and listed in ``attrs['missing_singles']`` (double → missing singles).

    Examples
    --------
    >>> import anndata, numpy as np, pandas as pd
    >>> names = ["ctrl", "A+B", "A+ctrl", "B+ctrl"]
    >>> X = np.array([[1.0, 2.0], [2.5, 2.0], [2.0, 2.0], [1.5, 2.0]])
    >>> pb = anndata.AnnData(X, obs=pd.DataFrame(index=pd.Index(names, name="condition")),
    ...                      var=pd.DataFrame(index=["g1", "g2"]))
    >>> additive_deviation(pb, genes=["g1"])[["perturbation", "gene", "additive", "deviation"]]
      perturbation gene  additive  deviation
    0          A+B   g1       2.5        0.0
    """
    from ..metrics import top_expressed_genes

    names = pd.Index(pb.obs_names)
    if CONTROL not in names:
        raise ValueError("The pseudobulk has no 'ctrl' row; linpert.pseudobulk() adds it from the control cells.")
    require_one_row_each(names)
    X = np.asarray(pb.X, dtype=np.float64)
    ctrl = X[names.get_loc(CONTROL)]
    columns = _gene_columns(pb, genes, top_expressed_genes(ctrl, n_genes=min(n_genes, pb.n_vars)))

    doubles, singles_a, singles_b, missing = [], [], [], {}
    for name in names:
        condition = parse_condition(name)
        if len(condition.genes) != 2:
            continue
        a, b = (f"{g}+{CONTROL}" for g in condition.genes)
        absent = [s for s in (a, b) if s not in names]
        if absent:
            missing[name] = absent
            continue
        doubles.append(name)
        singles_a.append(names.get_loc(a))
        singles_b.append(names.get_loc(b))
    if missing:
        warnings.warn(
            f"{len(missing)} double(s) left out because a single perturbation was not measured: "
            f"{_preview(missing)}. They are listed in attrs['missing_singles'].",
            stacklevel=3,
        )
    if not doubles:
        raise ValueError(
            "No double perturbation with both singles measured: genetic interactions need 'A+B', 'A+ctrl' and "
            "'B+ctrl'. Pass a pseudobulk of a combinatorial screen such as Norman et al. 2019."
        )

    rows = names.get_indexer(doubles)
    c = np.broadcast_to(ctrl[columns], (len(doubles), columns.size))
    a, b, ab = X[np.ix_(singles_a, columns)], X[np.ix_(singles_b, columns)], X[np.ix_(rows, columns)]
    additive = a + b - c
    table = pd.DataFrame(
        {
            "perturbation": np.repeat(np.asarray(doubles, dtype=object), columns.size),
            "gene": np.tile(np.asarray(pb.var_names[columns], dtype=object), len(doubles)),
            "ctrl": c.ravel(),
            "single_a": a.ravel(),
            "single_b": b.ravel(),
            "observed": ab.ravel(),
            "additive": additive.ravel(),
            "deviation": (ab - additive).ravel(),
        }
    )
    table.attrs["missing_singles"] = missing
    return table


@renamed(data="pb")
def call_interactions(
    pb: AnnData,
    *,
    n_genes: int = 1000,
    level: float = 0.05,
    rule: str = "paper",
    backend: str = "auto",
    locfdr_args: Mapping[str, Any] | None = None,
    fallback: bool = True,
) -> InteractionCalls:
    """Call genetic interactions as the paper does: local fdr of the deviations from additivity (spec §4.1–4.4).

    Parameters
    ----------
    pb
        A pseudobulk with ``ctrl``, singles and doubles; all doubles with both singles are used (the paper: 124).
    n_genes
        Read-out genes: the ``n_genes`` highest control means.
    level
        The local fdr level of the thresholds (the paper: 0.05).
    rule
        ``"paper"``: on each side, the deviation whose local fdr is closest to ``level``; ``"tail"``: the stricter
        threshold beyond which every deviation has fdr below ``level``. See :func:`thresholds`.
    backend
        Passed to :func:`locfdr` (``"auto"``, the Python port, or R's ``locfdr`` through rpy2).
    locfdr_args
        Options for :func:`locfdr` (``bre``, ``df``, ``pct``, ``pct0``, ``nulltype``, ...); the default is the
        paper's: R's defaults, ``nulltype = 1``.
    fallback
        When the default fit stops (locfdr fails on some histograms, as R's does), try :data:`LOCFDR_FALLBACKS` in
        order; the result says which options it used and why (``settings``, ``fallback``). Explicit
        ``locfdr_args`` are never replaced.

    Returns
    -------
    InteractionCalls
        The tidy table of calls and classes, the thresholds, the locfdr fit and the counts per class.

    Notes
    -----
    Classes follow spec §4.4 with ``add = A + B − ctrl``, ``dev = AB − add`` and
    ``same = sign(A − ctrl) == sign(B − ctrl) == sign(AB − ctrl)``: *synergy* when ``same`` and the deviation points
    away from ``ctrl`` (``ctrl < add`` and ``dev > upper``, or ``ctrl > add`` and ``dev < lower``), *buffering* when
    ``same`` and it points back towards ``ctrl``. The spec's *other* (every remaining interaction) is split in two:
    *opposite* where the singles agree in sign but ``AB − ctrl`` has the other sign (the paper's words), and *other*
    for the rest (the singles point different ways). So ``opposite + other`` equals the spec's ``other`` count
    (published: 1,396 of 5,035 interactions), and buffering and synergy are exactly the spec's.

    Examples
    --------
    >>> from linpert.interactions import call_interactions  # doctest: +SKIP
    >>> calls = call_interactions(linpert.pseudobulk(norman))  # doctest: +SKIP
    >>> calls.counts  # doctest: +SKIP
    """
    from anndata import AnnData

    if not isinstance(pb, AnnData):
        raise TypeError(
            f"call_interactions() takes a pseudobulk AnnData (ctrl, singles and doubles as obs_names), got "
            f"{type(pb).__name__}. Build one with linpert.pseudobulk(cells)."
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}; the paper uses 0.05.")
    table = additive_deviation(pb, n_genes=n_genes)
    missing = table.attrs.get("missing_singles", {})
    z = table["deviation"].to_numpy()
    if not np.isfinite(z).all():
        bad = table.loc[~np.isfinite(z)]
        first = bad.iloc[0]
        a, b = parse_condition(first["perturbation"]).genes
        rows = {"observed": first["perturbation"], "single_a": f"{a}+{CONTROL}", "single_b": f"{b}+{CONTROL}",
                "ctrl": CONTROL}
        culprit = next((f"its row {rows[c]} is {first[c]}" for c in rows if not np.isfinite(first[c])), "")
        raise ValueError(
            f"{len(bad)} deviations from additivity are NaN or infinite, in {bad['perturbation'].nunique()} doubles "
            f"(e.g. {first['perturbation']} on gene {first['gene']}: {culprit}); locfdr needs finite values. Give "
            "the pseudobulk finite values, or drop those conditions."
        )
    fit, settings, fallback = _fit_null(z, backend, locfdr_args, fallback)
    table, lower, upper, counts = classify_deviations(table, fit, level=level, rule=rule)
    return InteractionCalls(table, lower, upper, fit, counts, missing, level, rule, settings, fallback)


def classify_deviations(table: pd.DataFrame, fit, *, level: float = 0.05, rule: str = "paper"
                        ) -> tuple[pd.DataFrame, float, float, pd.Series]:
    """The calls of :func:`call_interactions` from a locfdr fit of ``table["deviation"]``: the thresholds at
    ``level``, each pair's ``fdr``, ``interaction`` and ``class``, and the counts per class.

    ``fit`` needs only ``fdr`` and ``center``: R's ``locfdr`` fit serves as well as the port's (the R package fits in
    R and classifies here). Returns ``(table, lower, upper, counts)``; a side without a threshold is ±inf.
    """
    from ._locfdr import thresholds

    z = table["deviation"].to_numpy(dtype=np.float64)
    lower, upper = thresholds(fit, z, level=level, rule=rule)
    # a side without a threshold has no interactions
    lower = -np.inf if lower is None else float(lower)
    upper = np.inf if upper is None else float(upper)
    if rule == "tail":
        # the tail rule's thresholds are themselves below the level, so they are calls: widen by one ulp
        lower, upper = float(np.nextafter(lower, np.inf)), float(np.nextafter(upper, -np.inf))
    table = table.copy()
    table["fdr"] = np.asarray(fit.fdr, dtype=np.float64)
    table["interaction"] = (z > upper) | (z < lower)
    table["class"] = classify_observed(
        table["ctrl"].to_numpy(),
        table["single_a"].to_numpy(),
        table["single_b"].to_numpy(),
        table["observed"].to_numpy(),
        lower=lower,
        upper=upper,
    )
    counts = table["class"].value_counts().reindex(OBSERVED_CLASSES, fill_value=0).astype(np.int64)
    return table, lower, upper, counts


#: What :func:`call_interactions` tries, in order, when locfdr with R's defaults (the paper's settings) stops on the
#: histogram: trim the histogram's range to the central 98 % (``pct``), so that heavy tails no longer squeeze the
#: centre, where the null is fitted, into a bin or two; then also use finer bins (``bre``).
LOCFDR_FALLBACKS: tuple[dict[str, Any], ...] = ({"pct": 0.01}, {"pct": 0.01, "bre": 500})


def _fit_null(z, backend: str, locfdr_args, fallback: bool):
    """The locfdr fit of ``z``, the options it used, and why the defaults were not used (None when they were)."""
    from ._locfdr import LocfdrError, locfdr

    attempts = [dict(locfdr_args or {})]
    if fallback and not locfdr_args:
        attempts += [dict(settings) for settings in LOCFDR_FALLBACKS]
    failures = []
    for settings in attempts:
        try:
            fit = locfdr(z, backend=backend, **settings)
        except (LocfdrError, np.linalg.LinAlgError) as err:
            failures.append(f"locfdr({_options(settings)}) failed: {str(err).splitlines()[0]}")
            continue
        return fit, settings, "; ".join(failures) or None
    raise LocfdrError(
        f"The empirical null could not be fitted: {'; '.join(failures)}. Pass other locfdr options, e.g. "
        "locfdr_args={'pct': 0.05, 'bre': 60} (the command line: --locfdr 'pct=0.05,bre=60')."
    )


def _options(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in settings.items()) or "R's defaults"


@renamed(ctrl="control")
def classify_observed(
    control: np.ndarray,
    single_a: np.ndarray,
    single_b: np.ndarray,
    observed: np.ndarray,
    *,
    lower: float,
    upper: float,
) -> np.ndarray:
    """Class of each observed (double, gene) pair: spec §4.4's rules, with *opposite* split from *other*.

    Examples
    --------
    >>> classify_observed(np.zeros(4), np.ones(4), np.ones(4), np.array([2.0, 1.0, 3.0, -1.0]), lower=-0.2, upper=0.2)
    array(['additive', 'buffering', 'synergy', 'opposite'], dtype=object)
    """
    control, a, b, ab = (np.asarray(v, dtype=np.float64) for v in (control, single_a, single_b, observed))
    add = a + b - control
    dev = ab - add
    sign_a, sign_b, sign_ab = np.sign(a - control), np.sign(b - control), np.sign(ab - control)
    agree = sign_a == sign_b
    same = agree & (sign_ab == sign_a)
    up, down = dev > upper, dev < lower
    synergy = same & (((control < add) & up) | ((control > add) & down))
    buffering = same & (((control < add) & down) | ((control > add) & up))
    interaction = up | down
    # the singles agree (and change something), but the double goes the other way from control
    opposite = interaction & agree & (sign_a != 0) & (sign_ab == -sign_a)
    out = np.full(ab.shape, "additive", dtype=object)
    out[interaction] = "other"
    out[opposite] = "opposite"
    out[buffering] = "buffering"
    out[synergy] = "synergy"
    return out


@renamed(ctrl="control")
def classify_prediction(control: np.ndarray, additive: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Class of a predicted value relative to control and the additive expectation (spec §4.5).

    With ``c = control``, ``a = additive`` and ``v = predicted``: *buffering* if ``v`` lies between ``c`` and ``a``
    (inclusive), *synergy* if beyond ``a``, away from ``c``, *opposite* if on the other side of ``c`` from ``a``.
    Where ``a == c`` the position is undefined and the class is *other*; a NaN prediction gives ``None``.

    Examples
    --------
    >>> classify_prediction(np.zeros(4), np.array([1.0, 1.0, -1.0, 0.0]), np.array([0.5, 2.0, 0.5, 1.0]))
    array(['buffering', 'synergy', 'opposite', 'other'], dtype=object)
    """
    c, a, v = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (control, additive, predicted)))
    span = a - c
    with np.errstate(divide="ignore", invalid="ignore"):
        position = (v - c) / span  # 0 at control, 1 at the additive expectation
    out = np.full(v.shape, None, dtype=object)
    out[position > 1] = "synergy"
    out[(position >= 0) & (position <= 1)] = "buffering"
    out[position < 0] = "opposite"
    out[(span == 0) & ~np.isnan(v)] = "other"
    return out


def _gene_columns(data, genes, default: np.ndarray) -> np.ndarray:
    if genes is None:
        return np.asarray(default, dtype=np.int64)
    genes = list(genes)
    if all(isinstance(g, (int, np.integer)) for g in genes):
        return np.asarray(genes, dtype=np.int64)
    index = pd.Index(data.var_names).get_indexer(genes)
    if (index < 0).any():
        unknown = [g for g, i in zip(genes, index) if i < 0]
        raise ValueError(f"Unknown read-out gene(s) {unknown[:5]}; pass names from data.var_names or column indices.")
    return index.astype(np.int64)


def _preview(missing: Mapping[str, list[str]], n: int = 5) -> str:
    items = [f"{d} (no {', '.join(s)})" for d, s in list(missing.items())[:n]]
    return "; ".join(items) + (" ..." if len(missing) > n else "")

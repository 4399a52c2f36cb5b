"""Figures of genetic interactions: TPR against FDP (Fig. 1c), precision-recall and ROC (ED Fig. 4), the observed
classes (Fig. 1e), predicted against observed deviation from additivity (Fig. 1f) and the locfdr histogram
(ED Fig. 3b).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._figures import _check_columns
from ._run import RunFolder, as_run
from ._style import (
    CLASS_COLOURS,
    PUBLISHED_COLOUR,
    PUBLISHED_SUFFIX,
    display_name,
    model_colours,
    model_order,
    new_figure,
    plain_log_ticks,
    thinned,
    tidy_axes,
)

Source = pd.DataFrame | RunFolder | str | os.PathLike


def _interaction_table(data: Source, name: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    run = as_run(data)
    table = run.interaction_table(name)
    if table is None:
        raise ValueError(
            f"{run.root} has no interactions/{name}: genetic interactions are scored for double-perturbation runs "
            "(split='double' with interactions=True)."
        )
    return table


# ---------------------------------------------------------------------------------------------------- TPR/FDP
def tpr_fdp(table: Source, *, title: str | None = None, published: pd.DataFrame | None | bool = None):
    """Recall of the observed interactions against the false discovery proportion, per model (Fig. 1c).

    ``table``: ``model, fdp, tpr`` averaged over seeds (``interactions/tpr_fdp.csv``) or a run folder.
    ``published``: the paper's curves to draw beside, dashed and in grey (:func:`linpert.published.interactions`
    ``("tpr_fdp")``); for a run folder on the paper's Norman data they are drawn unless ``False``.
    """
    silent = [] if isinstance(table, pd.DataFrame) else as_run(table).no_interactions
    if published is None and not isinstance(table, pd.DataFrame):
        published = as_run(table).published_interactions("tpr_fdp")
    table = _interaction_table(table, "tpr_fdp")
    _check_columns(table, ["model", "fdp", "tpr"], "tpr_fdp")
    models = model_order(table["model"].unique())
    colours = model_colours(models)
    fig, axes = new_figure(4.8, 4.0)
    ax = axes[0, 0]
    for model in models:
        part = table[table["model"] == model].sort_values("fdp", kind="stable")
        (line,) = ax.plot(part["fdp"], part["tpr"], color=colours[model], linewidth=2, label=display_name(model))
        line.set_gid(f"tpr:{model}")
    if isinstance(published, pd.DataFrame):
        for model in model_order(published["model"].unique()):
            part = published[published["model"] == model].sort_values("fdp", kind="stable")
            (line,) = ax.plot(part["fdp"], part["tpr"], color=PUBLISHED_COLOUR, linewidth=1, linestyle="--",
                              label=display_name(model) + PUBLISHED_SUFFIX)
            line.set_gid(f"published:{model}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false discovery proportion  FP / (FP + TP)")
    ax.set_ylabel("true positive rate  TP / (TP + FN)")
    ax.set_title(title or "Finding the observed interactions", fontsize=11)
    ax.legend(frameon=False, loc="upper left", fontsize=9)
    _note_silent(ax, silent)
    tidy_axes(ax)
    return fig


def _note_silent(ax, silent: list[str]) -> None:
    """Name the models that predict no interaction, which a ranking figure leaves out."""
    if silent:
        names = ", ".join(display_name(m) for m in silent)
        ax.text(0.99, 0.01, f"{names}: predicts no interactions (equal to the additive expectation), not ranked",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="#555555",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85})


# ---------------------------------------------------------------------------------------------------- PR / ROC
def ranking_curves(pairs: pd.DataFrame, *, max_points: int = 400) -> pd.DataFrame:
    """Precision-recall and ROC points per model and seed from interaction pairs, ranked as the paper ranks them.

    ``pairs`` is :func:`linpert.interactions.interaction_pairs`' table. Pairs are ordered by descending
    ``|predicted − additive|`` (NaN predictions left out but their interactions still count as positives), the same
    ranking :func:`linpert.interactions.auprc` and :func:`~linpert.interactions.roc_auc` integrate. At most
    ``max_points`` evenly spaced ranks (and the last) are kept per curve, enough to draw it.

    Returns
    -------
    DataFrame
        ``model, seed, recall, precision, fpr``.
    """
    from ..interactions import predicted_deviation, predicts_no_interactions

    parts = []
    pairs = pairs[~pairs["model"].isin(predicts_no_interactions(pairs))]
    for (model, seed), group in pairs.groupby(["model", "seed"], sort=False):
        labels = group["interaction"].to_numpy(bool)
        score = np.abs(predicted_deviation(group["predicted"].to_numpy(), group["additive"].to_numpy()))
        n_pos, n_neg = int(labels.sum()), int((~labels).sum())
        keep = ~np.isnan(score)
        ranked = labels[keep][np.argsort(-score[keep], kind="stable")]
        if n_pos == 0 or n_neg == 0 or ranked.size == 0:
            continue
        tp, fp = np.cumsum(ranked), np.cumsum(~ranked)
        # dense at the top of the ranking, where precision moves most; evenly spaced after
        at = np.unique(np.concatenate([np.geomspace(1, ranked.size, max_points // 2).astype(int) - 1,
                                       np.linspace(0, ranked.size - 1, max_points // 2).astype(int)]))
        parts.append(
            pd.DataFrame(
                {
                    "model": model,
                    "seed": seed,
                    "recall": np.append(0.0, tp[at] / n_pos),
                    "precision": np.append(1.0, tp[at] / (at + 1)),
                    "fpr": np.append(0.0, fp[at] / n_neg),
                }
            )
        )
    if not parts:
        raise ValueError("No model has both interactions and non-interactions among its pairs: nothing to rank.")
    return pd.concat(parts, ignore_index=True)


def precision_recall_roc(pairs: Source, auc_summary: pd.DataFrame | None = None, *, title: str | None = None):
    """Precision-recall and ROC curves per model (one thin line per seed), AUC ± SE in the legend (ED Fig. 4).

    Parameters
    ----------
    pairs
        :func:`linpert.interactions.interaction_pairs`' table, or a run folder (which gives both arguments).
    auc_summary
        ``interactions/auc_summary.csv`` (``model, metric, mean, se``): the legend's numbers.
    """
    if not isinstance(pairs, pd.DataFrame):
        run = as_run(pairs)
        auc_summary = _interaction_table(run, "auc_summary") if auc_summary is None else auc_summary
        pairs = run.pairs
        if pairs is None:
            raise ValueError(f"{run.root} has no interaction calls and predictions to draw curves from.")
    if auc_summary is None:
        raise ValueError("Pass auc_summary= (interactions/auc_summary.csv) for the legend's AUC ± SE.")
    from ..interactions import predicts_no_interactions

    silent = predicts_no_interactions(pairs)
    curves = ranking_curves(pairs)
    models = model_order(curves["model"].unique())
    colours = model_colours(models)
    auc = auc_summary.set_index(["model", "metric"])
    fig, axes = new_figure(9.2, 4.2, ncols=2)
    panels = (("auprc", "recall", "precision", "precision-recall"), ("roc_auc", "fpr", "recall", "ROC"))
    for ax, (metric, x, y, name) in zip(axes[0], panels):
        for model in models:
            part = curves[curves["model"] == model]
            mean, se = (auc.loc[(model, metric), ["mean", "se"]] if (model, metric) in auc.index else (np.nan, np.nan))
            label = f"{display_name(model)} ({mean:.2f} ± {se:.2f})"
            for i, (_, one) in enumerate(part.groupby("seed", sort=True)):
                one = one.iloc[1:] if metric == "auprc" else one  # the conventional (0, 1) start only integrates
                ax.plot(one[x], one[y], color=colours[model], linewidth=1.2, alpha=0.7, label=label if i == 0 else None)
        if metric == "roc_auc":
            ax.plot([0, 1], [0, 1], color="#888888", linestyle=":", linewidth=1)
            ax.set_xlabel("false positive rate  FP / (FP + TN)")
            ax.set_ylabel("true positive rate  TP / (TP + FN)")
        else:
            share = pairs.drop_duplicates(["seed", "perturbation", "gene"])["interaction"].mean()
            ax.axhline(share, color="#888888", linestyle=":", linewidth=1)
            ax.set_xlabel("recall  TP / (TP + FN)")
            ax.set_ylabel("precision  TP / (TP + FP)")
        ax.set_xlim(0, 1)
        top = 1.02 if metric == "roc_auc" else min(1.02, 1.15 * curves.loc[curves["recall"] > 0, "precision"].max())
        ax.set_ylim(0, top)
        ax.set_title(f"{name} (AUC ± SE over seeds)", fontsize=10)
        ax.legend(frameon=False, fontsize=8, loc="upper right" if metric == "auprc" else "lower right")
        tidy_axes(ax)
    _note_silent(axes[0, 0], silent)
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------------- classes
def interaction_classes(calls: Source | Mapping[str, int] | pd.Series, *, title: str | None = None):
    """How many observed (double, gene) pairs fall in each interaction class (Fig. 1e).

    ``calls``: ``interactions/calls.parquet`` (a ``class`` column), counts per class, or a run folder. The additive
    (non-interacting) pairs are counted in the title rather than drawn, so the interactions stay readable.
    """
    from ..interactions import OBSERVED_CLASSES

    if isinstance(calls, (pd.Series, Mapping)) and not isinstance(calls, pd.DataFrame):
        counts = pd.Series(dict(calls))
    else:
        table = _interaction_table(calls, "calls")
        _check_columns(table, ["class"], "interaction_classes")
        counts = table["class"].value_counts()
    counts = counts.reindex(OBSERVED_CLASSES, fill_value=0).astype(int)
    shown = [c for c in OBSERVED_CLASSES if c != "additive"]
    fig, axes = new_figure(4.6, 3.4)
    ax = axes[0, 0]
    bars = ax.bar(shown, counts[shown], color=[CLASS_COLOURS[c] for c in shown], zorder=2)
    for bar, value in zip(bars, counts[shown]):
        ax.annotate(f"{value:,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=9, xytext=(0, 2), textcoords="offset points")
        bar.set_gid(f"class:{bar.get_x()}")
    total = int(counts.sum())
    n_int = total - int(counts["additive"])
    ax.set_ylabel("(double, gene) pairs")
    ax.set_title(title or f"{n_int:,} interactions among {total:,} pairs\n({counts['additive']:,} additive)",
                 fontsize=10)
    ax.margins(y=0.12)
    tidy_axes(ax)
    ax.grid(False, axis="x")
    return fig


# ---------------------------------------------------------------------------------------------------- Fig. 1f
def deviation_scatter(
    pairs: Source, top: pd.DataFrame | None = None, *, thresholds: tuple[float, float] | None = None,
    title: str | None = None,
):
    """Observed against predicted deviation from the additive expectation, per model (Fig. 1f).

    Every (double, gene) pair is a small grey point; each model's top predictions (the pairs whose prediction
    departs most from additivity, :func:`linpert.interactions.top_predictions` as stored in ``top_classes.csv``)
    are drawn larger and coloured by their predicted class. Dashed lines mark the interaction thresholds.

    Parameters
    ----------
    pairs
        :func:`linpert.interactions.interaction_pairs`' table, or a run folder (which gives every argument).
    top
        ``interactions/top_classes.csv``: ``model, perturbation, gene, seed, predicted_class``.
    thresholds
        ``(lower, upper)`` of the observed calls.
    """
    if not isinstance(pairs, pd.DataFrame):
        run = as_run(pairs)
        top = _interaction_table(run, "top_classes") if top is None else top
        if thresholds is None and run.null is not None:
            thresholds = (run.null["lower"], run.null["upper"])
        pairs = run.pairs
    if pairs is None or top is None:
        raise ValueError("deviation_scatter needs the interaction pairs and the top predictions (top_classes.csv).")
    from ..interactions import predicts_no_interactions

    silent = predicts_no_interactions(pairs)
    models = model_order([m for m in pairs["model"].unique() if m not in silent])
    if not models:
        raise ValueError("No model predicts an interaction (every prediction equals the additive expectation).")
    fig, axes = new_figure(0.8 + 3.0 * len(models), 3.6, ncols=len(models), sharex=True, sharey=True)
    for ax, model in zip(axes[0], models):
        part = pairs[pairs["model"] == model]
        x, y = thinned(part["deviation"].to_numpy(), (part["predicted"] - part["additive"]).to_numpy())
        ax.scatter(x, y, s=2, color="#c8c8c8", linewidths=0, rasterized=True, zorder=1)
        best = top[top["model"] == model]
        for cls, group in best.groupby("predicted_class", sort=True):
            points = ax.scatter(group["deviation"], group["predicted_deviation"], s=12, linewidths=0, alpha=0.9,
                                color=CLASS_COLOURS.get(cls, "#333333"), label=f"{cls} ({len(group)})", zorder=3)
            points.set_gid(f"top:{model}:{cls}")
        if thresholds is not None:
            for t in thresholds:
                if np.isfinite(t):
                    ax.axvline(t, color="#555555", linestyle="--", linewidth=0.8)
        ax.axhline(0, color="#888888", linewidth=0.6)
        ax.set_title(display_name(model), fontsize=10)
        ax.set_xlabel("observed − additive")
        ax.legend(frameon=False, fontsize=7, loc="upper left", title=f"top {len(best)}", title_fontsize=7)
        tidy_axes(ax)
    axes[0, 0].set_ylabel("predicted − additive")
    _note_silent(axes[0, -1], silent)
    fig.suptitle(title or "Deviation from the additive expectation: observed vs predicted")
    return fig


# ---------------------------------------------------------------------------------------------------- ED Fig. 3b
def locfdr_histogram(
    deviation: Source | np.ndarray, null: Mapping[str, float] | None = None, *, bins: int = 120,
    title: str | None = None,
):
    """Histogram of the observed deviations from additivity, the fitted locfdr null and the thresholds (ED Fig. 3b).

    Each bar is split into the part the null expects (grey) and the excess over it (black). Counts below, between
    and beyond the thresholds are written at the top.

    Parameters
    ----------
    deviation
        The deviations (``calls.parquet``'s ``deviation``), or a run folder (which gives both arguments).
    null
        ``delta, sigma, p0`` of the null density ``p0 · N(delta, sigma²)`` and the thresholds ``lower, upper``.
    bins
        Histogram bins over the range of the data (locfdr's default is 120).
    """
    from ..interactions._locfdr import normal_pdf

    if isinstance(deviation, (pd.DataFrame, RunFolder, str, os.PathLike)):
        run = as_run(deviation) if not isinstance(deviation, pd.DataFrame) else None
        table = _interaction_table(deviation, "calls")
        null = run.null if null is None and run is not None else null
        deviation = table["deviation"].to_numpy(np.float64)
    if null is None:
        raise ValueError("Pass null= {'delta', 'sigma', 'p0', 'lower', 'upper'} (or a run folder).")
    z = np.asarray(deviation, dtype=np.float64)
    z = z[np.isfinite(z)]
    edges = np.linspace(z.min(), z.max(), bins + 1)
    counts, _ = np.histogram(z, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    expected = null["p0"] * z.size * width * normal_pdf(centres, null["delta"], null["sigma"])
    under = np.minimum(counts, expected)
    fig, axes = new_figure(6.4, 3.8)
    ax = axes[0, 0]
    ax.bar(centres, under, width=width, color="#b0b0b0", linewidth=0, label="expected under the null")
    ax.bar(centres, counts - under, bottom=under, width=width, color="#1a1a1a", linewidth=0, label="excess")
    grid = np.linspace(edges[0], edges[-1], 800)
    (curve,) = ax.plot(grid, null["p0"] * z.size * width * normal_pdf(grid, null["delta"], null["sigma"]),
                       color="#d62728", linewidth=1.4, label=f"null: N({null['delta']:.3f}, {null['sigma']:.3f}²)")
    curve.set_gid("null")
    lower, upper = null["lower"], null["upper"]
    for t in (lower, upper):
        if np.isfinite(t):
            ax.axvline(t, color="#1f77b4", linewidth=1.0)
    span = max(abs(lower) if np.isfinite(lower) else 0, abs(upper) if np.isfinite(upper) else 0, 4 * null["sigma"])
    ax.set_xlim(max(edges[0], -3 * span), min(edges[-1], 3 * span))
    ax.set_yscale("symlog", linthresh=10)
    plain_log_ticks(ax.yaxis)
    n_low, n_high = int((z < lower).sum()), int((z > upper).sum())
    ax.set_title(
        f"{n_low:,} below {lower:.3g}   ·   {z.size - n_low - n_high:,} between   ·   {n_high:,} above {upper:.3g}",
        fontsize=9,
    )
    ax.set_xlabel("observed − additive expectation")
    ax.set_ylabel("(double, gene) pairs (symlog)")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    tidy_axes(ax)
    if title:
        fig.suptitle(title)
    return fig

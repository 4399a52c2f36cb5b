"""Figures of prediction error: the beeswarms (Fig. 1a, 2a; ED Figs 2a, 8a), one perturbation up close (Fig. 1b),
the forest plot (Fig. 2c), L2 against n (ED Figs 2b, 8b), the spread of predictions (ED Fig. 7) and resources
(ED Fig. 10).

Each function takes the tables the runner writes (or a run folder) and returns a matplotlib Figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._config import renamed
from ._run import RunFolder, as_run
from ._style import (
    MEAN_COLOUR,
    PUBLISHED_COLOUR,
    PUBLISHED_SUFFIX,
    display_name,
    draw_swarm,
    model_colours,
    model_order,
    new_figure,
    plain_log_ticks,
    tidy_axes,
)

Source = pd.DataFrame | RunFolder | str | os.PathLike

_METRIC_LABELS = {
    "l2": "L2 distance to the observed profile",
    "pearson_delta": "Pearson delta",
    "r2": "Pearson correlation of expression",
}


def _table(data: Source, attribute: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    table = getattr(as_run(data), attribute)
    if table is None:
        raise ValueError(f"The run folder {as_run(data).root} has no {attribute} table to draw.")
    return table


def _check_columns(table: pd.DataFrame, needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{what} needs the columns {missing}; pass the runner's table (or its run folder).")


# ---------------------------------------------------------------------------------------------------- beeswarm
def beeswarm_l2(results: Source, *, metric: str = "l2", models: Sequence[str] | None = None, title: str | None = None,
                published: pd.DataFrame | None | bool = None):
    """Per-perturbation error per model as a beeswarm, the mean per model as a red line (Fig. 1a / 2a).

    The best model's mean (lowest L2; highest for a correlation) is extended across the panel as a dashed line.
    Several datasets get one panel each. The paper's published models can stand beside the run's, to the right of a
    dashed divider, in grey and labelled "(published)"; they never count as the best.

    Parameters
    ----------
    results
        The runner's per-perturbation table (``dataset, model, <metric>``) or a run folder.
    metric
        ``"l2"``, ``"pearson_delta"`` or ``"r2"``.
    models
        Which models, in which order (default: all, baselines first).
    published
        Published per-perturbation rows to draw beside (:func:`linpert.published.results`), or, for a run folder
        on one of the paper's datasets, ``None`` to draw them when the run stored its published summary (``False``:
        never).

    Examples
    --------
    >>> fig = beeswarm_l2("linpert-results/demo/double")  # doctest: +SKIP
    >>> fig.savefig("l2.png", dpi=150)  # doctest: +SKIP
    """
    from ..metrics._registry import higher_is_better

    if published is None and not isinstance(results, pd.DataFrame):
        published = as_run(results).published_results
    results = _table(results, "results")
    _check_columns(results, ["dataset", "model", metric], "beeswarm_l2")
    datasets = list(dict.fromkeys(results["dataset"]))
    models = list(models) if models is not None else model_order(results["model"].unique())
    colours = model_colours(models)
    ran = len(models)
    if isinstance(published, pd.DataFrame) and len(published):
        published = published[published["dataset"].isin(datasets)]
        marked = published.assign(model=published["model"] + PUBLISHED_SUFFIX)
        extra = model_order(published["model"].unique())
        models += [m + PUBLISHED_SUFFIX for m in extra]
        colours.update({m + PUBLISHED_SUFFIX: PUBLISHED_COLOUR for m in extra})
        results = pd.concat([results, marked[[c for c in results.columns if c in marked.columns]]], ignore_index=True)
    higher_better = higher_is_better(metric)
    fig, axes = new_figure(1.5 + 1.0 * len(models) * len(datasets), 4.2, ncols=len(datasets), sharey=True)
    finite = results[metric].to_numpy(np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise ValueError(f"No finite {metric} values to draw (e.g. Pearson delta is undefined for 'no_change').")
    pad = 0.05 * (finite.max() - finite.min() or 1.0)
    for ax, dataset in zip(axes[0], datasets):
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_ylim(finite.min() - pad, finite.max() + pad)
        ax.set_xticks(range(len(models)), [display_name(m) for m in models], rotation=30, ha="right")
        ax.set_title(dataset if len(datasets) > 1 else (title or dataset))
        tidy_axes(ax)
        ax.grid(False, axis="x")
    axes[0, 0].set_ylabel(_METRIC_LABELS.get(metric, metric))
    fig.draw_without_rendering()  # fix the layout first: the swarm is laid out in display units
    for ax, dataset in zip(axes[0], datasets):
        part = results[results["dataset"] == dataset]
        means = {}
        for i, model in enumerate(models):
            values = part.loc[part["model"] == model, metric].to_numpy(np.float64)
            draw_swarm(ax, i, values, colour=colours[model])
            if np.isfinite(values).any():
                means[model] = float(np.nanmean(values))
                line = ax.hlines(means[model], i - 0.42, i + 0.42, color=MEAN_COLOUR, linewidth=2.2, zorder=3)
                line.set_gid(f"mean:{model}")
            else:
                ax.text(i, ax.get_ylim()[0], "undefined", ha="center", va="bottom", fontsize=8, color="#555555")
        own = {m: v for m, v in means.items() if not m.endswith(PUBLISHED_SUFFIX)}
        if own:
            best = (max if higher_better else min)(own, key=own.get)
            line = ax.axhline(own[best], color=MEAN_COLOUR, linestyle="--", linewidth=1.0, alpha=0.8, zorder=1)
            line.set_gid(f"best:{best}")
        if len(models) > ran:
            divider = ax.axvline(ran - 0.5, color="#999999", linestyle=":", linewidth=1.0)
            divider.set_gid("published-divider")
    fig.set_layout_engine("none")  # keep the axes where the swarm was laid out
    return fig


def pearson_delta(results: Source, *, models: Sequence[str] | None = None, title: str | None = None,
                  published: pd.DataFrame | None | bool = None):
    """Pearson delta per perturbation and model as a beeswarm (ED Figs 2a / 8a); see :func:`beeswarm_l2`."""
    return beeswarm_l2(results, metric="pearson_delta", models=models, title=title, published=published)


# ---------------------------------------------------------------------------------------- one perturbation
@renamed(ctrl="control")
def observed_vs_predicted(
    predictions: Mapping[str, pd.Series] | RunFolder | str | os.PathLike,
    observed: pd.Series | None = None,
    control: pd.Series | None = None,
    *,
    perturbation: str | None = None,
    seed: int | None = None,
    change: bool = True,
):
    """Observed against predicted change (or expression) of one perturbation on the read-out genes (Fig. 1b).

    Parameters
    ----------
    predictions
        ``{model: Series over genes}`` of predicted expression; or a run folder, from which the first seed's
        predictions and the observed values are taken (``perturbation`` defaults to the one with the median L2 of
        the best model).
    observed, control
        Observed expression of the perturbation and the control profile, over the same genes (not needed with a
        run folder).
    change
        Draw the change from control (``predicted − control`` vs ``observed − control``, as Pearson delta sees it);
        else expression.

    The title of each panel gives the L2 distance and Pearson delta, computed by :mod:`linpert.metrics`.
    """
    from ..metrics import l2, pearson_delta as pearson

    if not isinstance(predictions, Mapping):
        predictions, observed, control, perturbation, seed = _one_perturbation(as_run(predictions), perturbation, seed)
    if observed is None or control is None:
        raise ValueError("Pass observed= and control= (Series over the genes) with a mapping of predictions.")
    models = model_order(predictions)
    colours = model_colours(models)
    fig, axes = new_figure(0.6 + 2.9 * len(models), 3.4, ncols=len(models), sharex=True, sharey=True)
    genes = observed.index
    obs = observed.to_numpy(np.float64)
    base = control.reindex(genes).to_numpy(np.float64)
    x = obs - base if change else obs
    for ax, model in zip(axes[0], models):
        pred = pd.Series(predictions[model]).reindex(genes).to_numpy(np.float64)
        y = pred - base if change else pred
        ax.scatter(x, y, s=6, color=colours[model], alpha=0.6, linewidths=0, zorder=2)
        lo = np.nanmin([np.nanmin(x), np.nanmin(y)])
        hi = np.nanmax([np.nanmax(x), np.nanmax(y)])
        ax.plot([lo, hi], [lo, hi], color="#555555", linestyle="--", linewidth=0.8, zorder=1)
        score = pearson(pred, obs, base)
        score_text = "n/a" if np.isnan(score) else f"{score:.2f}"
        ax.set_title(f"{display_name(model)}\nL2 = {l2(pred, obs):.2f}, Pearson Δ = {score_text}", fontsize=10)
        ax.set_xlabel("observed change" if change else "observed expression")
        tidy_axes(ax)
    axes[0, 0].set_ylabel("predicted change" if change else "predicted expression")
    suffix = f" (seed {seed})" if seed is not None else ""
    fig.suptitle(f"{perturbation or 'perturbation'}{suffix}: {len(genes)} read-out genes")
    return fig


def _one_perturbation(run: RunFolder, perturbation: str | None, seed: int | None):
    if run.observed is None:
        raise ValueError(f"{run.root} holds no observed values (observed.parquet, or interactions for doubles).")
    seeds = sorted({s for s, _ in run.prediction_files})
    seed = seeds[0] if seed is None else seed
    models = [m for s, m in run.prediction_files if s == seed]
    if perturbation is None:
        part = run.results[(run.results["seed"] == seed) & run.results["perturbation"].isin(run.observed.index)]
        means = part.groupby("model")["l2"].mean()
        best = part[part["model"] == means.idxmin()].dropna(subset=["l2"]).sort_values("l2", kind="stable")
        perturbation = best["perturbation"].iloc[(len(best) - 1) // 2]
    predictions = {}
    for model in models:
        pred, obs, ctrl = run.paired(seed, model)
        if perturbation in pred.index:
            predictions[model] = pred.loc[perturbation]
    genes = pred.columns
    return predictions, obs.loc[perturbation, genes], pd.Series(ctrl, index=genes), perturbation, seed


# ---------------------------------------------------------------------------------------------------- forest
def forest(table: Source, *, title: str | None = None, published: pd.DataFrame | None | bool = None):
    """Mean L2 ratio to the mean baseline with its 95 % bootstrap interval, on a log2 axis (Fig. 2c).

    ``table`` is :func:`linpert.metrics.forest_table`'s output (or a run folder). Each point's x is
    ``log2(mean)``; a model whose interval contains 1 (no difference to the baseline) is drawn faded. ``published``:
    the paper's per-perturbation results (:func:`linpert.published.results`), whose ratios to the paper's own mean
    baseline are drawn below the run's, in grey and marked; for a run folder on one of the paper's single-perturbation
    datasets they are drawn unless ``False``.
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from ..metrics import forest_table

    if published is None and not isinstance(table, pd.DataFrame):
        published = as_run(table).published_results
    table = _table(table, "forest")
    _check_columns(table, ["dataset", "model", "mean", "lower", "upper"], "forest")
    datasets = list(dict.fromkeys(table["dataset"]))
    models = model_order(table["model"].unique())
    colours = model_colours(["mean", *models])
    if isinstance(published, pd.DataFrame) and "mean" in set(published["model"]):
        theirs = forest_table(published[published["dataset"].isin(datasets)], reference="mean")
        theirs = theirs.assign(model=theirs["model"] + PUBLISHED_SUFFIX)
        models += model_order(theirs["model"].unique())
        colours.update({m: PUBLISHED_COLOUR for m in theirs["model"]})
        table = pd.concat([table, theirs], ignore_index=True)
    fig, axes = new_figure(1.6 + 3.4 * len(datasets), 1.6 + 0.42 * len(models), ncols=len(datasets), sharey=True)
    reference = display_name(str(table["reference"].iloc[0])) if "reference" in table else "Mean"
    spread = np.log2(table[["lower", "upper"]].to_numpy(np.float64))
    limit = max(0.25, float(np.nanmax(np.abs(spread))) * 1.15)
    for ax, dataset in zip(axes[0], datasets):
        part = table[table["dataset"] == dataset].set_index("model")
        for i, model in enumerate(models):
            if model not in part.index:
                continue
            row = part.loc[model]
            x, lo, hi = np.log2([row["mean"], row["lower"], row["upper"]])
            alpha = 0.35 if row["lower"] <= 1 <= row["upper"] else 1.0
            ax.plot([lo, hi], [i, i], color=colours[model], linewidth=2.5, alpha=alpha, solid_capstyle="round")
            (point,) = ax.plot([x], [i], "o", color=colours[model], markersize=7, alpha=alpha, zorder=3)
            point.set_gid(f"forest:{model}")
        ax.axvline(0.0, color="#555555", linewidth=0.9, linestyle="--", zorder=1)
        ax.set_xlim(-limit, limit)
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{2.0**t:.2f}×"))
        ax.set_yticks(range(len(models)), [display_name(m) for m in models])
        ax.set_ylim(len(models) - 0.5, -0.5)
        ax.set_xlabel(f"L2 ratio to the {reference.lower()} baseline (log2 axis)")
        ax.set_title(dataset if len(datasets) > 1 else (title or dataset))
        tidy_axes(ax)
    return fig


# ---------------------------------------------------------------------------------------------------- L2 by n
def l2_by_n(table: Source, *, n_genes: int | None = None, title: str | None = None,
            published: pd.DataFrame | None | bool = None):
    """Mean L2 over the top-n genes against n, genes by control expression and by change (ED Figs 2b/8b).

    ``table`` has ``model, order ('expression'/'de'), n, l2`` and optionally ``se`` (a band of ± one standard error)
    and ``genes`` (``all``, as the paper, or ``read-out``); a run folder gives it, over all genes. A dashed line
    marks ``n_genes``, the read-out genes of the other metrics (default: the largest n). ``published``: the paper's
    curves (:func:`linpert.published.l2_by_n`), drawn thin and grey; for a run folder on one of the paper's datasets
    they are drawn unless ``False``.
    """
    if published is None and not isinstance(table, pd.DataFrame):
        run = as_run(table)
        published = _published_l2_by_n(run.config.get("dataset")) if run.published("summary") is not None else None
    table = _table(table, "l2_by_n")
    _check_columns(table, ["model", "order", "n", "l2"], "l2_by_n")
    models = model_order(table["model"].unique())
    colours = model_colours(models)
    n_genes = int(table["n"].max()) if n_genes is None else n_genes
    genes = table["genes"].iloc[0] if "genes" in table and len(table) else "all"
    fig, axes = new_figure(8.4, 3.6, ncols=2, sharey=True)
    titles = {"expression": "genes ranked by control expression", "de": "genes ranked by observed change (uses truth)"}
    for ax, order in zip(axes[0], ("expression", "de")):
        part = table[table["order"] == order]
        for model in models:
            line = part[part["model"] == model].sort_values("n")
            (drawn,) = ax.plot(line["n"], line["l2"], color=colours[model], linewidth=1.8, label=display_name(model))
            drawn.set_gid(f"l2_by_n:{order}:{model}")
            if "se" in line and line["se"].notna().any():
                ax.fill_between(line["n"], line["l2"] - line["se"], line["l2"] + line["se"], color=colours[model],
                                alpha=0.18, linewidth=0)
        if isinstance(published, pd.DataFrame):
            for model, line in published[published["order"] == order].groupby("model", sort=True):
                (drawn,) = ax.plot(line["n"], line["l2"], color=PUBLISHED_COLOUR, linewidth=0.9, linestyle="--",
                                   label="the paper's models (published)")
                drawn.set_gid(f"published:{order}:{model}")
        ax.axvline(n_genes, color="#555555", linestyle="--", linewidth=0.9)
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis)
        ax.set_title(titles[order], fontsize=10)
        tidy_axes(ax)
    axes[0, 0].set_ylabel("mean L2 over the top n genes")
    fig.supxlabel(f"n, the number of genes ({genes} genes; dashed line: the read-out genes)", fontsize=10)
    handles = dict(zip(*reversed(axes[0, 0].get_legend_handles_labels())))  # label -> handle, each label once
    axes[0, 1].legend(list(handles.values()), list(handles), frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def _published_l2_by_n(dataset: str | None) -> pd.DataFrame | None:
    """The paper's curves of this dataset, in the columns of a run's (``order``: ``expression`` or ``de``)."""
    from ..published import DATASETS, l2_by_n

    if dataset not in DATASETS:
        return None
    curves = l2_by_n(dataset)
    return pd.DataFrame({"model": curves["model"], "order": curves["sorted_by"].map({"expr": "expression", "de": "de"}),
                         "n": curves["n"], "l2": curves["l2_mean"]})


# ---------------------------------------------------------------------------------------------------- spread
def prediction_spread(table: Source, *, title: str | None = None):
    """Histograms of the per-gene standard deviation across perturbations, per model and for the truth (ED Fig. 7).

    ``table``: ``model, seed, sd_pred, sd_obs`` per gene (:func:`linpert.metrics.prediction_spread` per model and
    seed; a run folder gives it). The red line marks the mean standard deviation of the observed values.
    """
    table = _table(table, "spread")
    _check_columns(table, ["model", "seed", "sd_pred", "sd_obs"], "prediction_spread")
    models = model_order(table["model"].unique())
    colours = model_colours(models)
    first = table[table["model"] == models[0]]  # the truth is the same for every model of a seed
    panels = [("ground_truth", first["sd_obs"].to_numpy(np.float64))]
    panels += [(m, table.loc[table["model"] == m, "sd_pred"].to_numpy(np.float64)) for m in models]
    truth_mean = float(np.nanmean(panels[0][1]))
    upper = np.nanmax(np.concatenate([v for _, v in panels]))
    bins = np.linspace(0.0, upper * 1.02 if upper > 0 else 1.0, 40)
    fig, axes = new_figure(8.0, 1.0 + 1.15 * len(panels), nrows=len(panels), sharex=True)
    for ax, (model, values) in zip(axes[:, 0], panels):
        colour = model_colours([model])[model] if model == "ground_truth" else colours[model]
        ax.hist(values[np.isfinite(values)], bins=bins, color=colour, alpha=0.85)
        line = ax.axvline(truth_mean, color=MEAN_COLOUR, linewidth=1.5)
        line.set_gid("truth_mean")
        ax.text(1.0, 0.9, f"{display_name(model)} (mean sd {np.nanmean(values):.3f})", transform=ax.transAxes,
                ha="right", va="top", fontsize=9)
        ax.set_ylabel("genes")
        tidy_axes(ax)
    axes[-1, 0].set_xlabel("standard deviation across perturbations, per gene")
    fig.suptitle(title or "How much predictions vary between perturbations")
    return fig


# ---------------------------------------------------------------------------------------------------- resources
def resources(timings: Source, *, title: str | None = None):
    """Elapsed time (fit + predict, log axis) and peak memory per model, one point per seed (ED Fig. 10)."""
    timings = _table(timings, "timings")
    _check_columns(timings, ["model", "fit_seconds", "predict_seconds", "peak_mib"], "resources")
    models = model_order(timings["model"].unique())
    colours = model_colours(models)
    fig, axes = new_figure(1.8 + 1.5 * len(models), 3.6, ncols=2)
    values = {
        "seconds": timings["fit_seconds"] + timings["predict_seconds"],
        "peak_mib": timings["peak_mib"],
    }
    labels = {"seconds": "elapsed time to fit and predict (s)", "peak_mib": "peak memory (MiB, Python allocations)"}
    rng = np.random.default_rng(0)  # jitter only: the points of the seeds side by side
    for ax, key in zip(axes[0], ("seconds", "peak_mib")):
        for i, model in enumerate(models):
            v = values[key][timings["model"] == model].to_numpy(np.float64)
            (drawn,) = ax.plot(i + rng.uniform(-0.12, 0.12, v.size), v, "o", color=colours[model], alpha=0.8)
            drawn.set_gid(f"{key}:{model}")
        if key == "seconds":
            ax.set_yscale("log")
            plain_log_ticks(ax.yaxis)
        ax.set_xticks(range(len(models)), [display_name(m) for m in models], rotation=30, ha="right")
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_ylabel(labels[key])
        tidy_axes(ax)
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------------- scorecard
def scorecard_heatmap(table: Source, *, title: str | None = None):
    """Models as rows, metrics as columns: each cell the model's mean, coloured by its rank in the column (1 best,
    0 worst, whichever way the metric points), so that one glance shows whether a model wins on every lens.

    ``table`` is :func:`linpert.metrics.scorecard`'s output or a run folder. The best model per column is starred.
    """
    from ..metrics._registry import higher_is_better, metric_columns

    table = _table(table, "scorecard")
    metrics = [m for m in metric_columns(table) if table[m].notna().any()]
    if not metrics:
        raise ValueError("The scorecard has no metric with a value to draw.")
    table = table.set_index("model").loc[model_order(table["model"])]
    higher = np.array([higher_is_better(m) for m in metrics])
    values = table[metrics].to_numpy(np.float64)
    ranks = pd.DataFrame(np.where(higher, values, -values)).rank(pct=True, method="average").to_numpy()
    fig, axes = new_figure(1.8 + 0.95 * len(metrics), 1.2 + 0.45 * len(table))
    ax = axes[0, 0]
    image = ax.imshow(np.where(np.isfinite(values), ranks, np.nan), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    image.set_gid("scorecard")
    for (i, j), value in np.ndenumerate(values):
        best = np.isfinite(value) and value == (np.nanmax if higher[j] else np.nanmin)(values[:, j])
        ax.text(j, i, f"{value:.3g}{' *' if best else ''}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(metrics)), metrics, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(table)), [display_name(m) for m in table.index])
    ax.set_title(title or "Every lens: mean per model (colour: rank in the column, green best; * best)", fontsize=10)
    return fig

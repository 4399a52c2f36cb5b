"""The paper's Extended Data figures that look at the data and the interactions up close: the dataset overview
(ED Fig. 1), the QQ plot of the deviations from additivity (ED Fig. 3a), predictions of chosen genes across the doubles
(ED Fig. 6), the transfer model against the difference between the cell lines (ED Fig. 9), and the mosaic of the top
predictions' classes (Fig. 1f, bottom).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .._conditions import CONTROL
from ._run import RunFolder, as_run
from ._style import CLASS_COLOURS, display_name, model_order, new_figure, thinned, tidy_axes

Source = RunFolder | str | os.PathLike
_KIND_COLOURS = {"single": "#0072b2", "double": "#e69f00", "control": "#d62728"}


# ---------------------------------------------------------------------------------------------------- ED Fig. 1
def embed_2d(profiles: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, str]:
    """Two coordinates per profile: UMAP (umap-learn, as the paper) when installed, else the first two principal
    components; and the method's name for the axis labels."""
    import warnings

    from .._compiled import cache_on_disk, configured_numba

    configured_numba()  # umap-learn's numba code on the workqueue layer: OpenMP's would make a later fork() abort
    centred = profiles - profiles.mean(axis=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # umap-learn warns at import that its TensorFlow variant is unavailable
            import umap
        cache_on_disk("umap", "pynndescent")
    except ImportError:
        u, d, _ = np.linalg.svd(centred, full_matrices=False)
        return u[:, :2] * d[:2], "PC"
    neighbours = max(2, min(15, len(profiles) - 1))
    reducer = umap.UMAP(n_neighbors=neighbours, random_state=seed, n_jobs=1)
    return reducer.fit_transform(centred), "UMAP"


def dataset_overview(run: Source, *, labelled: int = 8, seed: int = 0):
    """The data of a run: its size (a table) and the perturbations' mean profiles in two dimensions, the control in
    red and a few perturbations named (Extended Data Fig. 1a, b).

    The profiles are the observed means over the read-out genes (``observed.parquet``); the map is UMAP with
    umap-learn installed (``pip install 'linpert[umap]'``), else the first two principal components, as the axes say.
    """
    run = as_run(run)
    observed, conditions = run.observed, run.conditions
    if observed is None or conditions is None:
        raise ValueError(f"{run.root} has no observed.parquet and conditions.csv: the overview needs both.")
    kinds = conditions["kind"].reindex(observed.index).fillna("single")
    cells = conditions["n_cells"]
    coords, method = embed_2d(observed.to_numpy(np.float64), seed=seed)

    fig, axes = new_figure(10.4, 4.4, ncols=2, gridspec_kw={"width_ratios": [1, 1.5]})
    table_ax, map_ax = axes[0]
    rows = [("dataset", run.config.get("dataset", "")), ("genes", f"{run.config.get('genes', observed.shape[1]):,}"),
            ("read-out genes", f"{observed.shape[1]:,}"), ("cells", f"{int(cells.sum()):,}")]
    rows += [(f"{kind} conditions", f"{int((conditions['kind'] == kind).sum()):,}")
             for kind in ("control", "single", "double") if (conditions["kind"] == kind).any()]
    rows += [("cells per perturbation (median)", f"{int(cells[conditions['kind'] != 'control'].median()):,}")]
    table_ax.axis("off")
    drawn = table_ax.table(cellText=[[v] for _, v in rows], rowLabels=[k for k, _ in rows], loc="center",
                           colWidths=[0.5], edges="horizontal")
    drawn.scale(1.0, 1.6)
    drawn.set_gid("dataset-table")
    table_ax.set_title("a  the data", loc="left", fontsize=11)

    for kind in ("single", "double", "control"):
        at = (kinds == kind).to_numpy()
        if at.any():
            size = 60 if kind == "control" else 12
            points = map_ax.scatter(coords[at, 0], coords[at, 1], s=size, color=_KIND_COLOURS[kind], linewidths=0,
                                    alpha=0.9 if kind == "control" else 0.6, label=kind, zorder=3 if kind == "control"
                                    else 2)
            points.set_gid(f"overview:{kind}")
    rng = np.random.default_rng(seed)
    perturbed = np.flatnonzero((kinds != "control").to_numpy())
    for i in rng.choice(perturbed, size=min(labelled, perturbed.size), replace=False):
        map_ax.annotate(observed.index[i], coords[i], fontsize=7, xytext=(3, 3), textcoords="offset points")
    control = np.flatnonzero(observed.index == CONTROL)
    if control.size:
        map_ax.annotate("control", coords[control[0]], fontsize=8, color=_KIND_COLOURS["control"], xytext=(4, -10),
                        textcoords="offset points")
    map_ax.set_xlabel(f"{method} 1")
    map_ax.set_ylabel(f"{method} 2")
    map_ax.set_title(f"b  the conditions' mean profiles ({method})", loc="left", fontsize=11)
    map_ax.legend(frameon=True, framealpha=0.85, edgecolor="none", fontsize=8, loc="best")
    tidy_axes(map_ax)
    return fig


# ---------------------------------------------------------------------------------------------------- ED Fig. 3a
def deviation_qq(run: Source, *, points: int = 2000):
    """Quantiles of the deviations from the additive expectation against the standard normal's (ED Fig. 3a).

    The line is the fitted locfdr null, ``delta + sigma · z``: its slope is the null's standard deviation, and the
    tails that leave it are the interactions. ``points`` quantiles are drawn (every one in the outer 1 %).
    """
    from scipy.special import ndtri

    run = as_run(run)
    calls, null = run.interaction_table("calls"), run.null
    if calls is None or null is None:
        raise ValueError(f"{run.root} has no interactions/calls.parquet: the QQ plot needs the interaction calls.")
    z = np.sort(calls["deviation"].to_numpy(np.float64))
    z = z[np.isfinite(z)]
    n = z.size
    tails = max(1, n // 100)
    at = np.unique(np.concatenate([np.arange(tails), np.linspace(0, n - 1, points).astype(int),
                                   np.arange(n - tails, n)]))
    theoretical = ndtri((at + 0.5) / n)
    fig, axes = new_figure(4.8, 4.4)
    ax = axes[0, 0]
    outside = (z[at] < null["lower"]) | (z[at] > null["upper"])
    ax.scatter(theoretical[~outside], z[at][~outside], s=5, color="#7f7f7f", linewidths=0, label="within thresholds")
    ax.scatter(theoretical[outside], z[at][outside], s=5, color="#1a1a1a", linewidths=0, label="interactions")
    grid = np.array([theoretical.min(), theoretical.max()])
    (line,) = ax.plot(grid, null["delta"] + null["sigma"] * grid, color="#d62728", linewidth=1.2,
                      label=f"fitted null: slope σ = {null['sigma']:.3f}")
    line.set_gid("null-line")
    ax.set_xlabel("standard normal quantile")
    ax.set_ylabel("observed − additive, quantile")
    ax.set_title(f"Deviations from additivity ({n:,} pairs)", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    tidy_axes(ax)
    return fig


# ---------------------------------------------------------------------------------------------------- ED Fig. 6
def chosen_genes(pairs: pd.DataFrame, n: int = 2) -> list[str]:
    """The ``n`` read-out genes with the most observed interactions among the scored doubles (ties: name order)."""
    per_gene = pairs.drop_duplicates(["perturbation", "gene"]).groupby("gene")["interaction"].sum()
    return list(per_gene.sort_index().sort_values(ascending=False, kind="stable").index[:n])


def gene_predictions(run: Source, genes: list[str] | None = None, *, seed: int | None = None):
    """Predicted and observed expression of chosen genes across the scored doubles of one seed (ED Fig. 6).

    One panel per gene and model: each double is a column, ordered by observed expression; the grey box is the
    range the calls count as additive (additive expectation plus the lower and upper thresholds), the point the
    observed value coloured by its interaction class, the black square the model's prediction, and the grey line
    the control. ``genes``: default the two with the most observed interactions; ``seed``: default the first.
    """
    run = as_run(run)
    pairs, null = run.pairs, run.null
    if pairs is None or null is None:
        raise ValueError(f"{run.root} has no interaction calls and predictions: the figure needs both.")
    seed = int(pairs["seed"].min()) if seed is None else seed
    pairs = pairs[pairs["seed"] == seed]
    genes = chosen_genes(pairs) if genes is None else list(genes)
    missing = [g for g in genes if g not in set(pairs["gene"])]
    if missing:
        raise ValueError(f"Genes {missing} are not read-out genes of this run; choose among its "
                         f"{pairs['gene'].nunique()}.")
    models = model_order(pairs["model"].unique())
    fig, axes = new_figure(0.9 + 3.2 * len(models), 0.6 + 2.6 * len(genes), nrows=len(genes), ncols=len(models),
                           sharey="row")
    for r, gene in enumerate(genes):
        for c, model in enumerate(models):
            ax = axes[r, c]
            part = pairs[(pairs["gene"] == gene) & (pairs["model"] == model)].sort_values("observed", kind="stable")
            x = np.arange(len(part))
            ax.bar(x, null["upper"] - null["lower"], bottom=part["additive"] + null["lower"], width=0.8,
                   color="#e6e6e6", linewidth=0)
            colours = [CLASS_COLOURS.get(cls, "#333333") for cls in part["class"]]
            ax.scatter(x, part["observed"], s=14, c=colours, linewidths=0, zorder=3)
            marks = ax.scatter(x, part["predicted"], s=14, marker="s", facecolors="none", edgecolors="#1a1a1a",
                               linewidths=0.9, zorder=4)
            marks.set_gid(f"predicted:{gene}:{model}")
            ax.axhline(part["ctrl"].iloc[0] if len(part) else np.nan, color="#888888", linewidth=0.8)
            ax.set_xticks([])
            ax.set_title(f"{gene} · {display_name(model)}", fontsize=9)
            tidy_axes(ax)
        axes[r, 0].set_ylabel("expression")
    for c in range(len(models)):
        axes[-1, c].set_xlabel(f"scored doubles, seed {seed}")
    handles = [axes[0, 0].scatter([], [], s=14, color=colour, label=cls) for cls, colour in CLASS_COLOURS.items()]
    handles.append(axes[0, 0].scatter([], [], s=14, marker="s", facecolors="none", edgecolors="#1a1a1a",
                                      label="prediction"))
    axes[0, -1].legend(handles=handles, frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


# ---------------------------------------------------------------------------------------------------- ED Fig. 9
def transfer_error(run: Source, model: str | None = None):
    """How the difference between two cell lines limits transfer (Extended Data Fig. 9).

    For a model that learns from another dataset (:class:`linpert.models.TransferModel`; the runner keeps that
    dataset's control profile): (a) the control expression of the shared read-out genes in both, (b) the absolute
    prediction error per read-out gene against that gene's difference between the lines, (c) the Pearson delta per
    perturbation against the difference of its target gene. Straight lines are least-squares fits.
    """
    run = as_run(run)
    models = [m for m in run.results["model"].unique() if run.reference_control(m) is not None]
    model = models[0] if model is None and models else model
    reference = run.reference_control(model) if model is not None else None
    if reference is None or run.observed is None:
        raise ValueError(f"{run.root} has no model that learned from another dataset (linpert.models.TransferModel).")
    observed = run.observed
    ctrl = observed.loc[CONTROL]
    shared = [g for g in observed.columns if g in reference.index]
    difference = (ctrl[shared] - reference[shared]).rename("difference")
    fig, axes = new_figure(12.0, 3.9, ncols=3)
    a, b, c = axes[0]
    a.scatter(reference[shared], ctrl[shared], s=6, color="#0072b2", linewidths=0)
    low, high = np.nanmin([reference[shared].min(), ctrl[shared].min()]), np.nanmax([reference[shared].max(),
                                                                                    ctrl[shared].max()])
    a.plot([low, high], [low, high], color="#555555", linestyle="--", linewidth=0.9)
    a.set_xlabel("control expression, the other dataset")
    a.set_ylabel("control expression, this dataset")
    a.set_title("a  the two controls", loc="left", fontsize=10)

    errors = []
    for (seed, label), pred in run.predictions.items():
        if label != model:
            continue
        rows = [p for p in pred.index if p in observed.index]
        error = (pred.loc[rows, shared] - observed.loc[rows, shared]).abs()
        errors.append(error.melt(var_name="gene", value_name="error").dropna())
    error = pd.concat(errors, ignore_index=True).join(difference, on="gene")
    x, y = thinned(error["difference"].to_numpy(), error["error"].to_numpy())
    b.scatter(x, y, s=3, color="#7f7f7f", linewidths=0, rasterized=True)
    _fit_line(b, error["difference"].to_numpy(), error["error"].to_numpy())
    b.set_xlabel("difference of the gene's control expression")
    b.set_ylabel("absolute prediction error")
    b.set_title("b  error per read-out gene", loc="left", fontsize=10)

    scores = run.results[run.results["model"] == model].copy()
    scores["target"] = scores["perturbation"].str.split("+").str[0]
    scores = scores.join(difference.rename("target_difference"), on="target").dropna(
        subset=["target_difference", "pearson_delta"])
    points = c.scatter(scores["target_difference"], scores["pearson_delta"], s=10, color="#009e73", linewidths=0)
    points.set_gid(f"transfer:{model}")
    _fit_line(c, scores["target_difference"].to_numpy(), scores["pearson_delta"].to_numpy())
    c.set_xlabel("difference of the target's control expression")
    c.set_ylabel("Pearson delta")
    c.set_title("c  per perturbation (read-out targets)", loc="left", fontsize=10)
    for ax in axes[0]:
        tidy_axes(ax)
    fig.suptitle(f"{display_name(model)}: transfer between the two datasets", fontsize=11)
    return fig


def _fit_line(ax, x: np.ndarray, y: np.ndarray) -> None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    grid = np.array([x[ok].min(), x[ok].max()])
    ax.plot(grid, intercept + slope * grid, color="#1f77b4", linewidth=1.2, label=f"slope {slope:.2f}")
    ax.legend(frameon=False, fontsize=8)


# ---------------------------------------------------------------------------------------------------- Fig. 1f mosaic
def class_mosaic(run: Source):
    """For each model, its top predictions (``top_classes.csv``) by predicted class (bar widths: how many) and, within
    each bar, the share of each observed class (Fig. 1f, bottom): a model that finds interactions has tall bars of
    its own colour."""
    run = as_run(run)
    top = run.interaction_table("top_classes")
    if top is None or not len(top):
        raise ValueError(f"{run.root} has no interactions/top_classes.csv with rows: no model's calls to show.")
    models = model_order(top["model"].unique())
    fig, axes = new_figure(0.6 + 2.6 * len(models), 3.4, ncols=len(models), sharey=True)
    observed_classes = [c for c in CLASS_COLOURS if c in set(top["observed_class"])]
    for ax, model in zip(axes[0], models):
        part = top[top["model"] == model]
        counts = pd.crosstab(part["predicted_class"], part["observed_class"]).reindex(columns=observed_classes,
                                                                                       fill_value=0)
        widths = counts.sum(axis=1) / counts.to_numpy().sum()
        left = 0.0
        for predicted, row in counts.iterrows():
            bottom = 0.0
            for observed, value in row.items():
                height = value / row.sum()
                bar = ax.bar(left, height, width=widths[predicted], bottom=bottom, align="edge",
                             color=CLASS_COLOURS.get(observed, "#333333"), edgecolor="white", linewidth=0.8)
                bar[0].set_gid(f"mosaic:{model}:{predicted}:{observed}")
                bottom += height
            narrow = widths[predicted] < 0.15  # a narrow bar's label stands upright, so that labels never overlap
            ax.text(left + widths[predicted] / 2, 1.02, f"{predicted} ({row.sum()})" if narrow else
                    f"{predicted}\n({row.sum()})", ha="center", va="bottom", fontsize=6 if narrow else 7,
                    rotation=90 if narrow else 0)
            left += widths[predicted]
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.4)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_xticks([])
        ax.set_xlabel(f"{display_name(model)}: predicted class", fontsize=9)
        tidy_axes(ax)
    axes[0, 0].set_ylabel("share of the observed class")
    handles = [axes[0, 0].bar(0, 0, color=CLASS_COLOURS[c], label=c) for c in observed_classes]
    axes[0, -1].legend(handles=handles, frameon=False, fontsize=7, title="observed", title_fontsize=7,
                       loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig

"""What every figure shares: the model colours and display names, a beeswarm layout, and a fresh Agg figure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: Display names of the models the package registers; any other label is shown as it is.
DISPLAY_NAMES = {
    "no_change": "No change",
    "additive": "Additive",
    "mean": "Mean",
    "linear": "Linear model",
    "ground_truth": "Ground truth",
}
#: Fixed colours of the baselines (so 'Additive' looks the same in every figure and every run).
_FIXED_COLOURS = {
    "no_change": "#7f7f7f",
    "additive": "#e69f00",
    "mean": "#9467bd",
    "linear": "#0072b2",
    "ground_truth": "#222222",
}
#: Colours for any other model, handed out in order of first appearance (Okabe–Ito, then tab10).
_EXTRA_COLOURS = ["#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#8c564b", "#17becf", "#bcbd22", "#e377c2"]
#: Interaction classes (observed and predicted), as the paper colours them.
CLASS_COLOURS = {
    "additive": "#bdbdbd",
    "buffering": "#4c72b0",
    "synergy": "#dd8452",
    "opposite": "#55a868",
    "other": "#8172b3",
}
MEAN_COLOUR = "#d62728"
#: The paper's published models, drawn beside a run's: in grey, their label marked.
PUBLISHED_COLOUR, PUBLISHED_SUFFIX = "#9a9a9a", " (published)"


def display_name(model: str) -> str:
    """The label a reader sees for a model: ``'linear'`` → ``'Linear model'``; unknown labels are kept.

    Examples
    --------
    >>> display_name("no_change"), display_name("lm_scgpt")
    ('No change', 'lm_scgpt')
    """
    if model.endswith(PUBLISHED_SUFFIX):
        return display_name(model.removesuffix(PUBLISHED_SUFFIX)) + PUBLISHED_SUFFIX
    return DISPLAY_NAMES.get(model, model)


def model_colours(models: Iterable[str]) -> dict[str, str]:
    """A colour per model: fixed ones for the baselines, the others in order, the same order giving the same colours.

    Examples
    --------
    >>> model_colours(["linear", "gears"])
    {'linear': '#0072b2', 'gears': '#009e73'}
    """
    out, extra = {}, iter(_EXTRA_COLOURS * 4)
    for model in dict.fromkeys(models):
        out[model] = _FIXED_COLOURS.get(model) or next(extra)
    return out


def model_order(models: Iterable[str]) -> list[str]:
    """Models in a reading order: the baselines first (no change, additive, mean), then the rest as given."""
    models = list(dict.fromkeys(models))
    first = [m for m in ("no_change", "additive", "mean") if m in models]
    return first + [m for m in models if m not in first]


def new_figure(width: float, height: float, *, nrows: int = 1, ncols: int = 1, **kwargs):
    """A matplotlib Figure on the Agg canvas (never a GUI window, never pyplot's global state) and its axes array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def tidy_axes(ax) -> None:
    """Light axes: no top/right spines, a faint grid behind the data."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e5e5e5", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)


def plain_log_ticks(axis) -> None:
    """Label a log (or symlog) axis's ticks as plain numbers (10, 100, 1,000), not matplotlib's 10ⁿ in mathtext,
    whose parser took a second of every run's figures."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.10g}"))
    axis.set_minor_formatter(NullFormatter())


def thinned(x: np.ndarray, y: np.ndarray, *, cells: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """The points of a dense cloud that show: one (the first) per occupied cell of a ``cells`` × ``cells`` grid over
    the points' range, finer than the pixels of a figure's panel. Tiny opaque points of one colour look the same, and
    drawing a million of them (the interaction pairs) cost seconds."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) <= cells:
        return x, y
    grid = lambda v: np.floor((v - v.min()) / (np.ptp(v) or 1.0) * (cells - 1)).astype(np.int64)
    _, first = np.unique(grid(x) * cells + grid(y), return_index=True)
    first.sort()  # drawn in the data's order, as before
    return x[first], y[first]


def swarm_offsets(y: Sequence[float], *, diameter: float) -> np.ndarray:
    """Horizontal offsets that lay points at heights ``y`` side by side without overlap (a beeswarm).

    ``y`` and ``diameter`` are in the same (display) units. Points are placed from the lowest up; each goes to the
    free position closest to the centre line, touching the points already placed, as seaborn's swarm plot does.

    Examples
    --------
    >>> swarm_offsets([0.0, 0.0, 0.0], diameter=1.0).tolist()
    [0.0, 1.0, -1.0]
    """
    y = np.asarray(y, dtype=np.float64)
    out = np.zeros(y.size)
    order = np.argsort(y, kind="stable")
    placed_y, placed_x = np.empty(y.size), np.empty(y.size)
    n_placed = 0
    start = 0  # first placed point that can still be within one diameter (placed y only grows)
    for i in order:
        while start < n_placed and y[i] - placed_y[start] >= diameter:
            start += 1
        ny, nx = placed_y[start:n_placed], placed_x[start:n_placed]
        dy = y[i] - ny
        reach = np.sqrt(np.maximum(diameter**2 - dy**2, 0.0))
        candidates = np.concatenate([[0.0], nx + reach, nx - reach])
        candidates = candidates[np.argsort(np.abs(candidates), kind="stable")]
        overlaps = ((candidates[:, None] - nx) ** 2 + dy**2 < diameter**2 * (1 - 1e-9)).any(axis=1)
        free = np.flatnonzero(~overlaps)
        x = candidates[free[0] if free.size else -1]  # the nearest free one (or, with none, the last tried)
        out[i] = x
        placed_y[n_placed], placed_x[n_placed] = y[i], x
        n_placed += 1
    return out


def draw_swarm(ax, position: float, values: np.ndarray, *, colour: str, size: float = 9.0, width: float = 0.8):
    """Draw ``values`` as a beeswarm centred at x = ``position``; the axes limits must already be final.

    ``size`` is the marker area (pt²); offsets wider than ``width`` (in x units) are squeezed to fit, so a crowded
    swarm overlaps rather than spilling into its neighbour.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    dpi = ax.figure.dpi
    diameter = np.sqrt(size) * dpi / 72.0 * 1.05  # marker diameter in pixels, with a hair of space
    pixels = ax.transData.transform(np.column_stack([np.full(values.size, position), values]))
    offsets = swarm_offsets(pixels[:, 1], diameter=diameter)
    x0, x1 = ax.get_xlim()
    per_unit = ax.get_window_extent().width / (x1 - x0)  # pixels per x unit
    dx = offsets / per_unit
    if np.abs(dx).max(initial=0) > width / 2:
        dx *= (width / 2) / np.abs(dx).max()
    return ax.scatter(position + dx, values, s=size, color=colour, linewidths=0, alpha=0.85, zorder=2)

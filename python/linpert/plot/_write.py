"""Which figures a run folder supports, and writing them (PNG + SVG) atomically to ``<run>/figures/``."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .._threads import threads
from .._io import atomic_write, newest_change
from ..metrics._registry import beyond_the_paper
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
from ._extended import class_mosaic, dataset_overview, deviation_qq, gene_predictions, transfer_error
from ._interactions import deviation_scatter, interaction_classes, locfdr_histogram, precision_recall_roc, tpr_fdp
from ._run import RunFolder, as_run

#: Figure name → (what it shows, for captions, and the paper's figure it mirrors).
CAPTIONS = {
    "dataset_overview": "The data: its size, and the conditions' mean profiles over the read-out genes in two "
    "dimensions (UMAP with umap-learn installed, else principal components), the control in red (Extended Data "
    "Fig. 1a, b).",
    "l2_beeswarm": "Prediction error (L2 over the read-out genes) per perturbation; red: the mean per model, dashed: "
    "the best model's mean (paper Fig. 1a / 2a).",
    "pearson_delta": "Pearson delta per perturbation; red: the mean per model (Extended Data Figs 2a / 8a).",
    "observed_vs_predicted": "Observed against predicted change of one perturbation (Fig. 1b).",
    "forest": "Mean L2 ratio to the mean baseline with its 95 % bootstrap interval; faded where the interval "
    "contains 1 (Fig. 2c).",
    "l2_by_n": "Mean L2 over the top-n of all genes, ± one standard error; dashed: the read-out genes; grey: the "
    "paper's published curves (Extended Data Figs 2b / 8b).",
    "transfer_error": "A model that learned from another dataset against the difference between the two controls: "
    "the controls, the error per read-out gene and the Pearson delta per perturbation (Extended Data Fig. 9).",
    "prediction_spread": "Per-gene standard deviation across perturbations, predicted and observed (Extended Data "
    "Fig. 7).",
    "resources": "Elapsed time and peak memory per model, one point per seed (Extended Data Fig. 10).",
    "scorecard": "Every metric, the paper's and the field's (discrimination, Systema, MAE, MSE): mean per model, "
    "coloured by rank in its column, * the best.",
    "tpr_fdp": "Recall of the observed interactions against the false discovery proportion (Fig. 1c).",
    "precision_recall_roc": "Precision-recall and ROC curves of the interaction predictions (Extended Data Fig. 4). "
                            "The AUPRC in the legend is the paper's: points sorted by precision, then the trapezoid "
                            "sum over recall, on which a random ranking mostly scores near 0, not the flat curve's "
                            "height.",
    "interaction_classes": "Observed interaction classes (Fig. 1e).",
    "deviation_scatter": "Observed vs predicted deviation from additivity; top predictions coloured by predicted "
    "class (Fig. 1f).",
    "locfdr_histogram": "Deviations from additivity, the fitted locfdr null and the 5 % fdr thresholds (Extended "
    "Data Fig. 3b).",
    "deviation_qq": "Quantiles of the deviations from additivity against the standard normal's; the line is the "
    "fitted null, its slope the null's standard deviation (Extended Data Fig. 3a).",
    "class_mosaic": "Each model's top predictions by predicted class (bar widths) and the observed class within "
    "each (Fig. 1f, bottom).",
    "gene_predictions": "Two genes with the most interactions across the scored doubles of one seed: observed "
    "(coloured by class), predicted (black squares), the additive range (grey boxes), the control (line) "
    "(Extended Data Fig. 6).",
}


#: The figures drawn from the interaction analysis (``interactions/``); the others need only the scores.
INTERACTION_FIGURES = ("interaction_classes", "locfdr_histogram", "tpr_fdp", "precision_recall_roc",
                       "deviation_scatter", "deviation_qq", "class_mosaic", "gene_predictions")


def _plans(run: RunFolder) -> list[tuple[str, Callable[[], object]]]:
    """The figures that apply to this run, each as (name, a function drawing it)."""
    plans = []
    if run.observed is not None and run.conditions is not None:
        plans.append(("dataset_overview", lambda: dataset_overview(run)))
    plans.append(("l2_beeswarm", lambda: beeswarm_l2(run)))
    if run.results["pearson_delta"].notna().any():
        plans.append(("pearson_delta", lambda: pearson_delta(run)))
    if run.forest is not None and len(run.forest):
        plans.append(("forest", lambda: forest(run)))
    if beyond_the_paper(run.scorecard):
        plans.append(("scorecard", lambda: scorecard_heatmap(run)))
    if run.observed is not None and run.prediction_files:
        plans += [
            ("observed_vs_predicted", lambda: observed_vs_predicted(run)),
            ("l2_by_n", lambda: l2_by_n(run, n_genes=run.config.get("n_genes"))),
            ("prediction_spread", lambda: prediction_spread(run)),
        ]
    if any(run.reference_control(model) is not None for model in run.results["model"].unique()):
        plans.append(("transfer_error", lambda: transfer_error(run)))
    if run.timings is not None and len(run.timings):
        plans.append(("resources", lambda: resources(run)))
    if run.has_interactions:
        plans += [
            ("interaction_classes", lambda: interaction_classes(run)),
            ("deviation_qq", lambda: deviation_qq(run)),
            ("locfdr_histogram", lambda: locfdr_histogram(run)),
        ]
        if run.interaction_table("tpr_fdp") is not None:
            plans.append(("tpr_fdp", lambda: tpr_fdp(run)))
        if run.prediction_files and run.interaction_table("auc_summary") is not None:
            plans.append(("precision_recall_roc", lambda: precision_recall_roc(run)))
        top = run.interaction_table("top_classes")
        if run.prediction_files and top is not None:
            plans.append(("deviation_scatter", lambda: deviation_scatter(run)))
        if top is not None and len(top):
            plans.append(("class_mosaic", lambda: class_mosaic(run)))
        if run.prediction_files:
            plans.append(("gene_predictions", lambda: gene_predictions(run)))
    return plans


def figure_names(run_folder: RunFolder | str | os.PathLike) -> list[str]:
    """The names (keys of :data:`CAPTIONS`) of the figures that apply to a run, in drawing order."""
    return [name for name, _ in _plans(as_run(run_folder))]


def figures(
    run_folder: RunFolder | str | os.PathLike, *, names: Iterable[str] | None = None
) -> Iterator[tuple[str, object]]:
    """Draw every figure that applies to a run (or those of ``names``): yields ``(name, Figure)``.

    A figure that fails to draw is skipped with a warning naming it, so one bad table never costs the others.
    """
    run = as_run(run_folder)
    wanted = None if names is None else set(names)
    for name, draw in _plans(run):
        if wanted is not None and name not in wanted:
            continue
        try:
            fig = draw()
        except (ValueError, KeyError) as err:
            warnings.warn(f"Figure {name!r} of {run.root} was skipped: {err}", stacklevel=2)
            continue
        yield name, fig


def figure_bytes(fig, fmt: str, *, dpi: int = 150) -> bytes:
    """A figure rendered to ``png``/``svg``/``pdf`` bytes (metadata without dates, so output is reproducible)."""
    import matplotlib

    buffer = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else {"Date": None} if fmt in ("svg", "pdf") else None
    with matplotlib.rc_context({"svg.hashsalt": "linpert"}):  # SVG ids from a fixed salt, not a random one
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata, facecolor="white")
    return buffer.getvalue()


def figures_current(run_folder: RunFolder | str | os.PathLike, *, formats: tuple[str, ...] = ("png", "svg"),
                    names: Iterable[str] | None = None) -> bool:
    """Whether every figure that applies to a run (or those of ``names``) is written and newer than everything in the
    run it is drawn from: the interaction figures than everything, the others than everything but ``interactions/``."""
    run = as_run(run_folder)
    sources = [p for p in run.root.iterdir() if p.name not in _NOT_SOURCES]
    newest = {True: newest_change(sources), False: newest_change([p for p in sources if p.name != "interactions"])}
    for name in figure_names(run) if names is None else names:
        files = [run.root / "figures" / f"{name}.{fmt}" for fmt in formats]
        if not all(f.is_file() for f in files):
            return False
        if min(f.stat().st_mtime_ns for f in files) < newest[name in INTERACTION_FIGURES]:
            return False
    return True


#: What a run folder holds that no figure is drawn from: the figures, the lock of a run in progress, and the report
#: that ``linpert run`` writes beside the tables (it shows the figures, and is written after them).
_NOT_SOURCES = ("figures", "run.lock", "report.html")


def write_figures(
    run_folder: RunFolder | str | os.PathLike, *, formats: tuple[str, ...] = ("png", "svg"), dpi: int = 150,
    workers: int | None = None, started: Started | None = None,
) -> list[Path]:
    """Write every figure that applies to a run to ``<run_folder>/figures/<name>.<format>``, atomically.

    Interaction figures are drawn for double runs with interactions, the forest plot when the run has the mean
    baseline, and the figures that need observed values when the folder holds them (``observed.parquet``, or the
    interaction calls of a double run).

    Parameters
    ----------
    run_folder
        A finished run folder (``out=`` of :func:`linpert.benchmark.run`).
    formats
        File formats; PNG at ``dpi`` and SVG by default.
    workers
        Processes that draw at once (default: one per core, at most 4). Drawing is CPU-bound Python, so the figures
        are shared out between forked processes; where ``fork`` is unavailable they are drawn one by one.
    started
        What :func:`start_figures` began drawing earlier, with the same ``formats`` and ``dpi``: those figures are not
        drawn again, and their process is waited for.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> from linpert.plot import write_figures
    >>> paths = write_figures("linpert-results/demo/double")  # doctest: +SKIP
    """
    run = as_run(run_folder)
    _check_formats(formats)
    names = figure_names(run)
    left = [name for name in names if started is None or name not in started.names]
    written = _write_shared(run, left, formats, dpi, workers or threads().figure_workers)
    if started is not None:
        written += started.wait()
    order = {name: i for i, name in enumerate(names)}
    return sorted(written, key=lambda path: (order.get(path.stem, len(order)), path.suffix))


def start_figures(
    run_folder: RunFolder | str | os.PathLike, *, formats: tuple[str, ...] = ("png", "svg"), dpi: int = 150,
) -> Started | None:
    """Begin drawing, in a forked process, the figures of a run that need no interaction analysis, unless they are
    current; the caller goes on meanwhile. ``linpert run`` starts them once the scores are written, so that they are
    drawn on the core the interaction analysis leaves idle.

    Returns what was started, for :func:`write_figures` (``started=``) to draw the rest and wait for; None where
    nothing was (no ``fork`` on this platform, or nothing to draw).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _check_formats(formats)
    run = as_run(run_folder)
    names = [name for name in figure_names(run) if name not in INTERACTION_FIGURES]
    if not names or figures_current(run, formats=formats, names=names):
        return None
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    return Started(names, pool, pool.submit(_write_folder, str(run.root), names, formats, dpi))


class Started:
    """Figures that :func:`start_figures` is drawing in a forked process."""

    def __init__(self, names: list[str], pool, future) -> None:
        self.names, self._pool, self._future = names, pool, future

    def wait(self) -> list[Path]:
        """The files written, once the process is done; its warnings are raised here."""
        try:
            paths, said = self._future.result()
        finally:
            self._pool.shutdown()
        for message, category in said:
            warnings.warn(message, category, stacklevel=3)
        return paths


def _check_formats(formats) -> None:
    unknown = [f for f in formats if f not in ("png", "svg", "pdf")]
    if unknown:
        raise ValueError(f"Unknown figure format(s) {unknown}; use 'png', 'svg' or 'pdf'.")


def _write_shared(run: RunFolder, names: list[str], formats, dpi: int, workers: int) -> list[Path]:
    """Draw and write the named figures, shared out between this process and forked children."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _FORKED
    groups = _shares(names, workers)
    if len(groups) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return _write(run, names, formats, dpi)
    _import_matplotlib()  # once, here: each child would take a second to import it again
    _FORKED = run  # the children start as copies of this process, with the tables read so far
    try:
        with ProcessPoolExecutor(len(groups) - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            children = [pool.submit(_write_forked, group, formats, dpi) for group in groups[1:]]
            written = _write(run, groups[0], formats, dpi)
            for child in children:
                paths, said = child.result()
                written += paths
                for message, category in said:
                    warnings.warn(message, category, stacklevel=3)
    finally:
        _FORKED = None
    return written


#: Seconds each figure took to draw and write as PNG and SVG on a Norman-sized run (the rest take about 0.4), to share
#: them out evenly between processes.
_COST = {"dataset_overview": 3.0, "precision_recall_roc": 1.9, "deviation_scatter": 1.9, "l2_by_n": 1.2,
         "prediction_spread": 1.2, "locfdr_histogram": 1.0, "interaction_classes": 0.8, "observed_vs_predicted": 0.8,
         "l2_beeswarm": 0.6}
#: Figures drawn from the same costly table (the interaction pairs), kept in one process so that it is built once.
_TOGETHER = ("precision_recall_roc", "deviation_scatter", "gene_predictions")
_FORKED: RunFolder | None = None


def _shares(names: list[str], n: int) -> list[list[str]]:
    """The figures in up to ``n`` groups of about equal cost (the costliest first, each to the lightest group), the
    figures of :data:`_TOGETHER` in the same group."""
    units = [[name] for name in names if name not in _TOGETHER]
    units += [joint] if (joint := [name for name in names if name in _TOGETHER]) else []
    cost = lambda unit: sum(_COST.get(name, 0.4) for name in unit)
    groups: list[list[str]] = [[] for _ in range(max(1, min(n, len(units))))]
    load = [0.0] * len(groups)
    for unit in sorted(units, key=lambda unit: -cost(unit)):
        lightest = load.index(min(load))
        groups[lightest] += unit
        load[lightest] += cost(unit)
    return [group for group in groups if group]


def _import_matplotlib() -> None:
    """matplotlib, with the canvases that write PNG and SVG."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.backends.backend_svg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def _write(run: RunFolder, names: list[str], formats, dpi: int) -> list[Path]:
    """Draw and write the named figures; the files written."""
    folder = run.root / "figures"
    written = []
    for name, fig in figures(run, names=names):
        for fmt in formats:
            written.append(atomic_write(folder / f"{name}.{fmt}", figure_bytes(fig, fmt, dpi=dpi), kind="bytes"))
            fig.set_layout_engine("none")  # laid out by the first format's drawing: the others keep that layout
    return written


def _write_forked(names: list[str], formats, dpi: int) -> tuple[list[Path], list[tuple[str, type]]]:
    """:func:`_write` in a child process, with the warnings it raised, for the parent to raise again."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = _write(_FORKED, names, formats, dpi)
    return written, [(str(w.message), w.category) for w in caught]


def _write_folder(root: str, names: list[str], formats, dpi: int) -> tuple[list[Path], list[tuple[str, type]]]:
    """:func:`_write_forked` from the run folder as the child finds it (the parent goes on writing to it)."""
    global _FORKED
    _FORKED = RunFolder(root)
    return _write_forked(names, formats, dpi)

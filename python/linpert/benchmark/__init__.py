"""The benchmark runner: dataset × split × seeds × models → one tidy table, resumable.

Every finished cell of the grid (one seed and one model) is written atomically to the output folder as soon as it is
done, so an interrupted run resumes where it stopped and never redoes or loses finished work. The folder is plain
files: ``results.parquet`` / ``results.csv`` (one row per scored perturbation), ``timings.csv`` (fit and predict time
and peak memory per model and seed), ``summary.csv``, the splits as portable JSON, and the predictions on the read-out
genes. For the double split it also calls the genetic interactions once on the full data and scores every model's
interaction predictions (``interactions/``: ``calls.parquet``, ``tpr_fdp.csv``, ``auc.csv``, ``auc_summary.csv``,
``top_classes.csv``, ``recurrence.csv``), recomputed from the stored predictions on every run. A run from a cell
file keeps the cells' DE tests and replicate ceiling in ``from_cells/``, reused while the file (its size and
modification time), the read-out genes and the metrics stay the same.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._conditions import CONTROL
from .._config import renamed
from .._errors import WorkerError
from .._threads import one_blas_thread
from ..metrics._registry import summarise
from ._cell import run_here
from ._dask import run_on_dask
from ._identity import why_opaque
from ._store import _run_config, _Store

__all__ = ["BenchmarkResult", "run"]

if TYPE_CHECKING:
    from anndata import AnnData

#: The largest split seed: numpy's legacy generator, which the paper's splits use, takes seeds below 2**32.
SEED_MAX = 2**32 - 1
#: Fewest doubles for which ``run(split="double")`` scores interaction predictions by default (the paper has 124).
MIN_DOUBLES_FOR_INTERACTIONS = 20
RESULT_COLUMNS = ["dataset", "split", "seed", "model", "perturbation", "kind", "set", "l2", "pearson_delta", "r2"]


@dataclass
class BenchmarkResult:
    """What :func:`run` returns: the per-perturbation table, the timings and where they were written."""

    results: pd.DataFrame
    timings: pd.DataFrame
    summary: pd.DataFrame
    out: Path | None = None
    restriction: dict[str, Any] = field(default_factory=dict)
    #: The observed genetic interactions (:class:`linpert.interactions.InteractionCalls`), double split only.
    interaction_calls: Any = None
    #: How well each model finds them (:class:`linpert.interactions.InteractionEvaluation`), double split only.
    interactions: Any = None
    #: The forest plot's numbers (:func:`linpert.metrics.forest_table`): each model's L2 relative to ``mean``.
    forest: pd.DataFrame | None = None
    #: ``(seed, label) -> why`` for the cells whose model worker crashed; they are in no table and rerun on resume.
    failures: dict[tuple[int, str], str] = field(default_factory=dict)
    #: How many cells were read back from ``out`` instead of being fitted again.
    reused: int = 0
    #: On one of the paper's datasets: its published models summarised like ``summary`` (``source="published"``;
    #: :func:`linpert.published.summary`), never mixed into the run's own tables.
    published: pd.DataFrame | None = None
    #: On one of the paper's datasets: per model the run shares with the paper, the largest difference between the
    #: run's per-perturbation L2 and the published one (:func:`linpert.published.fidelity`).
    fidelity: pd.DataFrame | None = None
    #: Why the interaction analysis did not run, or ran on fallback locfdr settings; None when it ran as the paper's.
    interaction_note: str | None = None
    #: One row per model, one column per metric (mean), and ``best_in`` (:func:`linpert.metrics.scorecard`).
    scorecard: pd.DataFrame | None = None
    #: With ``cells=``: per model and metric, the mean scaled score (0 the reference baseline, 1 the replicate
    #: ceiling), its bootstrap interval and whether it lies above 0 (:func:`linpert.metrics.scaled_scores`).
    calibrated: pd.DataFrame | None = None


@renamed(data="pb")
def run(
    pb: AnnData,
    *,
    split: str = "double",
    seeds: Iterable[int] = (1, 2, 3, 4, 5),
    models: Sequence[Any] = ("no_change", "additive", "linear"),
    out: str | os.PathLike | None = None,
    dataset: str | None = None,
    n_genes: int = 1000,
    common_only: bool | None = None,
    progress: bool = True,
    interactions: bool | None = None,
    locfdr_args: dict[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    cells: Any = None,
    scheduler: Any = None,
    on_scored: Callable[[Path], Any] | None = None,
) -> BenchmarkResult:
    """Run the paper's benchmark on a pseudobulk.

    Parameters
    ----------
    pb
        A pseudobulk AnnData (see :func:`linpert.pseudobulk`) holding ``ctrl`` and every condition to split.
    split
        ``"double"`` (the paper's Norman split) or ``"simulation"`` (GEARS' split for single perturbations).
    seeds
        The split seeds; the paper uses 1–5 for doubles and 1–2 for singles.
    models
        Model specs (``"linear"``, ``"linear(n_components=5)"``, ``"lm_go=linear(perturbation_embedding=go)"``: see
        :func:`linpert.models.parse_model_spec`; adapters such as ``"gears(...)"`` too), model instances, or
        ``(label, instance)`` pairs.
    out
        Output folder. Finished cells are stored there and reused when the same run is started again.
    dataset
        Label of the dataset in the tables (default: ``uns['linpert']['dataset']`` or ``"data"``).
    n_genes
        Number of read-out genes: the ``n_genes`` highest control means.
    common_only
        Score only perturbations that every model could predict, as the paper does for single perturbations. The
        default is ``True`` for the simulation split and ``False`` for the double split.
    progress
        Show a progress bar over the grid.
    interactions
        Call genetic interactions on the full data (:func:`linpert.interactions.call_interactions`) and score each
        model's predictions of them (:func:`linpert.interactions.evaluate_interactions`). The default is on for the
        double split with at least :data:`MIN_DOUBLES_FOR_INTERACTIONS` doubles (and then a failing fit only warns),
        off otherwise. When it cannot run, ``interaction_note`` says why, and so do the summary and the report.
    locfdr_args
        locfdr's options for the interaction calls (``bre``, ``df``, ``pct``, ``pct0``, ``nulltype``; see
        :func:`linpert.interactions.call_interactions`). By default the paper's, with its documented fallbacks.
    metrics
        The metrics of :data:`linpert.metrics.METRICS` to add as result columns beside the paper's L2, Pearson
        delta and r (default: all registered: the discrimination scores, Systema's, MAE and MSE). They are computed
        from the stored predictions, so a resumed run can add metrics without refitting.
    cells
        The cell-level data the pseudobulk came from (AnnData or ``.h5ad`` path), for calibrated scores: each
        metric's replicate ceiling (one half of every perturbation's cells predicting the other) and each model's
        scaled score, 0 at the reference baseline (mean for singles, additive for doubles) and 1 at the ceiling
        (``result.calibrated``, ``calibrated.csv``). Without cells there is nothing to split, and no calibration.
    scheduler
        Run the grid's cells as tasks on a Dask cluster (``pip install 'linpert[dask]'``): the scheduler's address
        (``"tcp://host:8786"``) or a ``distributed.Client``. Workers write finished cells into ``out``, which must
        then be a folder they can all reach; the table is the same as without a scheduler.
    on_scored
        Called with the run folder once every score and its tables are written there, before the interaction
        analysis (with ``out`` only). ``linpert run`` passes :func:`linpert.plot.start_figures`, so that the figures
        of the scores are drawn while the interactions are called.

    Returns
    -------
    BenchmarkResult
        ``results`` has one row per dataset, seed, model and scored perturbation (test ∪ val) with ``l2``,
        ``pearson_delta`` and ``r2`` over the read-out genes; ``interaction_calls`` and ``interactions`` hold the
        interaction analysis when it ran.
    """
    from ..metrics import top_expressed_genes
    from ..metrics._registry import resolve_metrics
    from ..models import resolve_models
    from ..splits import make_split

    pb = _check_pseudobulk(pb)
    seeds = _check_seeds(seeds)
    if isinstance(n_genes, bool) or not isinstance(n_genes, (int, np.integer)) or n_genes < 1:
        raise ValueError(f"n_genes must be a positive integer (the number of read-out genes), got {n_genes!r}.")
    if locfdr_args:
        from ..interactions._locfdr import check_options

        check_options(dict(locfdr_args))  # before any work: a wrong option would only stop the analysis at its end
    labelled = resolve_models(models)
    if not labelled:
        raise ValueError("No models to run: pass at least one model name or instance.")
    vouched = _vouched_labels(models)
    dataset = dataset or (pb.uns.get("linpert", {}) or {}).get("dataset") or "data"
    if common_only is None:
        common_only = split != "double"

    ctrl = np.asarray(pb[CONTROL].X, dtype=np.float64).ravel()
    readout = top_expressed_genes(ctrl, n_genes=min(n_genes, pb.n_vars))
    if cells is not None:
        _check_cells(cells, pb, readout)
    splits = {seed: make_split(split, pb.obs_names, seed=seed) for seed in seeds}
    grid = [(seed, label, model) for seed in seeds for label, model in labelled]
    plan = _Plan(pb, split, splits, grid, readout, ctrl, dataset, n_genes)
    options = dict(common_only=common_only, progress=progress, interactions=interactions, scheduler=scheduler,
                   locfdr_args=locfdr_args, metrics=resolve_metrics(metrics, cells=cells is not None), cells=cells,
                   on_scored=on_scored)
    if out is None:
        with one_blas_thread():
            return _run_grid(plan, None, **options)
    config = _run_config(pb, split, dataset, n_genes, labelled)
    with _Store(out, config, grid=grid, unverifiable=_unverifiable(labelled, vouched)) as store, one_blas_thread():
        return _run_grid(plan, store, **options)


@dataclass
class _Plan:
    """What one call of :func:`run` computes: the data, its splits by seed, the grid of (seed, label, model) cells."""

    data: Any
    split: str
    splits: dict
    grid: list
    readout: np.ndarray
    ctrl: np.ndarray
    dataset: str
    n_genes: int

    @cached_property
    def observed(self) -> pd.DataFrame:
        """The observed pseudobulk on the read-out genes, every condition: what the metrics and figures compare to."""
        return pd.DataFrame(np.asarray(self.data.X, dtype=np.float64)[:, self.readout], index=self.data.obs_names,
                            columns=self.data.var_names[self.readout])

    @cached_property
    def de_order(self) -> np.ndarray:
        """Every condition's genes by decreasing observed change, sorted once for every cell's L2-by-n curve."""
        from ..metrics._paper import de_gene_order

        return de_gene_order(np.asarray(self.data.X, dtype=np.float64), self.ctrl)


def _run_grid(plan: _Plan, store, *, common_only, progress, interactions, scheduler, locfdr_args,
              metrics, cells, on_scored=None) -> BenchmarkResult:
    """Fit, predict and score every cell of the grid not already in the store, then build and write the tables."""
    from ..metrics import scorecard

    data, split, splits, grid, dataset, n_genes = (plan.data, plan.split, plan.splits, plan.grid, plan.dataset,
                                                   plan.n_genes)

    if store:
        for one in splits.values():
            store.save_split(one)
    done = {(seed, label): store.load(seed, label) for seed, label, _ in grid} if store else {}
    reused = sum(cell is not None for cell in done.values())
    todo = [(seed, label, model) for seed, label, model in grid if done.get((seed, label)) is None]
    execute = partial(run_on_dask, scheduler) if scheduler is not None else run_here
    failures = {}
    for key, outcome in execute(plan, todo, store, progress=progress):
        if isinstance(outcome, WorkerError):  # a crashed or killed worker costs its own cell, not the grid
            failures[key] = str(outcome)
            warnings.warn(f"{key[1]} failed on seed {key[0]} and is left out of the tables (rerun to retry): "
                          f"{str(outcome).splitlines()[0]}", RuntimeWarning, stacklevel=4)
        else:
            done[key] = outcome
    finished = [((seed, label), done[seed, label]) for seed, label, _ in grid if done.get((seed, label))]
    tables = [cell["results"] for _, cell in finished]
    timings = [cell["timing"] for _, cell in finished]
    predictions = {key: cell.get("predictions") for key, cell in finished}

    if not tables:
        raise WorkerError(f"Every cell of the grid failed; the first: {next(iter(failures.values()))}")
    results = pd.concat(tables, ignore_index=True)
    _check_something_predicted(results)
    predictions = {key: store.load_predictions(*key) if frame is None else frame for key, frame in predictions.items()}
    de, ceiling = _from_cells(cells, plan, metrics, set(results["model"]), store)
    results = _add_metrics(results, plan, predictions, metrics, de)
    restriction = _restrict_to_common(results) if common_only else {}
    if common_only:
        results = results[results["common"]].drop(columns="common").reset_index(drop=True)
    elif "common" in results:
        results = results.drop(columns="common")
    timing = pd.DataFrame(timings)
    summary = summarise(results, timing)
    card = scorecard(results)
    calibrated = _calibrated(results, plan, ceiling)
    forest = _forest(results)
    published, fidelity = _published(results, dataset, split)
    if store:
        store.finish(results, timing, summary, card, restriction, forest, calibrated)
        store.save_observed(plan.observed)
        store.save_conditions(data.obs)
        store.save_published(published, fidelity)
        if on_scored is not None:
            on_scored(store.root)
    calls, evaluation, note = _interaction_step(data, split, n_genes, predictions, store, interactions, locfdr_args)
    return BenchmarkResult(
        results, timing, summary, store.root if store else None, restriction, calls, evaluation, forest, failures,
        reused, published, fidelity, note, card, calibrated,
    )


def _published(results: pd.DataFrame, dataset: str, split: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The paper's published summary of this dataset and the run's fidelity to it, when the run is on its data."""
    from .. import published

    if published.DATASETS.get(dataset) != split:
        return None, None
    fidelity = published.fidelity(results, dataset)
    # over the run's own seeds and perturbations, so that the two summaries average over the same rows; a run that
    # shares none with the paper (other names, simulated data) sees the paper's own, and the column says so
    summary = published.summary(dataset, rows=results).assign(perturbations="this run's")
    if summary.empty:
        summary = published.summary(dataset).assign(perturbations="the paper's (none shared with this run)")
    return summary, fidelity if len(fidelity) else None


def _from_cells(cells, plan: _Plan, names: list[str], models: set[str], store):
    """What the cells give a run, computed only where it is used: the observed DE tests of the read-out genes and
    their replicate ceiling. From a cell file into a run folder, both are kept there and reused while the file, the
    read-out genes and the metrics stay the same."""
    from ..metrics import differential_expression, replicate_ceiling
    from ..metrics._de import by_gene
    from ..metrics._registry import needs_cells

    needs_de = cells is not None and needs_cells(names)
    calibrates = cells is not None and CALIBRATION_REFERENCE.get(plan.split) in models
    if not (needs_de or calibrates):
        return None, None
    key = _cell_file_key(cells, plan, names, needs_de, calibrates) if store else None
    if key is not None and (kept := store.load_cell_work(key)) is not None:
        return kept
    readout_cells = _readout_cells(cells, plan)
    sorted_values = by_gene(readout_cells.X) if needs_de else None  # sorted once for every DE test
    de = differential_expression(readout_cells, sorted_values=sorted_values) if needs_de else None
    ceiling = replicate_ceiling(readout_cells, metrics=names, sorted_values=sorted_values) if calibrates else None
    if key is not None:
        store.save_cell_work(key, de, ceiling)
    return de, ceiling


def _cell_file_key(cells, plan: _Plan, names: list[str], needs_de: bool, calibrates: bool) -> dict | None:
    """What the cell-level work depends on, for a cell file (None for cells in memory): the file as it is now, the
    read-out genes, the metrics and this linpert."""
    from .._config import __version__

    if not isinstance(cells, (str, os.PathLike)) or not Path(cells).is_file():
        return None
    stat = Path(cells).stat()
    return {"file": str(Path(cells).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "readout": [str(g) for g in plan.data.var_names[plan.readout]], "metrics": list(names),
            "de": bool(needs_de), "ceiling": bool(calibrates), "linpert": __version__}


def _add_metrics(results: pd.DataFrame, plan: _Plan, predictions: dict, names: list[str], de=None) -> pd.DataFrame:
    """The registered metrics as columns beside the paper's, from each cell's predictions on the read-out genes (and
    the observed cells' DE genes on them, where cells are given)."""
    from ..metrics._registry import Scoring, compute

    if not names:
        return results
    observed = plan.observed
    parts = []
    for (seed, label), predicted in predictions.items():
        train = [c for c in plan.splits[seed].train if c != CONTROL]
        scoring = Scoring(predicted.loc[:, observed.columns], observed.loc[predicted.index], plan.ctrl[plan.readout],
                          observed.loc[train].mean().to_numpy(), de=de)
        parts.append(compute(scoring, names).assign(seed=seed, model=label).rename_axis("perturbation").reset_index())
    return results.merge(pd.concat(parts, ignore_index=True), on=["seed", "model", "perturbation"], how="left")


#: The baseline a scaled score is 0 at, per split: the paper's reference for singles and for doubles.
CALIBRATION_REFERENCE = {"simulation": "mean", "double": "additive"}


def _calibrated(results: pd.DataFrame, plan: _Plan, ceiling: pd.DataFrame | None) -> pd.DataFrame | None:
    """Scaled scores against the replicate ceiling of the cells (on the read-out genes), when cells and the
    reference baseline are there."""
    from ..metrics import scaled_scores

    reference = CALIBRATION_REFERENCE.get(plan.split)
    if ceiling is None or reference not in set(results["model"]):
        return None
    return scaled_scores(results, ceiling.drop(columns="reason"), reference=reference)


def _gene_columns(pb) -> np.ndarray:
    """The name of each pseudobulk gene among the cells' columns (the original IDs, where pseudobulk kept them)."""
    var = pb.var
    return (var["gene_id"] if "gene_id" in var else pd.Series(pb.var_names, index=var.index)).to_numpy()


def _condition_key(pb) -> str:
    return (pb.uns.get("linpert", {}) or {}).get("condition_key", "condition")


def _check_cells(cells: Any, pb, readout: np.ndarray) -> None:
    """Before any work: the cells hold the conditions and read-out genes of the pseudobulk (their obs and var only
    are read; a zarr store is checked when it is read)."""
    from anndata import AnnData

    from ..datasets._readers import _open

    if isinstance(cells, (str, os.PathLike)):
        path = Path(cells)
        if not path.exists():
            raise FileNotFoundError(f"cells={str(cells)!r} does not exist: pass the cell-level .h5ad the pseudobulk "
                                    "was made from.")
        source = (pb.uns.get("linpert", {}) or {}).get("source")
        if path.is_dir() or (source and Path(str(source)).resolve() == path.resolve()):
            return  # a zarr store is checked as it is read; the file the pseudobulk was made from, too
        opened = _open(path, backed=True)
        obs, var_names = opened.obs, opened.var_names
        opened.file.close()
    elif isinstance(cells, AnnData):
        obs, var_names = cells.obs, cells.var_names
    else:
        raise TypeError(f"cells must be an AnnData or the path of an .h5ad file, got {type(cells).__name__}.")
    _check_cells_match(obs, var_names, pb, readout)


def _check_cells_match(obs: pd.DataFrame, var_names, pb, readout: np.ndarray) -> pd.Series:
    """The cells' conditions named as the pseudobulk's, or a clear error for missing genes or conditions."""
    from .._conditions import canonical_names

    key = _condition_key(pb)
    if key not in obs:
        raise KeyError(f"The cells have no obs column {key!r} (the pseudobulk was made from that column); their "
                       f"columns: {', '.join(map(str, obs.columns[:8]))}. Pass the cells the pseudobulk came from.")
    wanted = pd.Index(_gene_columns(pb)[readout])
    absent = wanted.difference(pd.Index(var_names.astype(str)))
    if len(absent):
        raise ValueError(f"The cells lack {len(absent)} of the pseudobulk's {len(wanted)} read-out genes (e.g. "
                         f"{', '.join(map(str, absent[:3]))}): pass the cells the pseudobulk was made from.")
    labels = obs[key].astype(str)
    conditions = labels.map(canonical_names(labels.unique()))
    missing = pb.obs_names.difference(pd.Index(conditions.unique()))
    if len(missing):
        raise ValueError(f"The cells hold no cell of {len(missing)} condition(s) of the pseudobulk (e.g. "
                         f"{', '.join(missing[:3])}): pass the cells the pseudobulk was made from, or drop those "
                         "conditions from the pseudobulk.")
    return conditions


def _readout_cells(cells: Any, plan: _Plan):
    """The cells on the read-out genes, named and with conditions named as in the pseudobulk."""
    from .._io import is_hdf5
    from .._pseudobulk import read_genes
    from ..datasets._readers import _open

    names = list(_gene_columns(plan.data)[plan.readout])
    if isinstance(cells, (str, os.PathLike)) and Path(cells).is_file() and is_hdf5(cells):
        subset = read_genes(cells, names)  # chunk by chunk: never the whole matrix in memory
    else:
        source = _open(cells, backed=False) if isinstance(cells, (str, os.PathLike)) else cells  # a zarr store
        subset = source[:, names]
        subset = subset.to_memory() if source.isbacked else subset.copy()
    subset.var_names = plan.data.var_names[plan.readout]
    subset.obs["condition"] = _check_cells_match(subset.obs, pd.Index(names), plan.data, plan.readout).to_numpy()
    return subset


def _forest(results: pd.DataFrame) -> pd.DataFrame | None:
    """Fig. 2c's bootstrap mean ratio to the mean baseline, when the mean baseline ran beside other models."""
    from ..metrics import forest_table

    models = set(results["model"])
    if "mean" not in models or len(models) < 2:
        return None
    return forest_table(results, reference="mean")


def _check_seeds(seeds: Any) -> list[int]:
    """The split seeds as a list of distinct integers, or a clear error (``1.5`` is not rounded to 1)."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be a list of integers such as [1, 2, 3], got {seeds!r}.")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one split seed, e.g. seeds=[1, 2].")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, np.integer))]
    if bad:
        raise TypeError(f"seeds must be integers; {bad[:3]} {'is' if len(bad) == 1 else 'are'} not.")
    seeds = [int(s) for s in seeds]
    out_of_range = [s for s in seeds if not 0 <= s <= SEED_MAX]
    if out_of_range:
        shown = ", ".join(str(s) if abs(s) < 10**12 else f"{str(s)[:8]}... ({len(str(abs(s)))} digits)"
                          for s in out_of_range[:3])
        verb = "is" if len(out_of_range) == 1 else "are"
        raise ValueError(f"seeds must be integers from 0 to {SEED_MAX} (the range of the splits' random numbers, "
                         f"numpy's legacy generator, as the paper's); {shown} {verb} not.")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds repeat {repeated}: each seed is one split; give each once.")
    return seeds


def _interaction_step(data, split, n_genes, predictions, store, interactions, locfdr_args) -> tuple[Any, Any, Any]:
    """Call the observed interactions on the full data, then score every model's predicted interactions.

    The paper calls interactions on all doubles (not only the scored ones), once; each model and seed is then judged
    on its stored predictions of the scored doubles over the read-out genes, so a resumed run recomputes this from
    the folder without refitting.
    """
    n_doubles = int((data.obs["kind"] == "double").sum())
    explicit = interactions is not None
    if not explicit:
        interactions = split == "double" and n_doubles >= MIN_DOUBLES_FOR_INTERACTIONS
    if not interactions:
        return None, None, None
    if split != "double" or n_doubles == 0:
        raise ValueError(
            f"interactions=True needs the double split and double perturbations (split={split!r}, {n_doubles} "
            "doubles). Leave interactions=None for the default."
        )
    from ..interactions import LocfdrError, call_interactions, evaluate_interactions

    try:
        calls = call_interactions(data, n_genes=n_genes, locfdr_args=locfdr_args)
    except (LocfdrError, ValueError) as err:  # locfdr stops on some histograms, as R's does
        if explicit:
            raise
        note = f"The genetic-interaction analysis (Fig. 1c-f) could not run: {err}"
        warnings.warn(note, RuntimeWarning, stacklevel=5)
        if store:
            store.save_interaction_note(note)
        return None, None, note
    evaluation = evaluate_interactions(calls, predictions)
    note = None
    if calls.fallback:  # the paper's settings are R's defaults: nothing the user gave
        note = (f"locfdr with the paper's settings (R's defaults) could not fit the null of these deviations, so the "
                f"interaction calls use locfdr({', '.join(f'{k}={v}' for k, v in calls.settings.items())}), the "
                f"first of linpert.interactions.LOCFDR_FALLBACKS that fits. What locfdr said: {calls.fallback}")
    if store:
        store.save_interactions(calls, evaluation)
        store.save_interaction_note(note)
    return calls, evaluation, note


def _check_something_predicted(results: pd.DataFrame) -> None:
    """Warn about a model that predicted nothing (every row NaN); refuse when no model predicted anything."""
    empty = results.groupby("model", sort=False)["l2"].apply(lambda l2: l2.isna().all())
    for model in empty.index[empty]:
        reasons = results.loc[results["model"] == model, "reason"].value_counts().index[:2]
        warnings.warn(f"{model} predicted nothing (every score is NaN): {'; '.join(reasons) or 'no reason given'}.",
                      RuntimeWarning, stacklevel=5)
    if empty.all():
        raise ValueError(
            f"No model predicted anything (every prediction is NaN) for {', '.join(empty.index)}, so there is nothing "
            "to score. See the warnings for their reasons."
        )


def _restrict_to_common(results: pd.DataFrame) -> dict[str, Any]:
    """Mark, per seed, the perturbations every model could predict; report how many were left out and why.

    Says which models caused the restriction (a warning), and refuses to leave nothing to score: a model that
    predicts nothing would otherwise empty every model's results without a word.
    """
    ok = results.groupby(["seed", "perturbation"])["common"].transform("all")
    dropped = results.loc[~ok, ["seed", "perturbation"]].drop_duplicates()
    missing = results.loc[~results["common"]].groupby("model").size()
    if not ok.any():
        nothing = [m for m, part in results.groupby("model") if not part["common"].any()]
        raise ValueError(
            f"No perturbation was predicted by every model, so scoring only the common ones leaves nothing: "
            f"{', '.join(nothing) or 'the models together'} predicted none (NaN everywhere; see their reasons). "
            "Drop that model, fix it, or pass common_only=False to score each model on what it predicted."
        )
    if len(dropped):
        culprits = ", ".join(f"{m} ({n} rows)" for m, n in missing.items())
        warnings.warn(f"Scoring only the perturbations every model predicted: {len(dropped)} left out because of "
                      f"{culprits}.", RuntimeWarning, stacklevel=5)
    results["common"] = ok
    reasons = results.loc[~results["l2"].notna(), ["model", "reason"]].value_counts()
    return {
        "n_scored": int(results[["seed", "perturbation"]].drop_duplicates().shape[0]),
        "n_dropped": int(len(dropped)),
        "dropped": sorted(set(dropped["perturbation"])),
        "reasons": {f"{m}: {r}": int(n) for (m, r), n in reasons.items()},
    }


def _check_pseudobulk(data):
    """The pseudobulk a run scores, checked where it enters: dense, one finite row per condition, ``ctrl`` among
    them. A sparse matrix is made dense (a copy: the user's object is not changed)."""
    from anndata import AnnData

    from .._conditions import require_one_row_each

    if not isinstance(data, AnnData):
        raise TypeError(
            f"run() takes a pseudobulk AnnData, got {type(data).__name__}. Build one with linpert.pseudobulk(adata)."
        )
    if CONTROL not in data.obs_names or "kind" not in data.obs:
        cells = _cell_level_column(data)
        if cells is not None:
            raise ValueError(
                f"This AnnData holds cells ({data.n_obs} rows; obs[{cells!r}] names their conditions), not a "
                f"pseudobulk. Pass linpert.pseudobulk(cells, condition_key={cells!r}) as the data, and the cells "
                "as cells= for calibrated scores."
            )
    if CONTROL not in data.obs_names:
        raise ValueError("The pseudobulk has no 'ctrl' row; linpert.pseudobulk() adds it from the control cells.")
    if "kind" not in data.obs:
        raise ValueError(
            "The AnnData has no obs['kind'] column: it does not look like a linpert pseudobulk. "
            "Pass the result of linpert.pseudobulk(adata), or linpert.as_pseudobulk(means, conditions, genes)."
        )
    require_one_row_each(data.obs_names)
    if data.var_names.has_duplicates:
        repeated = sorted(set(data.var_names[data.var_names.duplicated()]))[:5]
        raise ValueError(f"Gene names occur more than once: {repeated}. Make them unique "
                         "(adata.var_names_make_unique(), or linpert.pseudobulk) before the run.")
    if hasattr(data.X, "toarray"):  # a pseudobulk is small: conditions × genes
        data = data.copy()
        data.X = data.X.toarray()
    values = np.asarray(data.X)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"The pseudobulk's values are {values.dtype}, not numbers: X must hold the mean log "
                        "expression of each condition.")
    bad = ~np.isfinite(values)
    if bad.any():
        rows, columns = np.flatnonzero(bad.any(axis=1)), np.flatnonzero(bad.any(axis=0))
        raise ValueError(
            f"The pseudobulk holds NaN or infinite values ({int(bad.sum())}; conditions: "
            f"{', '.join(data.obs_names[rows[:3]])}{', ...' * (len(rows) > 3)}; genes: "
            f"{', '.join(data.var_names[columns[:3]])}{', ...' * (len(columns) > 3)}). A condition's mean log "
            "expression is finite, and a score over fewer genes would not compare with the others: drop those "
            "conditions or genes (pb[rows, genes].copy()), or pseudobulk the cells again."
        )
    return data


def _cell_level_column(data) -> str | None:
    """The obs column that names cells' conditions, when ``data`` looks like cell-level data; else None."""
    key = (data.uns.get("linpert", {}) or {}).get("condition_key", "condition")
    for column in dict.fromkeys([key, "condition", "perturbation", "target_gene"]):
        if column in data.obs and data.obs[column].astype(str).duplicated().any():
            return column
    return None


def _vouched_labels(models) -> set[str]:
    """Labels the user gave explicitly, as ``(label, model)`` pairs or ``label=spec`` strings."""
    from ..models import spec_label

    given = [models] if isinstance(models, str) else list(models)
    pairs = {item[0] for item in given if isinstance(item, tuple) and len(item) == 2}
    specs = {spec_label(item) for item in given if isinstance(item, str)} - {None}
    return pairs | {label.strip() for label in specs}


def _unverifiable(labelled, vouched: set[str]) -> dict[str, str]:
    """Models whose identity linpert cannot check and that the user did not label, with why
    (:func:`._identity.why_opaque`)."""
    whys = {label: why_opaque(model) for label, model in labelled if label not in vouched}
    return {label: why for label, why in whys.items() if why}

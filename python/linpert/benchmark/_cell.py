"""One cell of the grid: fit one model on one split, predict the scored conditions, score them, and measure it.

:func:`run_here` runs cells one after another in this process. It is one of the runner's two executors (the other is
:func:`._dask.run_on_dask`); both take ``(plan, todo, store, progress=)``, save each finished cell into the store,
and yield ``((seed, label), cell)``, or ``((seed, label), WorkerError)`` for a cell whose model worker failed.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from .._compiled import between_kernels
from .._errors import WorkerError, raised_in
from .._threads import one_blas_thread, threads
from ..metrics import score


def run_here(plan, todo: list, store, *, progress: bool) -> Iterator[tuple[tuple[int, str], dict | WorkerError]]:
    """Run the cells of ``todo`` (``(seed, label, model)``) one after another, saving each into ``store`` if any."""
    from tqdm.auto import tqdm

    bar = tqdm(todo, desc=f"{plan.dataset} · {plan.split}", unit="fit", disable=not progress)
    for seed, label, model in bar:
        bar.set_postfix_str(f"seed {seed} · {label}")
        try:
            cell = _run_cell(plan.data, plan.splits[seed], label, model, plan.readout, plan.ctrl, plan.dataset,
                             de_order=plan.de_order)
        except WorkerError as err:
            yield (seed, label), err
            continue
        if store:
            store.save(seed, label, cell)
        yield (seed, label), cell


@one_blas_thread()  # on a Dask worker too
def _run_cell(data, split, label, model, readout, ctrl, dataset, de_order: np.ndarray | None = None) -> dict:
    """Fit one model on one split, predict the scored conditions and score them. ``de_order``: every condition's
    genes by decreasing observed change (:func:`linpert.metrics._paper.de_gene_order`), where the caller sorted them
    once for every cell."""
    from ..models._base import SPLIT_KEY

    train = data[list(split.train)].copy()
    # which split the model is fitted on: the paper's scripts seed their random draws with it, and select on its
    # validation conditions (an adapter's preset="paper" does too)
    train.uns["linpert"] = {**dict(train.uns.get("linpert", {})),
                            SPLIT_KEY: {"seed": split.seed, "conditions": [*split.train, *split.val, *split.test],
                                        "val": list(split.val)}}
    scored = list(split.scored)
    with between_kernels():  # another thread's kernel must not be running when tracing starts or stops
        tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with _named(f"fitting model {label!r} on split seed {split.seed}", model):
            model.fit(train)
        t1 = time.perf_counter()
        with _named(f"predicting with model {label!r} on split seed {split.seed}", model):
            prediction = model.predict(scored)
        t2 = time.perf_counter()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        with between_kernels():
            tracemalloc.stop()
    # adapters train in a worker process that tracemalloc cannot see; they report its peak themselves
    peak = max(peak, getattr(model, "peak_memory_mib_", None) or 0.0)

    values, reasons = _aligned(prediction, scored, data.var_names, label)
    values, reasons = _whole_rows(values, reasons, readout, label)
    observed = np.asarray(data[scored].X, dtype=np.float64)
    pred, obs = values[:, readout], observed[:, readout]
    table = score(pred, obs, ctrl[readout])
    assignment = split.assignment()
    kinds = data.obs["kind"].reindex(scored).to_numpy()
    results = pd.DataFrame(
        {
            "dataset": dataset,
            "split": split.kind,
            "seed": split.seed,
            "model": label,
            "perturbation": scored,
            "kind": kinds,
            "set": assignment.reindex(scored).to_numpy(),
            "l2": table["l2"].to_numpy(),
            "pearson_delta": table["pearson_delta"].to_numpy(),
            "r2": table["r2"].to_numpy(),
            "reason": reasons,
        }
    )
    results["common"] = np.isfinite(results["l2"].to_numpy())
    timing = {
        "dataset": dataset,
        "split": split.kind,
        "seed": split.seed,
        "model": label,
        "fit_seconds": t1 - t0,
        "predict_seconds": t2 - t1,
        "peak_mib": peak,
        "n_train": len(split.train),
        "n_scored": len(scored),
        "environment": _environment(model),
        "preset": getattr(model, "preset", ""),  # an adapter's: the paper's settings, or linpert's own
        **threads().columns(),
    }
    predictions = pd.DataFrame(pred, index=scored, columns=data.var_names[readout])
    return {"results": results, "timing": timing, "predictions": predictions,
            "l2_by_n": l2_by_n_sums(values, observed, ctrl, None if de_order is None else
                                    de_order[data.obs_names.get_indexer(scored)]),
            # a model that learns from another dataset names its control profile (Extended Data Fig. 9)
            "reference_control": getattr(model, "reference_control_", None)}


@contextmanager
def _named(step: str, model) -> Iterator[None]:
    """An error raised inside a model says which model, step and seed it came from (a note on the error itself)."""
    try:
        yield
    except Exception as err:
        if not isinstance(err, WorkerError):  # a worker's error already names its model and carries its log
            raised_in(err, f"while {step}", user_code=not type(model).__module__.startswith("linpert."))
        raise


def l2_by_n_sums(predicted: np.ndarray, observed: np.ndarray, control: np.ndarray,
                 de_order: np.ndarray | None = None) -> pd.DataFrame:
    """The L2 over the top n of **all** genes (Extended Data Figs 2b, 8b: the curves run past the read-out genes),
    summed over the perturbations predicted on every gene: ``order, n, count, sum, sum_sq``, so that seeds pool.

    Only the predictions kept for the other metrics are the read-out genes', so this is computed here, where the
    whole prediction is at hand.
    """
    from ..metrics import top_expressed_genes
    from ..metrics._paper import de_gene_order, l2_along

    whole = np.isfinite(predicted).all(axis=1)
    orders = {"expression": top_expressed_genes(control, n_genes=control.size),
              "de": de_gene_order(observed[whole], control) if de_order is None else de_order[whole]}
    parts = []
    for order, genes in orders.items():
        table = l2_along(predicted[whole], observed[whole], genes)
        grouped = table.assign(sq=table["l2"] ** 2).groupby("n", sort=True)
        parts.append(pd.DataFrame({"order": order, "count": grouped.size(), "sum": grouped["l2"].sum(),
                                   "sum_sq": grouped["sq"].sum()}).reset_index())
    return pd.concat(parts, ignore_index=True)[["order", "n", "count", "sum", "sum_sq"]]


def _aligned(prediction, conditions: list[str], genes: pd.Index, label: str) -> tuple[np.ndarray, np.ndarray]:
    """A model's prediction as conditions × genes in the requested order, matched by name, and each row's reason.

    Rows and columns are matched by ``obs_names`` and ``var_names``, never by position: a model may return them in
    any order. Missing, extra or repeated names are refused, since scoring them would give a wrong number.
    """
    from anndata import AnnData

    contract = ("predict(conditions) must return an AnnData with one row per requested condition (obs_names) and "
                "the training genes as var_names (README: 'Your own model').")
    if not isinstance(prediction, AnnData):
        raise TypeError(f"Model {label!r} returned {type(prediction).__name__} from predict(); {contract}")
    order = {}  # per axis, where each wanted name is among the prediction's (None: already in order)
    for axis, names, wanted in (("conditions", prediction.obs_names, conditions), ("genes", prediction.var_names,
                                                                                     genes)):
        names, wanted = pd.Index(np.asarray(names, dtype=str)), pd.Index(np.asarray(wanted, dtype=str))
        if names.equals(wanted) and wanted.is_unique:  # the usual case, without set differences of 19,000 genes
            order[axis] = None
            continue
        problems = {
            "misses": list(wanted.difference(names)),
            "has extra": list(names.difference(wanted)),
            "repeats": sorted(set(names[names.duplicated()])),
        }
        said = [f"{what} {len(items)} {axis} (e.g. {', '.join(items[:3])})"
                for what, items in problems.items() if items]
        if said:
            raise ValueError(f"Model {label!r}'s prediction {'; '.join(said)}. {contract}")
        order[axis] = names.get_indexer(wanted)
    X = prediction.X.toarray() if hasattr(prediction.X, "toarray") else prediction.X
    rows, columns = order["conditions"], order["genes"]
    try:
        values = np.array(X, dtype=np.float64)  # a copy: the model keeps its own
    except (TypeError, ValueError) as err:
        raise TypeError(f"Model {label!r} predicted values that are not numbers ({err}); {contract}") from None
    values = values if rows is None else values[rows]
    values = values if columns is None else values[:, columns]
    rows = np.arange(len(conditions)) if rows is None else rows
    infinite = np.isinf(values).any(axis=1)
    if infinite.any():
        shown = ", ".join(np.asarray(conditions)[infinite][:3])
        raise ValueError(f"Model {label!r} predicted infinite values for {int(infinite.sum())} conditions (e.g. "
                         f"{shown}). Predict NaN, with obs['reason'], where the model cannot predict.")
    given = prediction.obs["reason"] if "reason" in prediction.obs else pd.Series("", index=prediction.obs_names)
    reasons = given.fillna("").astype(str).to_numpy()[rows]
    unexplained = ~np.isfinite(values).any(axis=1) & (reasons == "")
    reasons[unexplained] = f"{label} gave no prediction (no reason given)"
    return values, reasons


def _whole_rows(values: np.ndarray, reasons: np.ndarray, readout: np.ndarray, label: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """A row is scored on every read-out gene or not at all: a prediction missing some of them is blanked, with why.

    Scoring it on the rest would let a model win by leaving out the genes it predicts worst.
    """
    missing = (~np.isfinite(values[:, readout])).sum(axis=1)
    partial = (missing > 0) & (missing < readout.size)
    if partial.any():
        values[partial] = np.nan
        reasons = reasons.astype(object)
        for i in np.flatnonzero(partial):
            reasons[i] = (f"{label} predicted no value for {missing[i]} of the {readout.size} read-out genes: a row "
                          "is scored on every read-out gene or not at all")
    return values, reasons


def _environment(model) -> str:
    """What a worker model ran with (``"python 3.11.7, torch 2.0.0, cpa-tools 0.8.8, ..."``); "" in process."""
    versions = getattr(model, "versions_", None) or {}
    return ", ".join(f"{name} {version}" for name, version in versions.items())


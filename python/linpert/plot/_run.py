"""Reading a run folder (what :func:`linpert.benchmark.run` writes) into the tables the figures draw.

Everything derived is computed once, lazily, with the package's own functions (:mod:`linpert.metrics`,
:mod:`linpert.interactions`), so a figure and the report always show the numbers those functions give.
"""

from __future__ import annotations

import json
import os
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._conditions import CONTROL
from .._io import read_matrix



class RunFolder:
    """A run folder, read lazily: ``results``, ``summary``, ``timings``, ``config``, predictions, observed values.

    Parameters
    ----------
    root
        The folder :func:`linpert.benchmark.run` wrote (it holds ``run.json`` and ``results.parquet``).

    Examples
    --------
    >>> run = RunFolder("linpert-results/demo/double")  # doctest: +SKIP
    >>> run.results.groupby("model")["l2"].mean()  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        missing = [name for name in ("run.json", "results.parquet") if not (self.root / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.root} is not a finished linpert run folder (no {', '.join(missing)}). Pass the folder "
                "given as out= to linpert.benchmark.run (or --out of `linpert run`), after the run has finished."
            )

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    # ------------------------------------------------------------------------------------------- stored tables
    @cached_property
    def config(self) -> dict[str, Any]:
        return json.loads((self.root / "run.json").read_text())

    @cached_property
    def results(self) -> pd.DataFrame:
        return pd.read_parquet(self.root / "results.parquet")

    @cached_property
    def scorecard(self) -> pd.DataFrame:
        """One row per model, one column per metric (``scorecard.csv``, else computed from the results)."""
        path = self.root / "scorecard.csv"
        if path.is_file():
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
        from ..metrics import scorecard

        return scorecard(self.results)

    @cached_property
    def summary(self) -> pd.DataFrame:
        path = self.root / "summary.csv"
        if path.is_file():
            return pd.read_csv(path)
        from ..metrics._registry import summarise

        return summarise(self.results, self.timings)

    @cached_property
    def timings(self) -> pd.DataFrame | None:
        path = self.root / "timings.csv"
        return pd.read_csv(path) if path.is_file() else None

    @cached_property
    def restriction(self) -> dict[str, Any]:
        path = self.root / "restriction.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def label(self) -> str:
        return f"{self.config.get('dataset', '?')} · {self.config.get('split', '?')}"

    @property
    def models(self) -> list[str]:
        from ._style import model_order

        return model_order(self.results["model"].unique())

    def interaction_table(self, name: str) -> pd.DataFrame | None:
        """A table of ``interactions/`` (``tpr_fdp``, ``auc_summary``, ``calls``, ...), or None if not written."""
        folder = self.root / "interactions"
        for path in (folder / f"{name}.csv", folder / f"{name}.parquet"):
            if path.is_file():
                return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        return None

    @property
    def has_interactions(self) -> bool:
        return (self.root / "interactions" / "calls.parquet").is_file()

    # ------------------------------------------------------------------------------------------- predictions
    @cached_property
    def prediction_files(self) -> dict[tuple[int, str], Path]:
        """``(seed, model) → path`` of the stored predictions, for the models of ``results``."""
        from ..benchmark._store import cell_file

        cells = self.results[["seed", "model"]].drop_duplicates().sort_values(["seed", "model"], kind="stable")
        paths = {(int(seed), model): cell_file(self.root, "predictions", int(seed), model)
                 for seed, model in cells.itertuples(index=False)}
        return {key: path for key, path in paths.items() if path.is_file()}

    @cached_property
    def predictions(self) -> dict[tuple[int, str], pd.DataFrame]:
        """``(seed, model) → DataFrame`` (scored perturbations × read-out genes) of predicted expression."""
        return {key: read_matrix(path) for key, path in self.prediction_files.items()}

    # ------------------------------------------------------------------------------------------- observed values
    @cached_property
    def observed(self) -> pd.DataFrame | None:
        """Observed expression of the scored perturbations on the read-out genes, with a ``ctrl`` row; or None.

        Read from ``observed.parquet`` when the runner stored it; for a double run with interactions it is rebuilt
        from ``interactions/calls.parquet``, which holds every double's observed value and the control on the
        read-out genes. None when neither is there.
        """
        path = self.root / "observed.parquet"
        if path.is_file():
            table = read_matrix(path)
            if CONTROL not in table.index:
                raise ValueError(f"{path} has no '{CONTROL}' row; it should hold the control profile as well.")
            return table
        calls = self.interaction_table("calls")
        if calls is None:
            return None
        genes = pd.unique(calls["gene"])
        wide = calls.pivot(index="perturbation", columns="gene", values="observed").reindex(columns=genes)
        ctrl = calls.drop_duplicates("gene").set_index("gene")["ctrl"].reindex(genes)
        wide.loc[CONTROL] = ctrl.to_numpy()
        wide.columns.name = None
        return wide

    def paired(self, seed: int, model: str) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray] | None:
        """Prediction, observed values (same rows and genes) and the control profile of one cell, or None."""
        obs = self.observed
        pred = self.predictions.get((seed, model))
        if obs is None or pred is None:
            return None
        rows = [p for p in pred.index if p in obs.index]
        genes = [g for g in pred.columns if g in obs.columns]
        if not rows or not genes:
            return None
        return pred.loc[rows, genes], obs.loc[rows, genes], obs.loc[CONTROL, genes].to_numpy(dtype=np.float64)

    @property
    def calibrated(self) -> pd.DataFrame | None:
        """Scaled scores against the replicate ceiling (``calibrated.csv``), when the run had cells."""
        path = self.root / "calibrated.csv"
        return pd.read_csv(path) if path.is_file() else None

    @property
    def interaction_note(self) -> str | None:
        """Why the interaction analysis did not run, or ran on fallback locfdr settings (``interactions/note.txt``)."""
        path = self.root / "interactions" / "note.txt"
        return path.read_text().strip() if path.is_file() else None

    @cached_property
    def published_results(self) -> pd.DataFrame | None:
        """The paper's per-perturbation results of its Figs 1a and 2a on this run's dataset (the scored rows of its
        main models), when the run is on one of its datasets."""
        if self.published("summary") is None:
            return None
        from ..published import results

        table = results(self.config.get("dataset"))
        return table[table["figure"].str.contains("1a|2a")].reset_index(drop=True)

    def published_interactions(self, name: str) -> pd.DataFrame | None:
        """The paper's interaction table ``name`` (e.g. ``tpr_fdp``) when this run is on its Norman data."""
        if self.published("summary") is None or self.config.get("dataset") != "norman":
            return None
        from ..published import interactions

        return interactions(name)

    def published(self, name: str) -> pd.DataFrame | None:
        """``summary`` or ``fidelity`` of the paper's published models, stored by a run on one of its datasets."""
        path = self.root / "published" / f"{name}.csv"
        return pd.read_csv(path) if path.is_file() else None

    # ------------------------------------------------------------------------------------------- derived tables
    @cached_property
    def forest(self) -> pd.DataFrame | None:
        """:func:`linpert.metrics.forest_table` against the mean baseline (None without one or without others).

        Read from ``forest.csv`` when the runner stored it, else computed (same defaults, so the same numbers).
        """
        from ..metrics import forest_table

        path = self.root / "forest.csv"
        if path.is_file():
            table = pd.read_csv(path)
            return table if len(table) else None
        models = set(self.results["model"])
        if "mean" not in models or len(models) < 2:
            return None
        return forest_table(self.results, reference="mean")

    @cached_property
    def l2_by_n(self) -> pd.DataFrame | None:
        """Mean L2 (and its standard error) over the top-n genes per model, n and gene order (``expression``/
        ``de``), perturbations and seeds pooled: over all genes, as the paper's Extended Data Figs 2b and 8b, from
        the sums each cell stored; in a run folder without them, over the read-out genes."""
        stored = self._l2_by_n_all_genes()
        return stored if stored is not None else self._l2_by_n_readout()

    def _l2_by_n_all_genes(self) -> pd.DataFrame | None:
        from ..benchmark._store import L2_BY_N, cell_file

        parts = []
        for (seed, model) in self.prediction_files:
            path = cell_file(self.root, L2_BY_N, seed, model)
            if not path.is_file():
                return None
            parts.append(pd.read_parquet(path).assign(model=model))
        if not parts:
            return None
        sums = pd.concat(parts, ignore_index=True).groupby(["model", "order", "n"], sort=False)[
            ["count", "sum", "sum_sq"]].sum().reset_index()
        sums = sums[sums["count"] > 0]
        mean = sums["sum"] / sums["count"]
        variance = (sums["sum_sq"] - sums["count"] * mean**2) / (sums["count"] - 1)
        se = np.sqrt(variance.clip(lower=0) / sums["count"]).where(sums["count"] > 1)
        return sums[["model", "order", "n"]].assign(l2=mean, se=se, genes="all").reset_index(drop=True)

    def _l2_by_n_readout(self) -> pd.DataFrame | None:
        from ..metrics import l2_by_n

        parts = []
        for (seed, model) in self.prediction_files:
            cell = self.paired(seed, model)
            if cell is None:
                continue
            pred, obs, ctrl = cell
            for order in ("expression", "de"):
                table = l2_by_n(pred.to_numpy(np.float64), obs.to_numpy(np.float64), ctrl, order=order)
                parts.append(table.assign(model=model, seed=seed, order=order))
        if not parts:
            return None
        table = pd.concat(parts, ignore_index=True).dropna(subset=["l2"])
        return table.groupby(["model", "order", "n"], sort=False)["l2"].mean().reset_index().assign(genes="read-out")

    @cached_property
    def spread(self) -> pd.DataFrame | None:
        """:func:`linpert.metrics.prediction_spread` per model and seed, tidy (``model, seed, gene, sd_pred, sd_obs``)."""
        from ..metrics import prediction_spread

        parts = []
        for (seed, model) in self.prediction_files:
            cell = self.paired(seed, model)
            if cell is None:
                continue
            pred, obs, _ = cell
            table = prediction_spread(pred.to_numpy(np.float64), obs.to_numpy(np.float64))
            parts.append(table.assign(model=model, seed=seed, gene=list(pred.columns)))
        return pd.concat(parts, ignore_index=True) if parts else None

    @cached_property
    def pairs(self) -> pd.DataFrame | None:
        """:func:`linpert.interactions.interaction_pairs` of the stored calls and predictions (double runs)."""
        from ..interactions import interaction_pairs

        calls = self.interaction_table("calls")
        if calls is None or not self.predictions:
            return None
        return interaction_pairs(calls, self.predictions)

    @cached_property
    def conditions(self) -> pd.DataFrame | None:
        """Each condition of the data with its ``kind`` and ``n_cells`` (``conditions.csv``), or None."""
        path = self.root / "conditions.csv"
        return pd.read_csv(path, index_col="condition") if path.is_file() else None

    def reference_control(self, model: str) -> pd.Series | None:
        """The control profile of the dataset a transfer model learned from (by gene), or None for other models."""
        from ..benchmark._store import REFERENCE, cell_file

        for seed, label in self.prediction_files:
            path = cell_file(self.root, REFERENCE, seed, label)
            if label == model and path.is_file():
                return pd.read_parquet(path)["ctrl"]
        return None

    @cached_property
    def no_interactions(self) -> list[str]:
        """The models that predict no interaction (every prediction additive, to rounding): not ranked or classed."""
        path = self.root / "interactions" / "no_interactions.json"
        if path.is_file():
            return list(json.loads(path.read_text()))
        from ..interactions import predicts_no_interactions

        return predicts_no_interactions(self.pairs) if self.pairs is not None else []  # a folder written before

    @cached_property
    def null(self) -> dict[str, float] | None:
        """The locfdr null of the interaction calls: ``delta, sigma, p0, lower, upper`` (or None).

        Read from ``interactions/null.json`` when the runner stored it; otherwise the fit is redone with
        :func:`linpert.interactions.locfdr` on the stored deviations (it is deterministic and takes a fraction of a
        second), with the null the calls used (``nulltype = 1``: the maximum-likelihood estimate).
        """
        calls = self.interaction_table("calls")
        if calls is None:
            return None
        path = self.root / "interactions" / "null.json"
        if path.is_file():
            return {k: float(v) for k, v in json.loads(path.read_text()).items() if k in _NULL_KEYS}
        from ..interactions import locfdr

        with warnings.catch_warnings():  # the fit's own warnings were shown when the run made the calls
            warnings.simplefilter("ignore")
            fit = locfdr(calls["deviation"].to_numpy(np.float64), backend="python")
        delta, sigma, p0 = (float(fit.fp0.loc["mlest", k]) for k in ("delta", "sigma", "p0"))
        return {"delta": delta, "sigma": sigma, "p0": p0,
                "lower": float(calls["lower"].iloc[0]), "upper": float(calls["upper"].iloc[0])}


_NULL_KEYS = ("delta", "sigma", "p0", "lower", "upper")


def as_run(run: RunFolder | str | os.PathLike) -> RunFolder:
    """A :class:`RunFolder` from a folder path (or the same object)."""
    return run if isinstance(run, RunFolder) else RunFolder(run)

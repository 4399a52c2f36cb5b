"""The run folder: finished cells written atomically and reused only by a run that would compute them again.

A run claims its folder with ``flock`` on ``run.lock``; each finished cell records what made it (data fingerprint,
split, read-out genes, model identity); a folder holding files linpert did not write, or cells a run would leave out
of its tables, is refused with the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_write, hold_folder, read_matrix
from ._identity import model_identity


FORMAT_VERSION = 1
#: The folder of a run that keeps the cell-level work (DE tests, replicate ceiling) of a cell file.
CELL_WORK = "from_cells"
L2_BY_N = "l2_by_n"  # each cell's L2 over the top n of all genes
REFERENCE = "reference"  # the control profile of the dataset a transfer model learned from, per cell
DE_TABLES = ("log2_fold_change", "statistic", "p_value", "fdr")


def _fingerprint(data) -> str:
    """A content hash of a pseudobulk: conditions, genes and values."""
    h = hashlib.sha256()
    h.update("\n".join(map(str, data.obs_names)).encode())
    h.update("\n".join(map(str, data.var_names)).encode())
    h.update(np.ascontiguousarray(data.X, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


#: The longest label kept whole in a file name (file systems allow 255 bytes; the suffixes take the rest).
_NAME_MAX = 100


def cell_name(seed: int, label: str) -> str:
    """The file stem of a cell's files (``cells/``, ``predictions/``), for the writer and every reader alike; labels
    that clean to the same characters (``a/b``, ``a_b``) still get distinct ones, and so do long labels cut short."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:_NAME_MAX]
    if safe != label:
        safe += "-" + hashlib.sha256(label.encode()).hexdigest()[:8]
    return f"seed{seed}__{safe}"


def cell_file(root: str | os.PathLike, folder: str, seed: int, label: str) -> Path:
    """Where a cell's file in ``folder`` (``predictions``, ``l2_by_n``, ``reference``) lies in a run folder."""
    return Path(root) / folder / f"{cell_name(seed, label)}.parquet"


def _run_config(data, split, dataset, n_genes, labelled) -> dict:
    config = {
        "format": FORMAT_VERSION,
        "dataset": dataset,
        "data": _fingerprint(data),
        "split": split,
        "n_genes": int(n_genes),
        "models": {label: model_identity(model) for label, model in labelled},
        "genes": int(data.n_vars),  # every gene of the data, for the dataset overview
    }
    provenance = data.uns.get("linpert", {}) or {}
    if len(provenance.get("dropped_conditions", [])):  # what loading the data left out, for the report
        config["dropped_conditions"] = {"names": [str(n) for n in provenance["dropped_conditions"]],
                                        "reason": str(provenance.get("dropped_reason", ""))}
    return config


def _null_summary(calls) -> dict[str, Any]:
    """The fitted empirical null and the thresholds, for the deviation histogram (Extended Data Fig. 3)."""
    fit = calls.locfdr
    row = {0: "thest", 1: "mlest"}.get(fit.call.get("nulltype", 1), "cmest")
    return {
        "estimate": row,
        **{name: float(value) for name, value in fit.fp0.loc[row].items()},  # delta, sigma (or sigleft/right), p0
        "lower": calls.lower,
        "upper": calls.upper,
        "level": calls.level,
        "rule": calls.rule,
        "backend": fit.backend,
        "settings": calls.settings,  # locfdr's options beyond R's defaults; {} is the paper's
        "fallback": calls.fallback,  # why the paper's settings were not used, or None
        "warnings": list(fit.warnings),
        "counts": {k: int(v) for k, v in calls.counts.items()},
    }


#: What every finished cell records of the run that made it; a stored cell is reused only when all of it matches.
_RUN_KEYS = ("format", "dataset", "data", "split", "n_genes")


class _Store:
    """The run's output folder, held under a lock: one set of files per finished grid cell, written atomically.

    Each cell records what produced it (data fingerprint, split, read-out genes, model identity), so a cell is
    reused only by a run that would compute it again, and ``run.json`` is an index rather than the only record.
    """

    def __init__(self, root, config: dict, *, grid=(), unverifiable: dict[str, str] | None = None):
        self.root = Path(root)
        self.cells = self.root / "cells"
        self.config = config
        self._held = ExitStack()  # the folder's lock (created and checked writable first), until close()
        self._held.enter_context(hold_folder(self.root))
        try:
            self._claim({(seed, label) for seed, label, _ in grid}, unverifiable or {})
        except BaseException:
            self.close()
            raise
        for folder in (self.cells, self.root / "splits", self.root / "predictions", self.root / L2_BY_N):
            folder.mkdir(exist_ok=True)

    def __enter__(self) -> _Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the folder for the next run."""
        if self._held is not None:
            self._held.close()

    def __getstate__(self) -> dict:
        """A copy sent to a Dask worker writes cells; the folder's lock stays with the run that holds it."""
        return {**vars(self), "_held": None}

    def _claim(self, grid: set[tuple[int, str]], unverifiable: dict[str, str]) -> None:
        """Refuse a folder whose stored work this run would mix, overwrite or leave out of its tables.

        ``unverifiable``: the unlabelled models whose identity cannot show every change, with why
        (:func:`._identity.why_opaque`).
        """
        run_json = self.root / "run.json"
        old = _read_json(run_json) if run_json.exists() else None
        stored = {key: record or _legacy_record(old, key[1]) for key, record in self._stored().items()}
        if old is None and not stored:
            foreign = [p.name for p in sorted(self.root.iterdir())
                       if p.name != "run.lock" and not (p.is_dir() and not any(p.iterdir()))]
            if foreign:
                raise FileExistsError(
                    f"{self.root} holds files that no linpert run wrote ({', '.join(foreign[:5])}"
                    f"{', ...' if len(foreign) > 5 else ''}) and no run.json. linpert never overwrites them: choose "
                    "an empty or new output folder."
                )
        models = self.config["models"]
        records = [record or {} for record in stored.values()]
        differs = sorted({k for record in records for k in _RUN_KEYS if record.get(k) != self.config[k]})
        differs += sorted({f"model {label}" for (_, label), record in stored.items()
                           if label in models and (record or {}).get("model") != models[label]})
        if differs:
            raise FileExistsError(
                f"{self.root} holds results of a different run (differs in: {', '.join(differs)}). Choose another "
                "output folder; linpert never overwrites earlier results."
            )
        unchecked = sorted({label for _, label in stored} & set(unverifiable))
        if unchecked:
            raise FileExistsError(
                f"{self.root} holds results of {', '.join(unchecked)}, a model linpert cannot inspect "
                f"({unverifiable[unchecked[0]]}), so linpert cannot tell whether it changed since. "
                f"If it did not, pass it as ('{unchecked[0]}', model) to reuse "
                "those results; if it did, give it a new label or choose another output folder."
            )
        left_out = sorted(set(stored) - grid)
        if left_out:
            seeds = sorted({seed for seed, _ in stored} | {seed for seed, _ in grid})
            labels = list(dict.fromkeys([label for _, label in sorted(stored)] + [label for _, label in sorted(grid)]))
            cells = ", ".join(f"{label} seed {seed}" for seed, label in left_out[:4]) + ", ..." * (len(left_out) > 4)
            raise FileExistsError(
                f"{self.root} holds finished cells this run leaves out ({cells}), "
                "and its tables must cover every stored cell. Run with all of them (finished cells are reused, not "
                f"refitted): seeds={seeds}, models={labels}; or choose another output folder."
            )
        atomic_write(run_json, json.dumps(self.config, indent=2))

    def _stored(self) -> dict[tuple[int, str], dict | None]:
        """(seed, label) -> the run record of each finished cell in the folder (None for cells from linpert < 0.2)."""
        found = {}
        for path in sorted(self.cells.glob("*.timing.json")) if self.cells.is_dir() else []:
            if not path.with_name(path.name.removesuffix(".timing.json") + ".parquet").exists():
                continue  # interrupted before its results file: not finished
            timing = _read_json(path)
            found[(int(timing["seed"]), str(timing["model"]))] = timing.get("run")
        return found

    def _record(self, label: str) -> dict:
        return {**{k: self.config[k] for k in _RUN_KEYS}, "model": self.config["models"][label]}

    def _name(self, seed: int, label: str) -> str:
        return cell_name(seed, label)

    def load(self, seed: int, label: str) -> dict | None:
        name = self._name(seed, label)
        path = self.cells / f"{name}.parquet"
        if not path.exists():
            return None
        try:
            results = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises its own error types for a damaged file
            raise ValueError(_damaged(path, err, "that cell is then fitted again")) from None
        timing = _read_json(self.cells / f"{name}.timing.json")
        timing.pop("run", None)
        return {"results": results, "timing": timing}

    def l2_by_n_path(self, seed: int, label: str) -> Path:
        """A cell's L2 over the top n of all genes (:func:`._cell.l2_by_n_sums`); absent in older run folders."""
        return cell_file(self.root, L2_BY_N, seed, label)

    def save(self, seed: int, label: str, cell: dict) -> None:
        name = self._name(seed, label)
        atomic_write(self.predictions_path(name), cell["predictions"], kind="matrix")
        timing = {**cell["timing"], "run": self._record(label)}
        atomic_write(self.cells / f"{name}.timing.json", json.dumps(timing, indent=2))
        if cell.get("l2_by_n") is not None:
            atomic_write(self.l2_by_n_path(seed, label), cell["l2_by_n"], kind="parquet")
        if cell.get("reference_control") is not None:  # a transfer model's other dataset, for Extended Data Fig. 9
            table = cell["reference_control"].rename("ctrl").to_frame()
            atomic_write(cell_file(self.root, REFERENCE, seed, label), table, kind="parquet")
        # the results file is written last: its presence marks the cell as finished
        atomic_write(self.cells / f"{name}.parquet", cell["results"], kind="parquet")

    def load_predictions(self, seed: int, label: str) -> pd.DataFrame:
        path = self.predictions_path(self._name(seed, label))
        try:
            return read_matrix(path)
        except Exception as err:
            raise ValueError(_damaged(path, err, "its cell must then be fitted again: move its cells/ files "
                                      "aside too")) from None

    def save_interactions(self, calls, evaluation) -> None:
        folder = self.root / "interactions"
        table = calls.table.assign(lower=calls.lower, upper=calls.upper)
        atomic_write(folder / "calls.parquet", table, kind="parquet")
        atomic_write(folder / "null.json", json.dumps(_null_summary(calls), indent=2))
        atomic_write(folder / "tpr_fdp.csv", evaluation.tpr_fdp, kind="csv")
        atomic_write(folder / "tpr_fdp_by_seed.csv", evaluation.curves, kind="csv")
        atomic_write(folder / "auc.csv", evaluation.auc, kind="csv")
        atomic_write(folder / "auc_summary.csv", evaluation.auc_summary, kind="csv")
        atomic_write(folder / "top_classes.csv", evaluation.top_classes, kind="csv")
        atomic_write(folder / "recurrence.csv", evaluation.recurrence, kind="csv")
        atomic_write(folder / "no_interactions.json", json.dumps(list(evaluation.no_interactions)))

    def predictions_path(self, name: str) -> Path:
        return self.root / "predictions" / f"{name}.parquet"

    def save_split(self, split) -> None:
        path = self.root / "splits" / f"{split.kind}_seed{split.seed}.json"
        if not path.exists():
            split.to_json(path)

    def load_cell_work(self, key: dict) -> tuple | None:
        """``(de, ceiling)`` kept by :meth:`save_cell_work` under this very ``key``, else None."""
        from ..metrics import DifferentialExpression

        folder = self.root / CELL_WORK
        try:
            if json.loads((folder / "key.json").read_text()) != key:
                return None
            de = DifferentialExpression(*(read_matrix(folder / f"de_{name}.parquet").rename_axis("perturbation")
                                          for name in DE_TABLES)) if key["de"] else None
            ceiling = pd.read_parquet(folder / "ceiling.parquet") if key["ceiling"] else None
        except (OSError, ValueError, KeyError):  # absent, partly written or damaged: computed again
            return None
        return de, ceiling

    def save_cell_work(self, key: dict, de, ceiling: pd.DataFrame | None) -> None:
        """Keep the DE tests and the replicate ceiling of the cells; the key goes last, so a write cut short is
        never taken for a finished one."""
        folder = self.root / CELL_WORK
        (folder / "key.json").unlink(missing_ok=True)
        for name in DE_TABLES if de is not None else ():
            atomic_write(folder / f"de_{name}.parquet", getattr(de, name), kind="matrix")  # tidy: fast to write
        if ceiling is not None:
            atomic_write(folder / "ceiling.parquet", ceiling, kind="parquet")
        atomic_write(folder / "key.json", json.dumps(key, indent=1))

    def save_conditions(self, obs: pd.DataFrame) -> None:
        """Each condition's kind and number of cells (``conditions.csv``), for the dataset overview."""
        table = obs.reindex(columns=["kind", "n_cells"]).rename_axis("condition").reset_index()
        atomic_write(self.root / "conditions.csv", table, kind="csv")

    def save_observed(self, observed: pd.DataFrame) -> None:
        """The observed pseudobulk on the read-out genes (every condition), for figures that need the truth."""
        atomic_write(self.root / "observed.parquet", observed, kind="matrix")

    def save_interaction_note(self, note: str | None) -> None:
        """``interactions/note.txt`` says why the analysis did not run or ran on fallback settings; gone otherwise."""
        path = self.root / "interactions" / "note.txt"
        if note:
            atomic_write(path, note + "\n")
        else:
            path.unlink(missing_ok=True)

    def save_published(self, summary, fidelity) -> None:
        if summary is not None:
            atomic_write(self.root / "published" / "summary.csv", summary, kind="csv")
        if fidelity is not None:
            atomic_write(self.root / "published" / "fidelity.csv", fidelity, kind="csv")

    def finish(self, results, timings, summary, card, restriction, forest=None, calibrated=None) -> None:
        atomic_write(self.root / "results.parquet", results, kind="parquet")
        atomic_write(self.root / "results.csv", results, kind="csv")
        atomic_write(self.root / "timings.csv", timings, kind="csv")
        atomic_write(self.root / "summary.csv", summary, kind="csv")
        atomic_write(self.root / "scorecard.csv", card, kind="csv")
        if restriction:
            atomic_write(self.root / "restriction.json", json.dumps(restriction, indent=2))
        if forest is not None:
            atomic_write(self.root / "forest.csv", forest, kind="csv")
        if calibrated is not None:
            atomic_write(self.root / "calibrated.csv", calibrated, kind="csv")


def _legacy_record(old: dict | None, label: str) -> dict | None:
    """A cell written before cells recorded their run: it belongs to the run in ``run.json``."""
    if old is None:
        return None
    return {**{k: old.get(k) for k in _RUN_KEYS}, "model": old.get("models", {}).get(label)}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(_damaged(path, err, "linpert then checks the run against the cells' own records")) from None


def _damaged(path: Path, err: Exception, then: str) -> str:
    return (f"{path} is damaged ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Move it "
            f"aside (mv '{path}' '{path}.damaged') and run again; {then}.")


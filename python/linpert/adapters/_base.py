"""The adapter side of the worker protocol: run folder, request files, the worker process, reading its outputs.

A :class:`WorkerModel` never imports its model's stack. ``fit`` writes the cells (GEARS' format) and a JSON request
into a run folder, starts the worker script (``workers/<model>_worker.py``) with the chosen environment and reads
its report; ``predict`` writes a second request and reads ``predictions.h5ad``.

The protocol (version 1), every path relative to the worker's view:

``request.json``
    ``{"protocol": 1, "action": "fit" | "predict", "model": str, "run_dir": str, "cells": str, "train": [...],
    "val": [...], "model_dir": str, "device": "auto" | "cpu" | "cuda", "seed": int, "params": {...},
    "inputs": {name: path}, "perturbations": [[gene, ...], ...] (predict), "output": str}``
fit output
    ``fit.json``: ``{"seconds", "train_seconds", "epochs", "device", "peak_rss_mib", "peak_gpu_mib",
    "train_conditions", "val_conditions", "dropped", "predictable_genes" (or null: any gene), "versions"}`` and
    the model in ``model_dir``.
predict output
    ``predictions.h5ad``: rows keyed by the genes joined with ``_`` (GEARS' keys), ``obs['reason']``, columns the
    gene symbols; ``predict.json`` with ``seconds``, ``peak_rss_mib``, ``peak_gpu_mib``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._conditions import CONTROL, Condition, parse_condition
from .._errors import WorkerError
from .._io import atomic_write
from ..models._base import PerturbationModel, check_training, require_paths, split_context
from ._cells import gears_cells, load_cells, validation_conditions
from ._environment import WORKERS, Launcher, Runtime, Stack, launcher

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

PROTOCOL = 1


class WorkerModel(PerturbationModel):
    """Base class of the adapters that run a deep-learning model in a worker process.

    Subclasses set the class attributes below, store their hyperparameters in ``__init__`` (including the shared
    ones: ``cells``, ``validation``, ``runtime``, ``device``, ``seed``, ``work_dir``, ``condition_key``) and
    implement :meth:`_params` and, where the worker needs files from the user, :meth:`_inputs`.

    After ``fit``: ``fit_seconds_`` (wall clock of ``fit``, worker start included), ``train_seconds_`` (the
    worker's training loop), ``peak_memory_mib_`` (GPU peak when the worker ran on CUDA, else the worker's peak
    resident memory), ``device_``, ``versions_`` (Python and the stack's package versions the worker ran with),
    ``train_conditions_`` / ``val_conditions_`` (what the worker trained and validated on), ``dropped_`` (training
    conditions the model could not use, with why) and ``run_dir_``. ``predict`` changes nothing on the model; the
    worker's report of each prediction is ``run_dir_ / "predict.json"``.
    """

    #: Worker script in ``linpert/adapters/workers``.
    worker: str = ""
    #: Modules the worker imports (checked for ``runtime="current"``).
    modules: tuple[str, ...] = ()
    #: The linpert extra that installs the stack into this interpreter ("" where none can: use a venv).
    extra: str = ""
    #: The stacks known to install, the paper's pins first; a venv uses the first that supports its Python.
    stacks: tuple[Stack, ...] = ()
    #: Whether the worker needs reconstructed counts in ``layers['counts']``.
    needs_counts: bool = False
    #: Where the worker runs when ``runtime`` is None.
    default_runtime: str = "venv"

    # -- what subclasses provide -------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """The model's settings, JSON-serialisable, passed to the worker."""
        raise NotImplementedError

    def _inputs(self) -> dict[str, str | os.PathLike]:
        """User files or folders the worker reads (checkpoints, GO files), by name."""
        return {}

    def check_inputs(self) -> None:
        """The user's files and folders (``_inputs``, and ``cells`` when it is a path) exist; a required one that
        is not given raises too."""
        require_paths(**self._inputs(), cells=self.cells)

    def _check_inputs(self, genes: list[str]) -> None:
        """Check the user's files against the training genes before any worker starts (raise a clear error)."""

    # -- the contract ------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        def show(value: Any) -> str:
            if hasattr(value, "n_obs") and hasattr(value, "n_vars"):
                return f"<AnnData {value.n_obs}×{value.n_vars}>"
            return repr(value)

        params = ", ".join(f"{k}={show(v)}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def fit(self, train: AnnData, *, cells: Any = None) -> WorkerModel:
        """Train the model in its worker on the cells of the training conditions of ``train``.

        Parameters
        ----------
        train
            Pseudobulk of the training conditions (``ctrl`` included): its rows say which conditions are train,
            its columns which genes to predict.
        cells
            Cell-level data in GEARS' format (AnnData or ``.h5ad`` path); overrides the constructor's ``cells``.

        Returns
        -------
        self
        """
        t0 = time.perf_counter()
        data = check_training(train)
        self._check_inputs(list(data.genes))
        cells = load_cells(cells if cells is not None else self.cells, condition_key=self.condition_key)
        seed = 0 if self.seed is None else int(self.seed)
        train_names = list(data.conditions)
        validation = self._validation(train)
        val_names = [] if validation is None else validation_conditions(train_names, validation, seed=seed)
        if not isinstance(validation, (int, float)):
            fit_names = train_names
        else:  # a fraction is held out of the training conditions
            fit_names = [c for c in train_names if c not in set(val_names)]
        adata = gears_cells(
            cells,
            [*fit_names, *val_names],
            condition_key=self.condition_key,
            genes=list(data.genes),
            counts=self.needs_counts,
        )
        run_dir = self._new_run_dir()
        the_launcher = self._launcher()
        atomic_write(run_dir / "cells.h5ad", adata, kind="h5ad")
        del adata
        request = self._request("fit", the_launcher, run_dir, seed=seed)
        request.update(train=fit_names, val=val_names)
        report = self._call(the_launcher, run_dir, request)

        self._remember(data)
        self.launcher_ = the_launcher
        self.run_dir_ = run_dir
        self.seed_ = seed
        self.device_ = report["device"]
        self.versions_ = dict(report.get("versions", {}))
        self.train_seconds_ = float(report.get("train_seconds", report["seconds"]))
        self.peak_memory_mib_ = peak_mib(report)
        self.train_conditions_ = list(report.get("train_conditions", fit_names))
        self.val_conditions_ = list(report.get("val_conditions", val_names))
        self.dropped_ = dict(report.get("dropped", {}))
        genes = report.get("predictable_genes")
        self.predictable_genes_ = None if genes is None else frozenset(genes)
        self.fit_report_ = report
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _predict(self, conditions: list[Condition]) -> tuple[np.ndarray, list[str]]:
        X = np.full((len(conditions), len(self.genes_)), np.nan)
        reasons = [""] * len(conditions)
        asked: dict[str, int] = {}
        for i, condition in enumerate(conditions):
            reason = self._cannot_predict(condition)
            if reason:
                reasons[i] = reason
            elif condition.is_control:
                X[i] = self.ctrl_  # the worker's baseline is the control mean: no model call needed
            else:
                asked[condition.name] = i
        if asked:
            request = self._request("predict", self.launcher_, self.run_dir_, seed=self.seed_)
            request["perturbations"] = [list(conditions[i].genes) for i in asked.values()]
            self._call(self.launcher_, self.run_dir_, request)
            predicted = _read_predictions(self.run_dir_ / "predictions.h5ad", self.genes_)
            for name, i in asked.items():
                if name not in predicted.index:
                    reasons[i] = f"the {self.name} worker returned no prediction for {name}"
                    continue
                reasons[i] = str(predicted.at[name, "reason"])
                if not reasons[i]:
                    X[i] = predicted.loc[name, "values"]
        return X, reasons

    def _cannot_predict(self, condition: Condition) -> str:
        if self.predictable_genes_ is None:
            return ""
        unknown = [g for g in condition.genes if g not in self.predictable_genes_]
        if unknown:
            return f"{', '.join(unknown)} not in {self.name}'s perturbation graph"
        return ""

    # -- plumbing ---------------------------------------------------------------------------------------
    def _validation(self, train: AnnData) -> float | Sequence[str] | None:
        """The validation conditions, or the fraction of training perturbations to hold out; None where the worker
        validates on random cells of the training conditions instead (CPA's tutorial).

        ``validation=None`` leaves it to the preset: ``"paper"``, the split's validation conditions where the runner
        recorded them (the paper's scripts select on them; they are also scored, so this is the paper's choice, not
        a clean one), else a tenth of the training perturbations, which ``"linpert"`` always holds out.
        """
        preset = getattr(self, "preset", "linpert")
        if preset not in ("paper", "linpert"):
            raise ValueError(f"preset={preset!r}: use 'paper' (the settings the paper ran) or 'linpert'.")
        if self.validation is not None:
            return self.validation
        if preset == "paper":
            named = split_context(train).get("val")
            if named:
                return list(named)
        return 0.1

    def _launcher(self) -> Launcher:
        return launcher(
            Runtime.of(self.runtime if self.runtime is not None else self.default_runtime),
            model=self.name,
            modules=self.modules,
            extra=self.extra,
            stacks=self.stacks,
            gpu=self.device == "cuda" or (self.device == "auto" and shutil.which("nvidia-smi") is not None),
        )

    def _request(self, action: str, the_launcher: Launcher, run_dir: Path, *, seed: int) -> dict[str, Any]:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={self.device!r}: use 'auto' (CUDA when available), 'cpu' or 'cuda'.")
        self.check_inputs()
        inputs = {key: the_launcher.path(path) for key, path in self._inputs().items()}
        return {
            "protocol": PROTOCOL,
            "action": action,
            "model": self.name,
            "run_dir": the_launcher.run_path(run_dir, ""),
            "cells": the_launcher.run_path(run_dir, "cells.h5ad"),
            "model_dir": the_launcher.run_path(run_dir, "model"),
            "output": the_launcher.run_path(run_dir, "predictions.h5ad" if action == "predict" else "fit.json"),
            "report": the_launcher.run_path(run_dir, f"{action}.json"),
            "device": self.device,
            "seed": seed,
            "params": self._params(),
            "inputs": inputs,
        }

    def _call(self, the_launcher: Launcher, run_dir: Path, request: dict[str, Any]) -> dict[str, Any]:
        return call_worker(the_launcher, WORKERS / self.worker, run_dir, request, model=self.name)

    def _new_run_dir(self) -> Path:
        if self.work_dir is not None:
            Path(self.work_dir).mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self.work_dir)).resolve()
        run_dir = Path(tempfile.mkdtemp(prefix=f"linpert-{self.name}-")).resolve()
        weakref.finalize(self, shutil.rmtree, run_dir, ignore_errors=True)  # temporary: gone with the model
        return run_dir


def run_once(
    runtime: Runtime | str,
    *,
    model: str,
    worker: str,
    modules: tuple[str, ...],
    stacks: tuple[Stack, ...],
    action: str,
    inputs: dict[str, str | os.PathLike],
    output: str,
    keep: str | os.PathLike,
    request: dict[str, Any] | None = None,
    files: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one worker action outside a model's fit/predict (write a random checkpoint, embed cells).

    The worker reads ``inputs`` (user folders, mounted read-only in containers) and ``files`` (file name -> a
    writer ``f(path)`` putting that file into the run folder; the request names it by its stem: ``cells.h5ad`` as
    ``request["cells"]``) and writes ``output`` into the run folder, which is then moved to ``keep``; the run folder
    is removed, unless the worker failed: the error names its log there. Returns the worker's report.
    """
    the_launcher = launcher(Runtime.of(runtime), model=model, modules=modules, extra="", stacks=stacks)
    run_dir = Path(tempfile.mkdtemp(prefix=f"linpert-{model}-{action}-")).resolve()
    try:
        for name, write in (files or {}).items():
            write(run_dir / name)
        full = {"protocol": PROTOCOL, "action": action, "seed": 0, "device": "cpu", "params": {},
                "run_dir": the_launcher.run_path(run_dir, ""),
                "report": the_launcher.run_path(run_dir, f"{action}.json"),
                "inputs": {key: the_launcher.path(path) for key, path in inputs.items()},
                "output": the_launcher.run_path(run_dir, output),
                **{Path(name).stem: the_launcher.run_path(run_dir, name) for name in files or {}}, **(request or {})}
        report = call_worker(the_launcher, WORKERS / worker, run_dir, full, model=model)
        shutil.move(str(run_dir / output), keep)
    except WorkerError:
        raise  # the run folder stays, with the log the error names
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    shutil.rmtree(run_dir, ignore_errors=True)
    return report


def embed_once(runtime: Runtime | str, *, inputs: dict[str, str | os.PathLike], files: dict[str, Any],
               request: dict[str, Any], action: str = "embed", **worker: Any) -> pd.DataFrame:
    """Run a worker's ``embed`` action (or another that writes an embedding; see :func:`run_once` for ``worker``'s
    keys) and read the per-condition table it writes (``workers/_protocol.write_embedding``): conditions ×
    dimensions, with the worker's report in ``attrs["worker"]``."""
    with tempfile.TemporaryDirectory(prefix="linpert-embedding-") as tmp:
        out = Path(tmp) / "embedding.npz"
        report = run_once(runtime, action=action, inputs=inputs, output=out.name, keep=out, files=files,
                          request=request, **worker)
        with np.load(out) as saved:
            table = pd.DataFrame(saved["embedding"], index=pd.Index(saved["conditions"].astype(str), name="condition"))
    table.attrs["worker"] = report  # what the worker did: device, cells, epochs, peak memory, versions
    return table


def call_worker(
    the_launcher: Launcher, worker: Path, run_dir: Path, request: dict[str, Any], *, model: str
) -> dict[str, Any]:
    """Write the request, run the worker, return its JSON report or raise :class:`WorkerError` with its log.

    The worker writes its outputs atomically and its report last, so a worker that crashes or is killed leaves
    no report and no half-written output behind: the stale report of an earlier call is removed first.
    """
    action = request["action"]
    report_path = run_dir / f"{action}.json"
    report_path.unlink(missing_ok=True)
    atomic_write(run_dir / f"request-{action}.json", json.dumps(request, indent=1))
    command = the_launcher.command(worker, f"request-{action}.json", run_dir=run_dir)
    log = run_dir / f"{action}.log"
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=run_dir)
    if done.returncode != 0 or not report_path.is_file():
        tail = log.read_text(errors="replace")[-4000:]
        raise WorkerError(
            f"The {model} worker failed to {action} (exit code {done.returncode}; log {log}). "
            f"Command: {' '.join(command)}\n--- end of its log ---\n{tail}"
        )
    return json.loads(report_path.read_text())


def peak_mib(report: dict[str, Any]) -> float:
    """The peak memory a worker reports: its GPU's when it ran on CUDA, else its peak resident memory."""
    gpu = report.get("peak_gpu_mib")
    if report.get("device", "cpu").startswith("cuda") and gpu is not None:
        return float(gpu)
    return float(report.get("peak_rss_mib") or 0.0)


def _read_predictions(path: Path, genes: pd.Index) -> pd.DataFrame:
    """The worker's predictions keyed by canonical name: columns ``values`` (aligned to ``genes``) and ``reason``."""
    import anndata

    pred = anndata.read_h5ad(path)
    symbols = pd.Index(np.asarray(pred.var["gene_name"] if "gene_name" in pred.var else pred.var_names, dtype=str))
    columns = symbols.get_indexer(genes)
    values = np.asarray(pred.X.toarray() if hasattr(pred.X, "toarray") else pred.X, dtype=np.float64)
    aligned = np.where(columns[None, :] >= 0, values[:, np.maximum(columns, 0)], np.nan)
    names = [parse_condition(key, sep="_").name if key else CONTROL for key in pred.obs_names]
    reasons = pred.obs["reason"].astype(str).to_numpy() if "reason" in pred.obs else [""] * len(names)
    return pd.DataFrame({"values": list(aligned), "reason": reasons}, index=pd.Index(names))


__all__ = ["PROTOCOL", "WorkerModel", "call_worker", "embed_once", "run_once"]

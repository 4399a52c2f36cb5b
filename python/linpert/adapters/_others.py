"""scGPT, scFoundation and CPA through linpert's model contract, each trained in a worker process.

None of their stacks installs beside linpert's (scGPT 0.2.1 needs Python < 3.11 and torch < 2.2, and pins
cell-gears < 0.0.3; cpa-tools 0.8.x pins torch < 2 and its own scvi-tools; scFoundation is a GEARS 0.0.2 fork that
is not on PyPI), so the default environment is ``"venv"`` with the paper's pins, or a container image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._base import WorkerModel

__all__ = ["CpaModel", "ScFoundationModel", "ScGptModel"]

_SHARED_DOC = """
    cells
        Cell-level data in GEARS' format (AnnData or ``.h5ad`` path): the training and validation conditions and
        ``ctrl``. Can also be given to ``fit``.
    validation
        Conditions for early stopping / best-epoch choice: a fraction of the training perturbations held out
        (drawn with ``seed``) or a list of names whose cells are in ``cells``. Never the test split.
    environment
        ``"venv"`` (default: an isolated environment with ``requirements``, built on first use under
        ``cache_dir``), ``"current"``, ``"docker:IMAGE"`` or ``"podman:IMAGE"``.
    device
        ``"auto"`` (CUDA when the worker sees a GPU), ``"cpu"`` or ``"cuda"``.
    seed
        Seeds Python, numpy and torch in the worker.
    work_dir
        Keep the run folder under this folder (default: a temporary folder removed with the model).
    requirements, python, pip_args, cache_dir
        For ``environment="venv"``: pip requirements (default :attr:`default_requirements`), base interpreter,
        extra pip arguments (e.g. a PyTorch wheel index), cache root.
    condition_key
        The column of ``cells.obs`` that holds the conditions.
"""


class _Shared(WorkerModel):
    def _set_shared(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    def _check_path(self, key: str) -> str | os.PathLike:
        path = getattr(self, key)
        if path is None:
            raise ValueError(f"{type(self).__name__} needs {key}=<path>; see its docstring for what it must hold.")
        return path


class ScGptModel(_Shared):
    __doc__ = (
        """scGPT (0.2.1) fine-tuned for perturbation prediction from the ``scGPT_human`` checkpoint.

    Parameters
    ----------
    checkpoint
        Folder holding ``args.json``, ``vocab.json`` and ``best_model.pt`` (scGPT's ``scGPT_human``).
    lr, gamma, batch_size, epochs, early_stop, amp, max_seq_len, n_control_cells
        The paper's settings: Adam lr 1e-4, StepLR(1, γ=0.9), batch 64, 15 epochs, early stop after 5 epochs without
        a better validation loss, mixed precision, 1,536 genes per cell in training, prediction = mean over 100
        control cells."""
        + _SHARED_DOC
        + """
    Notes
    -----
    Perturbed genes must be measured genes (scGPT flags them in the input); others get NaN with a reason.
    """
    )

    name = "scgpt"
    worker = "scgpt_worker.py"
    stack = ("scgpt", "gears", "torch", "torch_geometric")
    extra = "scgpt"
    default_requirements = ("scgpt==0.2.1", "cell-gears==0.0.2", "torch==2.1.2", "torchtext==0.16.2", "anndata")

    def __init__(
        self,
        *,
        cells: Any = None,
        checkpoint: str | os.PathLike | None = None,
        validation: float | Sequence[str] = 0.1,
        lr: float = 1e-4,
        gamma: float = 0.9,
        batch_size: int = 64,
        epochs: int = 15,
        early_stop: int = 5,
        amp: bool = True,
        max_seq_len: int = 1536,
        n_control_cells: int = 100,
        environment: str = "venv",
        device: str = "auto",
        seed: int | None = 0,
        work_dir: str | os.PathLike | None = None,
        requirements: Sequence[str] | None = None,
        python: str | None = None,
        pip_args: Sequence[str] = (),
        cache_dir: str | os.PathLike | None = None,
        condition_key: str = "condition",
    ) -> None:
        self._set_shared(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})

    def _params(self) -> dict[str, Any]:
        return {
            "lr": float(self.lr),
            "gamma": float(self.gamma),
            "batch_size": int(self.batch_size),
            "test_batch_size": int(self.batch_size),
            "epochs": int(self.epochs),
            "early_stop": int(self.early_stop),
            "amp": bool(self.amp),
            "max_seq_len": int(self.max_seq_len),
            "n_control_cells": int(self.n_control_cells),
        }

    def _inputs(self) -> dict[str, str | os.PathLike]:
        return {"checkpoint": self._check_path("checkpoint")}


class ScFoundationModel(_Shared):
    __doc__ = (
        """scFoundation's GEARS fork (GEARS 0.0.2 with the scFoundation encoder), as the paper ran it on Norman.

    Parameters
    ----------
    code
        The fork's folder from the scFoundation repository (``scFoundation/GEARS``: the ``gears`` package it
        imports).
    checkpoint
        scFoundation's ``models.ckpt``.
    go_files
        GEARS' GO files folder (see :class:`GearsModel`).
    batch_size, accumulation_steps, hidden_size, model_type, bin_set, finetune_method, lr, epochs
        The paper's settings: batch 6 with 5 accumulation steps, hidden 512, ``maeautobin``,
        ``autobin_resolution_append``, frozen encoder, lr 0.01, 5 epochs."""
        + _SHARED_DOC
    )

    name = "scfoundation"
    worker = "scfoundation_worker.py"
    stack = ("torch", "torch_geometric")
    extra = "scfoundation"
    default_requirements = ("torch==2.1.2", "torch_geometric==2.4.0", "scanpy", "anndata", "networkx", "einops",
                            "local-attention", "dcor", "scipy<1.15")

    def __init__(
        self,
        *,
        cells: Any = None,
        code: str | os.PathLike | None = None,
        checkpoint: str | os.PathLike | None = None,
        go_files: str | os.PathLike | None = None,
        validation: float | Sequence[str] = 0.1,
        batch_size: int = 6,
        accumulation_steps: int = 5,
        hidden_size: int = 512,
        model_type: str = "maeautobin",
        bin_set: str = "autobin_resolution_append",
        finetune_method: str = "frozen",
        lr: float = 0.01,
        epochs: int = 5,
        environment: str = "venv",
        device: str = "auto",
        seed: int | None = 0,
        work_dir: str | os.PathLike | None = None,
        requirements: Sequence[str] | None = None,
        python: str | None = None,
        pip_args: Sequence[str] = (),
        cache_dir: str | os.PathLike | None = None,
        condition_key: str = "condition",
    ) -> None:
        self._set_shared(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})

    def _params(self) -> dict[str, Any]:
        return {
            "batch_size": int(self.batch_size),
            "test_batch_size": int(self.batch_size),
            "accumulation_steps": int(self.accumulation_steps),
            "hidden_size": int(self.hidden_size),
            "model_type": str(self.model_type),
            "bin_set": str(self.bin_set),
            "finetune_method": str(self.finetune_method),
            "lr": float(self.lr),
            "epochs": int(self.epochs),
        }

    def _inputs(self) -> dict[str, str | os.PathLike]:
        return {key: self._check_path(key) for key in ("code", "checkpoint", "go_files")}


class CpaModel(_Shared):
    __doc__ = (
        """CPA (cpa-tools 0.8.x) on counts reconstructed from the log data, as the paper ran it.

    Parameters
    ----------
    n_latent, recon_loss, max_epochs, batch_size, early_stopping_patience, check_val_every_n_epoch
        The paper's settings: 32 latent dimensions, negative-binomial loss, at most 2,000 epochs, batch 2,048,
        early stopping after 5 validations without improvement. Validation uses ``validation`` only (the paper's
        code early-stopped on the test split; linpert never gives the test split to the worker).
    model_params
        Further keyword arguments of ``cpa.CPA`` (JSON values)."""
        + _SHARED_DOC
        + """
    Notes
    -----
    The worker reads ``layers['counts']`` (``round(expm1(x) / min nonzero)`` per cell, see
    :func:`linpert.adapters.reconstruct_counts`), predicts counts for control cells relabelled with the requested
    perturbation, log-normalises them like the data (``log1p`` of counts scaled to the median total) and averages.
    A perturbation with a gene CPA never saw in training is NaN with a reason.
    """
    )

    name = "cpa"
    worker = "cpa_worker.py"
    stack = ("cpa", "scvi", "torch")
    extra = "cpa"
    # 0.8.8, the paper's version, is not on PyPI (which stops at 0.8.1): install it from the repository
    default_requirements = ("cpa-tools @ git+https://github.com/theislab/cpa", "anndata")
    needs_counts = True

    def __init__(
        self,
        *,
        cells: Any = None,
        validation: float | Sequence[str] = 0.1,
        n_latent: int = 32,
        recon_loss: str = "nb",
        max_epochs: int = 2000,
        batch_size: int = 2048,
        early_stopping_patience: int = 5,
        check_val_every_n_epoch: int = 5,
        model_params: dict[str, Any] | None = None,
        environment: str = "venv",
        device: str = "auto",
        seed: int | None = 0,
        work_dir: str | os.PathLike | None = None,
        requirements: Sequence[str] | None = None,
        python: str | None = None,
        pip_args: Sequence[str] = (),
        cache_dir: str | os.PathLike | None = None,
        condition_key: str = "condition",
    ) -> None:
        self._set_shared(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})

    def _params(self) -> dict[str, Any]:
        return {
            "n_latent": int(self.n_latent),
            "recon_loss": str(self.recon_loss),
            "max_epochs": int(self.max_epochs),
            "batch_size": int(self.batch_size),
            "early_stopping_patience": int(self.early_stopping_patience),
            "check_val_every_n_epoch": int(self.check_val_every_n_epoch),
            "model_params": dict(self.model_params or {}),
        }

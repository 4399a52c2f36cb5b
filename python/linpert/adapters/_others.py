"""scGPT, scFoundation and CPA through linpert's model contract, each trained in a worker process.

None of their stacks installs beside linpert's (CPA 0.8.8 pins numpy < 1.24 and torch <= 2.0.1, scGPT pins
cell-gears < 0.0.3, scFoundation is a GEARS 0.0.2 fork that is not on PyPI), so the default runtime is ``"venv"``:
an isolated environment built on first use from the first of the adapter's :attr:`stacks` that supports the
Python at hand (the paper's pins where they install), or a container image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write
from ._base import WorkerModel, run_once
from ._environment import Runtime, Stack
from ._gears import FORK_STACKS, OLD_NUMPY

__all__ = ["CpaModel", "ScFoundationModel", "ScGptModel", "write_scgpt_checkpoint"]

#: The genes scFoundation's encoder reads (``model/OS_scRNA_gene_index.19264.tsv`` in its repository).
SCFOUNDATION_GENES = 19_264
#: What a scGPT checkpoint folder holds (scGPT_human's layout).
SCGPT_CHECKPOINT_FILES = ("args.json", "vocab.json", "best_model.pt")


#: The validation settings of the adapters whose paper preset is only about validation (scGPT, scFoundation).
_VALIDATION_DOC = """
    preset
        ``"paper"`` (default): early stopping and the best epoch on the split's validation conditions, as the
        paper's scripts did (``set2conditions["val"]``; they are also scored, which is the paper's choice, not a
        clean one); ``"linpert"``: on a tenth of the training perturbations, held out from training. Without a
        split (``fit`` called outside a benchmark run) both hold out a tenth.
    validation
        Overrides the preset: a fraction of the training perturbations held out (drawn with ``seed``) or a list of
        names whose cells are in ``cells``. Never the test split."""

_SHARED_DOC = """
    cells
        Cell-level data in GEARS' format (AnnData or ``.h5ad`` path): the training and validation conditions and
        ``ctrl``. Can also be given to ``fit``.
    runtime
        Where the worker runs: a :class:`~linpert.adapters.Runtime`, or its environment as a string: ``"venv"``
        (default: an isolated environment with the first of :attr:`stacks` that supports this Python, built on
        first use), ``"current"``, ``"docker:IMAGE"`` or ``"podman:IMAGE"``.
    device
        ``"auto"`` (CUDA when the worker sees a GPU), ``"cpu"`` or ``"cuda"``.
    seed
        Seeds Python, numpy and torch in the worker.
    work_dir
        Keep the run folder under this folder (default: a temporary folder removed with the model).
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
        """scGPT fine-tuned for perturbation prediction from the ``scGPT_human`` checkpoint.

    Parameters
    ----------
    checkpoint
        Folder holding ``args.json``, ``vocab.json`` and ``best_model.pt`` (scGPT's ``scGPT_human``).
    lr, gamma, batch_size, epochs, early_stop, amp, max_seq_len, n_control_cells
        The paper's settings: Adam lr 1e-4, StepLR(1, γ=0.9), batch 64, 15 epochs, early stop after 5 epochs without
        a better validation loss, mixed precision, 1,536 genes per cell in training, prediction = mean over 100
        control cells."""
        + _VALIDATION_DOC
        + _SHARED_DOC
        + """
    Notes
    -----
    Perturbed genes must be measured genes (scGPT flags them in the input); others get NaN with a reason, and
    training conditions with an unmeasured gene are dropped (``dropped_``). Genes missing from the checkpoint's
    vocabulary are fed as ``<pad>`` tokens, as scGPT's tutorial does; if none of the data's genes is in it, ``fit``
    stops with an error naming the vocabulary. :func:`write_scgpt_checkpoint` writes a small randomly initialised
    checkpoint in this format, to try the adapter before downloading ``scGPT_human``.

    Stacks: the paper's scgpt 0.2.1 (torch 2.1.2) on Python 3.10; scgpt 0.2.4 (torch 2.3.0) on 3.11 and 3.12,
    where 0.2.1's pins do not install.
    """
    )

    name = "scgpt"
    worker = "scgpt_worker.py"
    modules = ("scgpt", "gears", "torch", "torch_geometric")
    stacks = (
        Stack(("scgpt==0.2.1", "cell-gears==0.0.2", "torch==2.1.2", "torchtext==0.16.2", "torch_geometric==2.4.0",
               "ipython", "anndata"), pythons=("3.10",), constraints=OLD_NUMPY, note="the paper's scgpt 0.2.1"),
        Stack(("scgpt==0.2.4", "torch==2.3.0", "torchtext==0.18.0", "torch_geometric==2.5.3", "ipython"),
              pythons=("3.11", "3.12"), constraints=OLD_NUMPY,
              note="scgpt 0.2.4: 0.2.1's pins (torch 2.1, torchtext 0.16) do not install on Python >= 3.11"),
    )

    def __init__(
        self,
        *,
        cells: Any = None,
        checkpoint: str | os.PathLike | None = None,
        preset: str = "paper",
        validation: float | Sequence[str] | None = None,
        lr: float = 1e-4,
        gamma: float = 0.9,
        batch_size: int = 64,
        epochs: int = 15,
        early_stop: int = 5,
        amp: bool = True,
        max_seq_len: int = 1536,
        n_control_cells: int = 100,
        runtime: Runtime | str = "venv",
        device: str = "auto",
        seed: int | None = 0,
        work_dir: str | os.PathLike | None = None,
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

    def _check_inputs(self, genes: list[str]) -> None:
        folder = Path(self._check_path("checkpoint"))
        if not folder.is_dir():
            raise FileNotFoundError(f"checkpoint={str(folder)!r} is not a folder; give scGPT_human's folder "
                                    f"({', '.join(SCGPT_CHECKPOINT_FILES)}).")
        missing = [f for f in SCGPT_CHECKPOINT_FILES if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"The scGPT checkpoint folder {folder} lacks {', '.join(missing)}. It must hold "
                f"{', '.join(SCGPT_CHECKPOINT_FILES)} as in scGPT_human; linpert.adapters.write_scgpt_checkpoint "
                "writes a small random one to try the adapter."
            )
        try:
            vocab = json.loads((folder / "vocab.json").read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{folder / 'vocab.json'} is not a JSON vocabulary (gene -> index): {err}") from None
        if not isinstance(vocab, dict):
            raise ValueError(f"{folder / 'vocab.json'} must map gene symbols to indices, got a {type(vocab).__name__}.")
        if not set(genes) & set(vocab):
            raise ValueError(
                f"None of the data's {len(genes)} genes (e.g. {', '.join(genes[:3])}) is in the scGPT vocabulary "
                f"{folder / 'vocab.json'} ({len(vocab)} tokens, e.g. {', '.join(list(vocab)[:3])}). Use gene "
                "symbols as var_names (or var['gene_name']), or a checkpoint whose vocabulary covers them."
            )


def write_scgpt_checkpoint(
    folder: str | os.PathLike,
    genes: Sequence[str],
    *,
    embsize: int = 64,
    nheads: int = 4,
    d_hid: int = 64,
    nlayers: int = 2,
    n_layers_cls: int = 3,
    dropout: float = 0.2,
    seed: int = 0,
    runtime: Runtime | str = "venv",
) -> Path:
    """Write a small randomly initialised scGPT checkpoint in ``scGPT_human``'s format, to try :class:`ScGptModel`
    before downloading the real weights (about 200 MB).

    The folder gets ``vocab.json`` (the special tokens and ``genes``), ``args.json`` (the architecture, with
    scGPT_human's keys) and ``best_model.pt``: the state dict of a freshly initialised ``scgpt.model.TransformerModel``,
    built by scGPT's own code in the adapter's runtime. Its predictions are those of an untrained model.

    Parameters
    ----------
    folder
        Where to write; created if needed. Existing checkpoint files are never overwritten.
    genes
        Gene symbols of the vocabulary (those of the data you will fine-tune on).
    embsize, nheads, d_hid, nlayers, n_layers_cls, dropout
        The architecture (scGPT_human: 512, 8, 512, 12, 3, 0.2).
    seed
        Seeds the initialisation.
    runtime
        Where scGPT runs (as for :class:`ScGptModel`).

    Returns
    -------
    Path
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    present = [f for f in SCGPT_CHECKPOINT_FILES if (folder / f).exists()]
    if present:
        raise FileExistsError(f"{folder} already holds {', '.join(present)}; choose an empty folder.")
    genes = [str(g) for g in dict.fromkeys(genes)]
    if not genes:
        raise ValueError("genes is empty: give the gene symbols the checkpoint's vocabulary should hold.")
    tokens = ["<pad>", "<cls>", "<eoc>", *[g for g in genes if g not in ("<pad>", "<cls>", "<eoc>")]]
    args = {"embsize": int(embsize), "nheads": int(nheads), "d_hid": int(d_hid), "nlayers": int(nlayers),
            "n_layers_cls": int(n_layers_cls), "dropout": float(dropout), "pad_token": "<pad>", "pad_value": -2,
            "input_emb_style": "continuous", "n_bins": 51, "mask_value": -1,
            "linpert": f"randomly initialised with seed {seed}: not pretrained"}
    atomic_write(folder / "vocab.json", json.dumps({t: i for i, t in enumerate(tokens)}, indent=1))
    atomic_write(folder / "args.json", json.dumps(args, indent=1))

    run_once(runtime, model="scgpt", worker=ScGptModel.worker, modules=ScGptModel.modules, stacks=ScGptModel.stacks,
             action="checkpoint", inputs={"checkpoint": folder}, output="best_model.pt",
             keep=folder / "best_model.pt", request={"seed": int(seed)})
    return folder


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
        + _VALIDATION_DOC
        + _SHARED_DOC
        + """
    Notes
    -----
    What the fork's code requires: the cells' genes are exactly scFoundation's 19,264 genes in the order of
    ``model/OS_scRNA_gene_index.19264.tsv`` (its encoder keeps the first 19,264 outputs), checked before the worker
    starts; ``obs['total_count']`` (the worker adds it from the reconstructed counts); ``gene2go.pkl`` in its data
    folder (linked from ``go_files``' ``gene2go_all.pkl``); and its working directory inside the clone's ``GEARS``
    folder, since it imports ``../model/load.py`` by a relative path. On the CPU the worker lets the fork's loss run
    as it does on a GPU (see ``workers/scfoundation_worker.py``). ``benchmarks/scfoundation_fork.py`` runs it on a
    clone with a random checkpoint in the real format.
    """
    )

    name = "scfoundation"
    worker = "scfoundation_worker.py"
    modules = ("torch", "torch_geometric", "torchvision", "omegaconf")
    needs_counts = True  # for obs['total_count']
    stacks = FORK_STACKS

    def __init__(
        self,
        *,
        cells: Any = None,
        code: str | os.PathLike | None = None,
        checkpoint: str | os.PathLike | None = None,
        go_files: str | os.PathLike | None = None,
        preset: str = "paper",
        validation: float | Sequence[str] | None = None,
        batch_size: int = 6,
        accumulation_steps: int = 5,
        hidden_size: int = 512,
        model_type: str = "maeautobin",
        bin_set: str = "autobin_resolution_append",
        finetune_method: str = "frozen",
        lr: float = 0.01,
        epochs: int = 5,
        runtime: Runtime | str = "venv",
        device: str = "auto",
        seed: int | None = 0,
        work_dir: str | os.PathLike | None = None,
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

    def _check_inputs(self, genes: list[str]) -> None:
        if len(genes) != SCFOUNDATION_GENES:
            raise ValueError(
                f"scFoundation's GEARS fork needs exactly its {SCFOUNDATION_GENES:,} genes in the order of "
                f"model/OS_scRNA_gene_index.19264.tsv; the data has {len(genes):,}. Reindex the cells onto that list "
                "(missing genes as zeros), as scFoundation's preprocessing does."
            )


#: CPA as the paper ran it: "the code from their tutorial on how to predict combinatorial CRISPR perturbations on the
#: Norman dataset" (Methods, "Software versions and parameters"), i.e. CPA's docs/tutorials/Norman.ipynb (theislab/cpa
#: at fbd7c02, for cpa-tools 0.8.x). Every value below is that notebook's.
CPA_TUTORIAL = {
    # model_params = {...}; cpa.CPA(adata, split_key="split", ..., **model_params)
    "model_params": {"n_latent": 32, "recon_loss": "nb", "doser_type": "linear", "n_hidden_encoder": 256,
                     "n_layers_encoder": 4, "n_hidden_decoder": 256, "n_layers_decoder": 2,
                     "use_batch_norm_encoder": True, "use_layer_norm_encoder": False, "use_batch_norm_decoder": False,
                     "use_layer_norm_decoder": False, "dropout_rate_encoder": 0.2, "dropout_rate_decoder": 0.0,
                     "variational": False, "seed": 8206},
    # trainer_params = {...}; model.train(..., plan_kwargs=trainer_params)
    "trainer_params": {"n_epochs_kl_warmup": None, "n_epochs_adv_warmup": 50, "n_epochs_mixup_warmup": 10,
                       "n_epochs_pretrain_ae": 10, "mixup_alpha": 0.1, "lr": 0.0001, "wd": 3.2170178270865573e-06,
                       "adv_steps": 3, "reg_adv": 10.0, "pen_adv": 20.0, "adv_lr": 0.0001,
                       "adv_wd": 7.051355554517135e-06, "n_layers_adv": 2, "n_hidden_adv": 128, "use_batch_norm_adv": True, "use_layer_norm_adv": False,
                       "dropout_rate_adv": 0.3, "step_size_lr": 25, "do_clip_grad": False, "adv_loss": "cce",
                       "gradient_clip_value": 5.0},
    # model.train(max_epochs=2000, batch_size=2048, early_stopping_patience=5, check_val_every_n_epoch=5, ...)
    "train": {"max_epochs": 2000, "batch_size": 2048, "early_stopping_patience": 5, "check_val_every_n_epoch": 5},
    # adata.obs['split'] = np.random.choice(['train', 'valid'], size=adata.n_obs, p=[0.85, 0.15])
    "valid_cells": 0.15,
    # cond_harm: a single is its gene ("CEBPE", dose_value "1"), a double "A+B" ("1+1")
    "encoding": "tutorial",
    # sc.pp.normalize_total(adata, target_sum=1e4, layer='CPA_pred'); sc.pp.log1p(adata, layer='CPA_pred')
    "target_sum": 1e4,
}

#: linpert's own choices: CPA's defaults but for the paper's 32 latent dimensions and NB loss; validation on held-out
#: training perturbations (which tests what the benchmark asks, prediction of unseen combinations, where random
#: cells of the training conditions do not); GEARS' encoding, as every other adapter reads it; predictions on the
#: data's scale (the control cells' median total, the target of scanpy's normalize_total by default).
CPA_LINPERT = {"model_params": {"n_latent": 32, "recon_loss": "nb"}, "trainer_params": {},
               "train": CPA_TUTORIAL["train"], "valid_cells": None, "encoding": "gears", "target_sum": None}

CPA_PRESETS = {"paper": CPA_TUTORIAL, "linpert": CPA_LINPERT}


class CpaModel(_Shared):
    __doc__ = (
        """CPA (cpa-tools 0.8.x) on counts reconstructed from the log data.

    Parameters
    ----------
    preset
        ``"paper"`` (default): CPA's tutorial for combinatorial CRISPR perturbations on Norman, which the paper ran
        (:data:`CPA_TUTORIAL`: every model and trainer setting, validation on 15 % of the training cells, a single
        encoded as its gene with dose 1, predictions normalised to 10,000 counts before the log). ``"linpert"``:
        :data:`CPA_LINPERT` (CPA's defaults, validation on held-out training perturbations, GEARS' encoding,
        predictions on the data's scale). The settings below override the preset's.
    model_params
        Keyword arguments of ``cpa.CPA`` (JSON values), over the preset's.
    trainer_params
        CPA's ``plan_kwargs`` (its training plan: learning rates, adversary and mix-up warm-ups, ...), over the
        preset's.
    n_latent, recon_loss
        Shortcuts for ``model_params`` entries.
    max_epochs, batch_size, early_stopping_patience, check_val_every_n_epoch
        ``model.train``'s settings (both presets: the tutorial's 2,000, 2,048, 5 and 5). The paper's code
        early-stopped on the test split; linpert never gives the test split to the worker.
    validation
        None (default): the preset's (15 % of the training cells for ``"paper"``, 10 % of the training
        perturbations for ``"linpert"``); else a fraction of the training perturbations held out (drawn with
        ``seed``) or a list of names whose cells are in ``cells``. Never the test split."""
        + _SHARED_DOC
        + """
    Notes
    -----
    The worker reads ``layers['counts']`` (``round(expm1(x) / min nonzero)`` per cell, see
    :func:`linpert.adapters.reconstruct_counts`), predicts counts for control cells relabelled with the requested
    perturbation, log-normalises them as the preset says and averages. A perturbation with a gene CPA never saw in
    training is NaN with a reason. The fit's report (``fit_report_["passed"]``) holds what CPA itself recorded:
    its model's hyper-parameters, its training plan's settings, and the setup and training arguments.
    """
    )

    name = "cpa"
    worker = "cpa_worker.py"
    modules = ("cpa", "scvi", "torch")
    # cpa-tools 0.8.8 (the paper's) declares Python < 3.11, so `pip index versions` hides it on 3.11; its code runs
    # there. Its pins numpy < 1.24, torch <= 2.0.1 and ray < 2.10 have no wheels for Python 3.12: there it runs on
    # the nearest releases that do, installed first, then cpa-tools itself without its declared dependencies.
    stacks = (
        Stack(("cpa-tools==0.8.8",), pythons=("3.10",), constraints=OLD_NUMPY, note="the paper's cpa-tools 0.8.8"),
        Stack(("cpa-tools==0.8.8",), pythons=("3.11",), constraints=OLD_NUMPY,
              pip_args=("--ignore-requires-python",),
              note="the paper's cpa-tools 0.8.8 (its metadata says Python < 3.11; its code runs on 3.11)"),
        Stack(("torch==2.2.2", "scvi-tools==0.20.3", "lightning>=2.2,<2.3", "anndata>=0.9,<0.10", "numpy<2",
               "scipy>=1.12,<1.13", "jax<0.4.24", "jaxlib<0.4.24", "ray[tune]>=2.31,<2.40", "rdkit", "scanpy",
               "adjustText", "seaborn", "gdown", "setuptools>=70,<70.1", "pandas<3"),
              pythons=("3.12",), constraints=OLD_NUMPY, pip_args=("--ignore-requires-python",),
              no_deps=("cpa-tools==0.8.8",),
              note="cpa-tools 0.8.8 on the nearest releases with Python 3.12 wheels (its numpy<1.24, torch<=2.0.1 "
                   "and ray<2.10 have none)"),
    )
    needs_counts = True

    def __init__(
        self,
        *,
        preset: str = "paper",
        cells: Any = None,
        validation: float | Sequence[str] | None = None,
        model_params: dict[str, Any] | None = None,
        trainer_params: dict[str, Any] | None = None,
        n_latent: int | None = None,
        recon_loss: str | None = None,
        max_epochs: int | None = None,
        batch_size: int | None = None,
        early_stopping_patience: int | None = None,
        check_val_every_n_epoch: int | None = None,
        runtime: Runtime | str = "venv",
        device: str = "auto",
        seed: int | None = 0,
        work_dir: str | os.PathLike | None = None,
        condition_key: str = "condition",
    ) -> None:
        self._set_shared(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})

    def _preset(self) -> dict[str, Any]:
        if self.preset not in CPA_PRESETS:
            raise ValueError(f"preset={self.preset!r}: use 'paper' (CPA's tutorial, as the paper ran it) or "
                             "'linpert'.")
        return CPA_PRESETS[self.preset]

    def _validation(self, train) -> float | Sequence[str] | None:
        if self.validation is None and self._preset()["valid_cells"]:
            return None  # the tutorial's: random cells of the training conditions
        return super()._validation(train)

    def _params(self) -> dict[str, Any]:
        preset = self._preset()
        given = lambda **values: {k: v for k, v in values.items() if v is not None}  # noqa: E731
        return {
            "model_params": {**preset["model_params"], **given(n_latent=self.n_latent, recon_loss=self.recon_loss),
                             **dict(self.model_params or {})},
            "trainer_params": {**preset["trainer_params"], **dict(self.trainer_params or {})},
            "train": {**preset["train"], **given(max_epochs=self.max_epochs, batch_size=self.batch_size,
                                                 early_stopping_patience=self.early_stopping_patience,
                                                 check_val_every_n_epoch=self.check_val_every_n_epoch)},
            "valid_cells": preset["valid_cells"] if self.validation is None else None,
            "encoding": preset["encoding"],
            "target_sum": preset["target_sum"],
        }

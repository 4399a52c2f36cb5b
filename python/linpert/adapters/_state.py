"""STATE, Arc Institute's state-transition model (arc-state), through linpert's model contract: the field's current
model, judged by the paper's rules.

STATE is not in the paper; it has no ``preset="paper"``. Its settings are STATE's own (``model=state_sm``, its
training defaults) except where a benchmark on a small screen needs fewer steps, and each can be overridden.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._environment import Runtime, Stack
from ._others import _SHARED_DOC, _Shared

__all__ = ["StateModel"]


class StateModel(_Shared):
    __doc__ = (
        """STATE's state-transition model (arc-state 0.11.1), trained on the screen's cells and predicting held-out
    perturbations from control cells.

    Parameters
    ----------
    model
        STATE's model configuration (``state_sm``, its small state-transition model; ``state``, ``state_lg``).
    max_steps, batch_size, lr, val_freq, cell_set_len
        ``training.max_steps``, ``training.batch_size``, ``training.lr``, ``training.val_freq`` (and checkpoint
        frequency), ``model.kwargs.cell_set_len``: STATE's defaults are 40,000 steps, 16, 1e-4, 2,000 and 128
        (``state_sm``); linpert's defaults, 2,000 steps of 8 sets of 32 cells, fit a Perturb-seq screen of Norman's
        size on a CPU in minutes.
    overrides
        Further Hydra overrides of ``state tx train`` (``{"model.kwargs.hidden_dim": 328}``).
    n_control_cells
        Control cells that STATE's inference transforms into each requested perturbation (their mean is the
        prediction).
    validation
        The conditions STATE validates on: a fraction of the training perturbations held out (drawn with
        ``seed``) or a list of names whose cells are in ``cells``. Never the test split."""
        + _SHARED_DOC
        + """
    Notes
    -----
    A perturbation reaches STATE as a feature vector over the target genes seen in training (a double is the sum of
    its singles; the control is zero), so held-out doubles of seen genes are predicted from their genes. A
    perturbation with a gene STATE never trained on is NaN with a reason, never silently the control (STATE's own
    loader and inference give an unknown perturbation the control's vector; the worker writes one for every name).
    """
    )

    name = "state"
    worker = "state_worker.py"
    modules = ("state", "cell_load", "torch")
    # torch 2.13.0 is the CPU build on this project's registry (190 MB against several GB for CUDA wheels)
    stacks = (Stack(("arc-state==0.11.1", "torch==2.13.0"), pythons=("3.11", "3.12"),
                    note="arc-state 0.11.1 (STATE) on torch 2.13.0"),)

    def __init__(
        self,
        *,
        cells: Any = None,
        validation: float | Sequence[str] = 0.1,
        model: str = "state_sm",
        max_steps: int = 2000,
        batch_size: int = 8,
        lr: float = 1e-4,
        val_freq: int = 500,
        cell_set_len: int = 32,
        overrides: dict[str, Any] | None = None,
        n_control_cells: int = 256,
        runtime: Runtime | str = "venv",
        device: str = "auto",
        seed: int | None = 0,
        work_dir: str | os.PathLike | None = None,
        condition_key: str = "condition",
    ) -> None:
        self._set_shared(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})

    def _params(self) -> dict[str, Any]:
        return {"model": str(self.model), "max_steps": int(self.max_steps), "batch_size": int(self.batch_size),
                "lr": float(self.lr), "val_freq": int(self.val_freq), "cell_set_len": int(self.cell_set_len),
                "overrides": {str(k): v for k, v in (self.overrides or {}).items()},
                "n_control_cells": int(self.n_control_cells)}

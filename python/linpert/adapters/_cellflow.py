"""CellFlow (Klein et al. 2025; ``cellflow-tools``), a flow-matching model of perturbation responses, through
linpert's model contract: one of the field's current models, judged by the paper's rules.

CellFlow is not in the paper; it has no ``preset="paper"``. Its workflow and settings are its own (PCA of the cells,
``CellFlow(solver="otfm")``, ``prepare_model``'s defaults), but for a training budget that fits a CPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._environment import Runtime, Stack
from ._others import _SHARED_DOC, _Shared

__all__ = ["CellFlowModel"]


class CellFlowModel(_Shared):
    __doc__ = (
        """CellFlow (cellflow-tools 0.0.9), trained on the screen's cells and predicting held-out perturbations by
    moving control cells.

    Parameters
    ----------
    n_components
        Principal components of the training cells that CellFlow models (``centered_pca``; its tutorials: 50).
    num_iterations, batch_size
        ``CellFlow.train``: linpert's 2,000 iterations fit a small screen on a CPU; CellFlow's tutorials train for
        tens of thousands. ``batch_size`` is CellFlow's default, 1,024.
    model
        Keyword arguments of ``CellFlow.prepare_model`` (``{"hidden_dims": [256, 256]}``); its defaults otherwise.
    perturbation_embedding
        A ``.csv`` or ``.parquet`` table of gene representations (genes as the index), such as the protein-language-
        model embeddings CellFlow's tutorials use; by default each target gene seen in training is a one-hot vector,
        so held-out combinations of seen genes are predicted and unseen genes are not.
    n_control_cells
        Control cells CellFlow moves for each requested perturbation (the mean of the moved cells is the
        prediction): one set drawn with the seed, moved for every perturbation in one call."""
        + _SHARED_DOC
        + """
    Notes
    -----
    A perturbation with a gene that has no representation is NaN with a reason, never predicted as the control
    (CellFlow reads a zero vector as "no perturbation"); training conditions with such a gene are dropped
    (``dropped_``). CellFlow trains a fixed budget and selects nothing on validation conditions, so none are held
    out.
    """
    )

    name = "cellflow"
    worker = "cellflow_worker.py"
    modules = ("cellflow", "jax")
    # cellflow-tools 0.0.9 imports requests without declaring it; JAX's CPU build comes with it from PyPI
    stacks = (Stack(("cellflow-tools==0.0.9", "requests"), pythons=("3.11", "3.12"),
                    note="cellflow-tools 0.0.9 (CellFlow) on JAX"),)

    def __init__(
        self,
        *,
        cells: Any = None,
        n_components: int = 50,
        num_iterations: int = 2000,
        batch_size: int = 1024,
        model: dict[str, Any] | None = None,
        perturbation_embedding: str | os.PathLike | None = None,
        n_control_cells: int = 256,
        runtime: Runtime | str = "venv",
        device: str = "auto",
        seed: int | None = 0,
        work_dir: str | os.PathLike | None = None,
        condition_key: str = "condition",
    ) -> None:
        self._set_shared(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})

    def _validation(self, train: Any) -> float | Sequence[str] | None:
        return None  # CellFlow trains on every training condition and selects nothing on held-out ones

    def _params(self) -> dict[str, Any]:
        return {"n_components": int(self.n_components), "num_iterations": int(self.num_iterations),
                "batch_size": int(self.batch_size), "model": dict(self.model or {}),
                "n_control_cells": int(self.n_control_cells)}

    def _inputs(self) -> dict[str, str | os.PathLike]:
        return {} if self.perturbation_embedding is None else {"perturbation_embedding": self.perturbation_embedding}

"""The paper's transfer model (Extended Data Fig. 9): a perturbation's effect in one cell line predicted from the
same perturbation's effect in another, as ``run_transfer_perturbation_prediction.R`` computes it.

Both datasets' changes against their own control (genes × conditions) are reduced to K principal components, each
gene centred over the conditions (lemur's ``pca``: exact, the scores ``Vᵀ(Y − m)``). A ridge regression with an
unpenalised intercept maps a condition's reference scores ``r`` to its target scores ``e``,

    β = argmin ‖E − β [1; R]‖² + n λ⁴ ‖β₁..K‖²

(lemur's ``ridge_regression`` squares the penalty vector and scales it by √n: this is what the script solves), and a
condition measured in the reference is predicted as ``V β [1; r] + m + ctrl``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._conditions import Condition
from ._base import PerturbationModel, check_training

if TYPE_CHECKING:
    from anndata import AnnData


def _pca(change: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lemur's ``pca`` of a genes × conditions matrix: rotation V (genes × K), scores (K × conditions), centre."""
    centre = change.mean(axis=1)
    U, D, Vt = np.linalg.svd((change - centre[:, None]).T, full_matrices=False)  # conditions × genes, as prcomp
    rotation = Vt[:k].T
    return rotation, (U[:, :k] * D[:k]).T, centre


class TransferModel(PerturbationModel):
    """Predict each perturbation from its effect in another dataset (the paper's K562 ↔ RPE1 transfer).

    Parameters
    ----------
    reference
        The other dataset's pseudobulk (:func:`linpert.pseudobulk`; ``ctrl`` and the conditions to transfer), or the
        path of one saved as ``.h5ad``.
    n_components
        K, the principal components of each dataset (the script's default: 30).
    ridge
        λ of the ridge regression between the two datasets' scores (the script's default: 0.1).

    Conditions the reference lacks are predicted as NaN, with the reason; training conditions it lacks are left out
    of the regression (``dropped_``), as the script matches them by name. ``reference_control_`` is the reference's
    control profile (the runner keeps it for :func:`linpert.plot.transfer_error`, Extended Data Fig. 9).

    Examples
    --------
    >>> import anndata as ad, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> names = ["ctrl"] + [f"G{i}+ctrl" for i in range(8)]
    >>> make = lambda: ad.AnnData(rng.random((9, 20)), obs=pd.DataFrame(index=names),
    ...                           var=pd.DataFrame(index=[f"G{i}" for i in range(20)]))
    >>> model = TransferModel(reference=make(), n_components=3).fit(make()[:6].copy())
    >>> bool(np.isfinite(model.predict(["G7+ctrl"]).X).all())
    True
    """

    name = "transfer"

    def __init__(self, *, reference: Any = None, n_components: int = 30, ridge: float = 0.1) -> None:
        self.reference = reference
        self.n_components = n_components
        self.ridge = ridge

    def fit(self, train: AnnData) -> TransferModel:
        """Fit the two PCAs and the regression between their scores; returns ``self``."""
        k, ridge = self._check_params()
        data = check_training(train)
        self._remember(data)
        reference = self._reference()
        rotation, scores, centre = _pca((data.X - data.ctrl).T, min(k, *data.X.shape))
        ref_rotation, ref_scores, _ = _pca((reference.X - reference.ctrl).T, min(k, *reference.X.shape))
        self._ref_rows = {name: i for i, name in enumerate(reference.conditions)}
        self._ref_scores = ref_scores
        matched = [i for i, name in enumerate(data.conditions) if name in self._ref_rows]
        self.dropped_ = {name: "not measured in the reference" for name in data.conditions
                         if name not in self._ref_rows}
        if len(matched) < 2:
            raise ValueError("Fewer than two training conditions are measured in the reference: name the conditions "
                             "of both datasets alike (linpert.pseudobulk writes canonical names).")
        design = self._design([data.conditions[i] for i in matched])  # n × (K + 1)
        penalty = np.sqrt(len(matched)) * np.diag([0.0, *[ridge**2] * (design.shape[1] - 1)])
        # lemur's ridge_regression: least squares on the design stacked over the penalty rows
        stacked = np.vstack([design, penalty])
        target = np.vstack([scores[:, matched].T, np.zeros((design.shape[1], scores.shape[0]))])
        self.coef_ = np.linalg.lstsq(stacked, target, rcond=None)[0].T  # K × (K + 1)
        self.rotation_, self.centre_ = rotation, centre
        self.reference_control_ = pd.Series(reference.ctrl, index=reference.genes, name="ctrl")
        return self

    def _design(self, names: list[str]) -> np.ndarray:
        rows = [self._ref_rows[name] for name in names]
        return np.column_stack([np.ones(len(rows)), self._ref_scores[:, rows].T])

    def _reference(self):
        reference = self.reference
        if reference is None:
            raise ValueError("TransferModel needs reference=: the other dataset's pseudobulk, or its .h5ad path.")
        if isinstance(reference, (str, os.PathLike)):
            from ..datasets._readers import _open

            reference = _open(reference, backed=False)
        return check_training(reference)

    def _check_params(self) -> tuple[int, float]:
        k, ridge = self.n_components, self.ridge
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_components must be a positive integer, got {k!r}.")
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float, np.number)) or not 0 <= ridge < np.inf:
            raise ValueError(f"ridge must be a finite non-negative number, got {ridge!r}.")
        return int(k), float(ridge)

    def _predict(self, conditions: list[Condition]) -> tuple[np.ndarray, list[str]]:
        X = np.full((len(conditions), len(self.centre_)), np.nan)
        reasons = []
        for j, cond in enumerate(conditions):
            if cond.name not in self._ref_rows:
                reasons.append(f"{cond.name} is not measured in the reference dataset")
                continue
            X[j] = self.rotation_ @ (self.coef_ @ self._design([cond.name])[0]) + self.centre_ + self.ctrl_
            reasons.append("")
        return X, reasons

"""The paper's baselines: no change, additive and mean."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._conditions import CONTROL, Condition
from ._base import PerturbationModel, check_training

if TYPE_CHECKING:
    from anndata import AnnData


class NoChange(PerturbationModel):
    """Predict the control profile for every perturbation.

    Examples
    --------
    >>> import numpy as np, anndata as ad, pandas as pd
    >>> train = ad.AnnData(np.array([[1.0, 2.0], [3.0, 0.0]]), obs=pd.DataFrame(index=["ctrl", "A+ctrl"]))
    >>> NoChange().fit(train).predict(["A+B"]).X
    array([[1., 2.]])
    """

    name = "no_change"

    def __init__(self) -> None:
        pass

    def fit(self, train: AnnData) -> NoChange:
        self._remember(check_training(train))
        return self

    def _predict(self, conditions: list[Condition]) -> tuple[np.ndarray, list[str]]:
        return np.tile(self.ctrl_, (len(conditions), 1)), [""] * len(conditions)


class Mean(PerturbationModel):
    """Predict the mean of the training pseudobulk over all training conditions, ``ctrl`` included.

    Examples
    --------
    >>> import numpy as np, anndata as ad, pandas as pd
    >>> train = ad.AnnData(np.array([[1.0, 2.0], [3.0, 0.0]]), obs=pd.DataFrame(index=["ctrl", "A+ctrl"]))
    >>> Mean().fit(train).predict(["B+ctrl"]).X
    array([[2., 1.]])
    """

    name = "mean"

    def __init__(self) -> None:
        pass

    def fit(self, train: AnnData) -> Mean:
        data = check_training(train)
        self._remember(data)
        self.mean_ = data.X.mean(axis=0)
        return self

    def _predict(self, conditions: list[Condition]) -> tuple[np.ndarray, list[str]]:
        return np.tile(self.mean_, (len(conditions), 1)), [""] * len(conditions)


class Additive(PerturbationModel):
    """Predict ``ctrl + Σ_g (single_g − ctrl)`` over the condition's genes, from the training singles ``g+ctrl``.

    Works for any number of genes (a single is predicted as its own training profile, ``ctrl`` as ``ctrl``). A
    condition with a gene whose single is not in the training data is all-NaN, with the reason given.

    Examples
    --------
    >>> import numpy as np, anndata as ad, pandas as pd
    >>> X = np.array([[1.0, 1.0], [2.0, 1.0], [1.0, 0.5]])
    >>> train = ad.AnnData(X, obs=pd.DataFrame(index=["ctrl", "A+ctrl", "B+ctrl"]))
    >>> pred = Additive().fit(train).predict(["A+B", "A+C"])
    >>> pred.X[0]
    array([2. , 0.5])
    >>> pred.obs["reason"].iloc[1]
    "no training single for gene 'C' (C+ctrl)"
    """

    name = "additive"

    def __init__(self) -> None:
        pass

    def fit(self, train: AnnData) -> Additive:
        data = check_training(train)
        self._remember(data)
        singles = [c for c in data.conditions if c != CONTROL and c.endswith("+" + CONTROL)]
        self.singles_ = {c[: -len("+" + CONTROL)]: data.row(c) - data.ctrl for c in singles}
        return self

    def _predict(self, conditions: list[Condition]) -> tuple[np.ndarray, list[str]]:
        X = np.empty((len(conditions), len(self.genes_)))
        reasons = []
        for i, cond in enumerate(conditions):
            missing = [g for g in cond.genes if g not in self.singles_]
            if missing:
                reasons.append("no training single for " + ", ".join(f"gene {g!r} ({g}+{CONTROL})" for g in missing))
                continue
            X[i] = self.ctrl_ + sum((self.singles_[g] for g in cond.genes), np.zeros_like(self.ctrl_))
            reasons.append("")
        return X, reasons

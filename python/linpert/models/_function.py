"""A model made of two functions: the way to bring your own model (Python's, or R's ``custom_model()``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .._conditions import Condition
from ._base import PerturbationModel, check_training

if TYPE_CHECKING:
    from anndata import AnnData


class FunctionModel(PerturbationModel):
    """linpert's model contract around ``fit(train) -> state`` and ``predict(state, conditions) -> matrix``.

    The training pseudobulk is checked, requested names are made canonical and the prediction is assembled as for
    every other model; the functions only compute.

    Parameters
    ----------
    fit
        Called with the checked training pseudobulk (an AnnData, conditions × genes, ``ctrl`` included); whatever it
        returns is handed to ``predict``.
    predict
        Called with that state and a list of canonical condition names; returns absolute log expression, conditions
        × training genes in the requested order. A row without any finite value is reported as one the model cannot
        predict.
    name
        The model's name in result tables.

    Notes
    -----
    linpert cannot see inside a function, so a run folder reuses a FunctionModel's results only when you label it,
    ``models=[("mine", FunctionModel(...))]``: give it a new label when you change the functions.

    Examples
    --------
    >>> import numpy as np, anndata as ad, pandas as pd
    >>> train = ad.AnnData(np.array([[1.0, 2.0], [3.0, 0.0]]), obs=pd.DataFrame(index=["ctrl", "A+ctrl"]))
    >>> halfway = FunctionModel(fit=lambda t: t.X.mean(axis=0), predict=lambda m, c: np.tile(m, (len(c), 1)))
    >>> halfway.fit(train).predict(["A+B"]).X
    array([[2., 1.]])
    """

    def __init__(self, *, fit: Callable[[AnnData], Any], predict: Callable[[Any, list[str]], Any],
                 name: str = "custom") -> None:
        self.fit_function = fit
        self.predict_function = predict
        self.name = name

    def get_params(self) -> dict[str, Any]:
        return {"fit": self.fit_function, "predict": self.predict_function, "name": self.name}

    def fit(self, train: AnnData) -> FunctionModel:
        self._remember(check_training(train))
        self.state_ = self.fit_function(train)
        return self

    def _predict(self, conditions: list[Condition]) -> tuple[np.ndarray, list[str]]:
        names = [c.name for c in conditions]
        X = np.asarray(self.predict_function(self.state_, names), dtype=np.float64)
        expected = (len(names), len(self.genes_))
        if X.shape != expected:
            raise ValueError(
                f"The predict function of model {self.name!r} returned shape {X.shape} for {expected[0]} conditions "
                f"× {expected[1]} genes; return one row per requested condition, the training genes as columns."
            )
        reasons = ["" if np.isfinite(row).any() else f"{self.name} returned no finite value" for row in X]
        return X, reasons


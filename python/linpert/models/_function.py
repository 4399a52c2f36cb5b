"""A model made of two functions: the way to bring your own model (Python's, or R's ``custom_model()``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._conditions import Condition, parse_condition
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
        for what, function in (("fit", fit), ("predict", predict)):
            if not callable(function):
                raise TypeError(f"FunctionModel's {what} must be a function, got {type(function).__name__}: "
                                "fit(train) -> state and predict(state, conditions) -> matrix.")
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
        X = self._matrix(self.predict_function(self.state_, names), names)
        reasons = ["" if np.isfinite(row).any() else f"{self.name} returned no finite value" for row in X]
        return X, reasons

    def _matrix(self, returned: Any, names: list[str]) -> np.ndarray:
        """What ``predict`` returned as conditions × training genes: a frame or AnnData matched by its names (in
        any order, as the runner matches models' AnnData), anything else read by position."""
        contract = ("return one row per requested condition and the training genes as columns: a matrix in the "
                    "requested order, or a DataFrame (or AnnData) named by condition and gene, in any order.")
        if hasattr(returned, "obs_names") and hasattr(returned, "var_names"):
            returned = pd.DataFrame(returned.X.toarray() if hasattr(returned.X, "toarray") else returned.X,
                                    index=returned.obs_names, columns=returned.var_names)
        if isinstance(returned, pd.DataFrame):
            returned = self._by_name(returned, names, contract)
        try:
            X = np.asarray(returned, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"The predict function of model {self.name!r} returned values that are not numbers "
                            f"({type(returned).__name__}: {err}); {contract}") from None
        expected = (len(names), len(self.genes_))
        if X.shape != expected:
            raise ValueError(
                f"The predict function of model {self.name!r} returned shape {X.shape} for {expected[0]} conditions "
                f"× {expected[1]} genes; {contract}"
            )
        return X

    def _by_name(self, frame: pd.DataFrame, names: list[str], contract: str) -> pd.DataFrame:
        """The frame in the requested order; an axis left unnamed (a ``RangeIndex``) is read by position."""
        for axis, wanted, canonical in ((0, pd.Index(names), True), (1, self.genes_, False)):
            given = frame.axes[axis]
            if isinstance(given, pd.RangeIndex):
                continue
            given = pd.Index([parse_condition(str(n)).name if canonical else str(n) for n in given])
            what = ("conditions", "genes")[axis]
            problems = {"misses": list(wanted.difference(given)), "has extra": list(given.difference(wanted)),
                        "repeats": sorted(set(given[given.duplicated()]))}
            said = [f"{verb} {len(items)} {what} (e.g. {', '.join(map(str, items[:3]))})"
                    for verb, items in problems.items() if items]
            if said:
                raise ValueError(f"The DataFrame returned by the predict function of model {self.name!r} "
                                 f"{'; '.join(said)}; {contract}")
            frame = frame.set_axis(given, axis=axis).reindex(wanted, axis=axis)
        return frame

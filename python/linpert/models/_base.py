"""What every linpert model shares: input checks, the prediction AnnData and the parameter plumbing.

A model follows a small scikit-learn-like contract (checked for every registered model by one shared test):

- ``__init__`` only stores keyword-only hyperparameters, as given;
- ``fit(train)`` takes a pseudobulk AnnData of the training conditions (``ctrl`` included) and returns ``self``;
  learned state ends in ``_``;
- ``predict(conditions)`` is pure and returns an AnnData of absolute log expression whose rows are the requested
  canonical names in the requested order and whose ``var_names`` are the training genes. A row the model cannot
  predict is all-NaN and ``obs['reason']`` says why; no row is ever dropped.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._conditions import CONTROL, Condition, parse_condition, require_control, require_one_row_each
from .._threads import one_blas_thread

if TYPE_CHECKING:
    from anndata import AnnData


@dataclass(frozen=True)
class TrainingData:
    """A checked training pseudobulk as plain arrays.

    Attributes
    ----------
    X
        Conditions × genes, float64, finite (a private copy).
    conditions
        Canonical condition names, in the order of ``X``'s rows.
    genes
        Gene symbols, in the order of ``X``'s columns.
    ctrl
        The control profile (the ``ctrl`` row of ``X``).
    """

    X: np.ndarray
    conditions: pd.Index
    genes: pd.Index
    ctrl: np.ndarray

    def row(self, condition: str) -> np.ndarray:
        return self.X[self.conditions.get_loc(condition)]


#: Where the runner tells a model which split it is fitted on: ``uns["linpert"]["split"]`` of the training data,
#: ``{"seed": ..., "conditions": [...], "val": [...]}`` (every condition of the split, the scored ones included, and
#: its validation conditions). The linear model's random embeddings read it, as the paper's scripts seed and draw by
#: the split, and the adapters' paper presets select on its validation conditions, as the paper's scripts do.
SPLIT_KEY = "split"


def split_context(train: Any) -> dict:
    """What the runner recorded of the split ``train`` belongs to (see :data:`SPLIT_KEY`); {} outside a run."""
    return dict((getattr(train, "uns", {}) or {}).get("linpert", {}).get(SPLIT_KEY, {}) or {})


def check_training(train: Any) -> TrainingData:
    """Check a training pseudobulk (see :func:`linpert.pseudobulk`) and return it as :class:`TrainingData`.

    Raises a ``ValueError`` that names the problem and its fix when ``ctrl`` is missing, a value is not finite, a
    condition name is not canonical or a name occurs twice.
    """
    if not (hasattr(train, "X") and hasattr(train, "obs_names") and hasattr(train, "var_names")):
        raise TypeError(
            f"fit() needs a pseudobulk AnnData (conditions × genes), got {type(train).__name__}. "
            "Build one with linpert.pseudobulk(adata)."
        )
    conditions = pd.Index(train.obs_names.astype(str), name="condition")
    genes = pd.Index(train.var_names.astype(str))
    require_control(conditions, what="the training pseudobulk")
    for name in conditions:
        canonical = parse_condition(name).name
        if canonical != name:
            raise ValueError(
                f"Training condition {name!r} is not a canonical name (expected {canonical!r}). "
                "Build the pseudobulk with linpert.pseudobulk, which writes canonical names."
            )
    require_one_row_each(conditions, what="the training pseudobulk")
    if genes.has_duplicates:
        raise ValueError(
            f"Gene names occur more than once: {sorted(set(genes[genes.duplicated()]))[:5]}. "
            "Make var_names unique (linpert.pseudobulk does) before fitting."
        )
    X = train.X
    X = X.toarray() if hasattr(X, "toarray") else X
    X = np.array(X, dtype=np.float64, copy=True)
    bad = ~np.isfinite(X)
    if bad.any():
        rows = conditions[bad.any(axis=1)]
        raise ValueError(
            f"The training pseudobulk has {int(bad.sum())} non-finite values (conditions {list(rows[:5])}). "
            "Remove or impute them before fitting."
        )
    return TrainingData(X=X, conditions=conditions, genes=genes, ctrl=X[conditions.get_loc(CONTROL)].copy())


def parse_requested(conditions: Sequence[str]) -> list[Condition]:
    """Parse the conditions passed to ``predict`` into canonical :class:`Condition` objects."""
    if isinstance(conditions, str):
        raise TypeError(
            f"predict() takes a list of condition names, got the string {conditions!r}. "
            f"Write predict([{conditions!r}])."
        )
    parsed = [parse_condition(str(c)) for c in conditions]
    names = pd.Index([c.name for c in parsed])
    if names.has_duplicates:
        raise ValueError(
            f"Conditions requested more than once: {sorted(set(names[names.duplicated()]))}. "
            "Ask for each condition once (note that 'ctrl+A' and 'A+ctrl' are the same condition)."
        )
    return parsed


def prediction_anndata(
    conditions: Sequence[Condition], X: np.ndarray, reasons: Sequence[str], genes: pd.Index, *, model: str
) -> AnnData:
    """Assemble a prediction: rows in the requested order, ``obs['reason']``, all-NaN rows where a reason is given."""
    from anndata import AnnData

    X = np.array(X, dtype=np.float64, copy=True)
    reasons = [str(r) for r in reasons]
    for i, reason in enumerate(reasons):
        if reason:
            X[i] = np.nan
    obs = pd.DataFrame({"reason": reasons}, index=pd.Index([c.name for c in conditions], name="condition"))
    var = pd.DataFrame(index=pd.Index(genes.copy(), name=None))
    return AnnData(X=X, obs=obs, var=var, uns={"linpert": {"model": model}})


def require_paths(**paths: Any) -> None:
    """Raise :class:`FileNotFoundError` naming the first argument whose path does not exist (``None`` and
    non-path values are skipped).

    >>> require_paths(code=None, cells="/no/such/cells.h5ad")
    Traceback (most recent call last):
    ...
    FileNotFoundError: cells='/no/such/cells.h5ad' does not exist; give the file or folder it names.
    """
    for name, path in paths.items():
        if isinstance(path, (str, os.PathLike)) and not os.path.exists(path):
            raise FileNotFoundError(f"{name}={str(path)!r} does not exist; give the file or folder it names.")


class PerturbationModel:
    """Base class of linpert's models: parameters, ``repr``, the fitted check and the ``predict`` wrapper.

    Subclasses implement ``fit(train)`` (which must call :meth:`_remember` with the checked training data) and
    ``_predict(conditions) -> (X, reasons)``, where ``X`` is requested conditions × training genes.
    """

    #: Name in :data:`linpert.models.MODELS`.
    name: str = ""

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters given to ``__init__``, by name."""
        signature = inspect.signature(type(self).__init__)
        return {
            p.name: getattr(self, p.name)
            for p in signature.parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    def __repr__(self) -> str:
        def show(value: Any) -> str:
            if isinstance(value, pd.DataFrame):
                return f"<DataFrame {value.shape[0]}×{value.shape[1]}>"
            return repr(value)

        params = ", ".join(f"{k}={show(v)}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def fit(self, train: AnnData) -> PerturbationModel:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_inputs(self) -> None:
        """Raise a clear error now for a file or folder the model will need that is not there, so that a run stops
        before any work (:func:`linpert.models.resolve_models` calls it). The baselines need none."""

    def _remember(self, data: TrainingData) -> None:
        self.genes_ = data.genes
        self.ctrl_ = data.ctrl
        self.conditions_ = data.conditions

    def _check_fitted(self) -> None:
        if not hasattr(self, "genes_"):
            raise RuntimeError(f"This {type(self).__name__} is not fitted yet: call fit(train) before predict().")

    def predict(self, conditions: Sequence[str]) -> AnnData:
        """Predict the pseudobulk (absolute log expression) of ``conditions``.

        Parameters
        ----------
        conditions
            Condition names (``ctrl``, ``A+ctrl``, ``A+B``, ...); non-canonical spellings such as ``ctrl+A`` are
            accepted and returned under their canonical name.

        Returns
        -------
        AnnData
            Requested conditions × training genes, rows in the requested order. ``obs['reason']`` is ``''`` or
            says why that row is all-NaN.
        """
        self._check_fitted()
        parsed = parse_requested(conditions)
        with one_blas_thread():
            X, reasons = self._predict(parsed)
        return prediction_anndata(parsed, X, reasons, self.genes_, model=self.name or type(self).__name__)

    def _predict(self, conditions: list[Condition]) -> tuple[np.ndarray, list[str]]:  # pragma: no cover
        raise NotImplementedError

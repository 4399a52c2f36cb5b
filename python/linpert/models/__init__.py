"""Perturbation-effect models: the paper's baselines and its linear model, behind one small contract.

Every model is built with keyword-only hyperparameters, ``fit(train)`` on a pseudobulk AnnData of the training
conditions (``ctrl`` included) returns the model, and ``predict(conditions)`` returns an AnnData of absolute log
expression, one row per requested condition (NaN with ``obs['reason']`` where it cannot predict).

Examples
--------
>>> from linpert.models import make_model
>>> make_model("linear", n_components=5)
LinearModel(n_components=5, ridge=0.1, gene_embedding='pca', perturbation_embedding='pca', seed=None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import PerturbationModel
from ._baselines import Additive, Mean, NoChange
from ._linear import LinearModel, pca_gene_scores

#: Model name -> class. The names are the ones the benchmark tables use.
MODELS: dict[str, type[PerturbationModel]] = {
    "no_change": NoChange,
    "additive": Additive,
    "mean": Mean,
    "linear": LinearModel,
}

__all__ = [
    "MODELS",
    "Additive",
    "LinearModel",
    "Mean",
    "NoChange",
    "PerturbationModel",
    "make_model",
    "pca_gene_scores",
    "resolve_models",
]


def make_model(name: str, **params: Any) -> PerturbationModel:
    """Build a registered model by name.

    Parameters
    ----------
    name
        A key of :data:`MODELS`: ``no_change``, ``additive``, ``mean`` or ``linear``.
    **params
        Hyperparameters passed to the model's ``__init__``.

    Examples
    --------
    >>> make_model("mean")
    Mean()
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(sorted(MODELS))}.")
    try:
        return MODELS[name](**params)
    except TypeError as err:
        raise TypeError(f"Bad hyperparameters for model {name!r}: {err}") from None


def resolve_models(models: Sequence[Any]) -> list[tuple[str, Any]]:
    """Turn names, model instances or ``(label, model)`` pairs into unique ``(label, model)`` pairs.

    A name builds the registered model with its defaults; an instance is labelled with its registry name
    (``model.name``) or, failing that, its class name.

    Examples
    --------
    >>> [label for label, _ in resolve_models(["no_change", ("linear_k5", LinearModel(n_components=5))])]
    ['no_change', 'linear_k5']
    """
    if isinstance(models, str):
        models = [models]
    pairs = []
    for item in models:
        if isinstance(item, str):
            pairs.append((item, make_model(item)))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            label, model = item
            pairs.append((label, make_model(model) if isinstance(model, str) else model))
        elif hasattr(item, "fit") and hasattr(item, "predict"):
            pairs.append((getattr(item, "name", "") or type(item).__name__, item))
        else:
            raise TypeError(
                f"Cannot use {item!r} as a model: give a name ({', '.join(sorted(MODELS))}), a model instance "
                "with fit() and predict(), or a (label, model) pair."
            )
    labels = [label for label, _ in pairs]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise ValueError(
            f"Model labels must be unique, but {duplicated} occur more than once. "
            "Give (label, model) pairs with distinct labels."
        )
    return pairs

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
from ._function import FunctionModel
from ._linear import LinearModel, pca_gene_scores
from ._transfer import TransferModel

#: Model name -> class. The names are the ones the benchmark tables use.
MODELS: dict[str, type[PerturbationModel]] = {
    "no_change": NoChange,
    "additive": Additive,
    "mean": Mean,
    "linear": LinearModel,
    "transfer": TransferModel,
}

__all__ = [
    "MODELS",
    "Additive",
    "FunctionModel",
    "LinearModel",
    "Mean",
    "NoChange",
    "PerturbationModel",
    "TransferModel",
    "make_model",
    "parse_model_spec",
    "pca_gene_scores",
    "resolve_models",
    "spec_label",
    "split_model_specs",
]


def make_model(name: str, **params: Any) -> PerturbationModel:
    """Build a registered model by name.

    Parameters
    ----------
    name
        A key of :data:`MODELS` (``no_change``, ``additive``, ``mean``, ``linear``) or of
        :data:`linpert.adapters.ADAPTERS` (``gears``, ``scgpt``, ``scfoundation``, ``cpa``, ``state``,
        ``cellflow``, ``geneformer``, ``uce``, ``scbert``: these need ``cells=`` and their own inputs, see
        :mod:`linpert.adapters`).
    **params
        Hyperparameters passed to the model's ``__init__``.

    Examples
    --------
    >>> make_model("mean")
    Mean()
    """
    registry = _registry()
    if name not in registry:
        hint = "" if len(registry) > len(MODELS) else (
            " (the deep-learning adapters are found through the package's entry points: install linpert, e.g. "
            "pip install -e .)")
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(sorted(registry))}{hint}.")
    try:
        return registry[name](**params)
    except TypeError as err:
        raise TypeError(f"Bad hyperparameters for model {name!r}: {err}") from None


#: The entry-point group through which other packages' models (linpert's own adapters among them) are found by name.
ENTRY_POINTS = "linpert.models"


def _registry() -> dict[str, type[PerturbationModel]]:
    """The baselines plus every model registered under the ``linpert.models`` entry points: the deep-learning
    adapters (light to load: they run their models in worker processes) and any a package of yours declares."""
    from importlib.metadata import entry_points

    plugins = {point.name: point for point in entry_points(group=ENTRY_POINTS) if point.name not in MODELS}
    return {**MODELS, **{name: point.load() for name, point in plugins.items()}}


def parse_model_spec(spec: str) -> tuple[str, PerturbationModel]:
    """Build a labelled model from a one-line spec: ``name``, ``name(param=value, ...)`` or ``label=name(...)``.

    This is how the command line names models, including the paper's linear-model variants with embeddings from
    elsewhere. Values that read as numbers become numbers; everything else stays a string (embedding specs such as
    ``go:/path/go_essential_all.csv`` are passed to the model as they are).

    Examples
    --------
    >>> parse_model_spec("linear")
    ('linear', LinearModel(n_components=10, ridge=0.1, gene_embedding='pca', perturbation_embedding='pca', seed=None))
    >>> label, model = parse_model_spec("lm_random_p=linear(perturbation_embedding=random, seed=1)")
    >>> label, model.perturbation_embedding, model.seed
    ('lm_random_p', 'random', 1)
    """
    text = spec.strip()
    label = spec_label(text)
    rest = text.partition("=")[2] if label is not None else text
    name, paren, args = rest.partition("(")
    name = name.strip()
    if not name.isidentifier() or (label is not None and not label.strip()):
        raise ValueError(
            f"Model spec {spec!r} is not name, name(param=value, ...) or label=name(...)"
            + (f"; did you mean {_guess_spec(text)!r}?" if " " in text and "(" not in text else ".")
        )
    params: dict[str, Any] = {}
    if paren:
        if not args.endswith(")"):
            raise ValueError(f"Model spec {spec!r} opens '(' but does not end with ')'. Write name(param=value, ...).")
        for item in filter(None, (a.strip() for a in _split_top_level(args[:-1]))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"Model spec {spec!r}: {item!r} is not param=value.")
            params[key.strip()] = _spec_value(value.strip())
    return (label or name).strip(), make_model(name, **params)


def spec_label(spec: str) -> str | None:
    """The label a ``label=name(...)`` spec gives its model, or None when the spec has none.

    >>> spec_label("lm_go=linear(perturbation_embedding=go)"), spec_label("linear(ridge=1)")
    ('lm_go', None)
    """
    label, eq, _ = spec.strip().partition("=")
    return None if not eq or "(" in label else label


def _guess_spec(text: str) -> str:
    """``linear n_components=5 ridge=1`` -> ``linear(n_components=5, ridge=1)``: what a space-separated spec meant."""
    name, *params = text.split()
    return f"{name}({', '.join(params)})"


def split_model_specs(text: str) -> list[str]:
    """Split a comma-separated list of model specs, leaving commas inside parentheses alone.

    >>> split_model_specs("mean,linear(n_components=5, ridge=1),no_change")
    ['mean', 'linear(n_components=5, ridge=1)', 'no_change']
    """
    return [part.strip() for part in _split_top_level(text) if part.strip()]


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _spec_value(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"None": None, "True": True, "False": False}.get(value, value)


def resolve_models(models: Sequence[Any]) -> list[tuple[str, Any]]:
    """Turn names, model instances or ``(label, model)`` pairs into unique ``(label, model)`` pairs.

    A string is a model spec (see :func:`parse_model_spec`): a registered name builds that model with its
    defaults; an instance is labelled with its registry name (``model.name``) or, failing that, its class name.
    Each model's ``check_inputs()`` runs here, so that a missing file stops a run before any work; the error
    names the model's label.

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
            pairs.append(parse_model_spec(item))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            label, model = item
            model = make_model(model) if isinstance(model, str) else model
            if not (hasattr(model, "fit") and hasattr(model, "predict")):
                raise TypeError(f"The model labelled {label!r} is {model!r}, not a model: pair the label with a model "
                                "name or an instance with fit() and predict().")
            pairs.append((label, model))
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
    for label, model in pairs:  # before any work: a missing file is a second's mistake, not a run's
        check = getattr(model, "check_inputs", None)
        try:
            check() if check is not None else None
        except (FileNotFoundError, ValueError) as err:
            raise type(err)(f"Model {label!r}: {err}") from None
    return pairs

"""Train/validation/test splits of perturbation conditions, bit-identical to the paper and to GEARS.

Two schemes are implemented, each a deterministic function of the *set* of conditions and the seed:

- ``double`` (:func:`double_split`): the paper's split of the Norman double perturbations. Every single perturbation
  and the control train; the doubles are halved into train, then the other half into test and validation.
- ``simulation`` (:func:`simulation_split`): GEARS 0.1.2's ``DataSplitter(..., split_type='simulation')``, which the
  paper uses for the single-perturbation datasets. Whole *genes* are held out, so a test single has never been seen.

Both draw from numpy's legacy Mersenne-Twister exactly as the original code does (``np.random.seed(seed)`` followed
by ``np.random.choice``), through a private ``np.random.RandomState`` so the caller's global RNG is left alone.

A :class:`Split` stores its condition names sorted, round-trips through a small JSON file, and has a content
:attr:`~Split.hash` that is the same on every machine.

Examples
--------
>>> from linpert.splits import make_split
>>> split = make_split("double", ["ctrl", "A+ctrl", "B+ctrl", "A+B", "C+ctrl", "A+C", "B+C", "C+D"], seed=1)
>>> len(split.train), len(split.val), len(split.test)
(6, 1, 1)
>>> split.scored == split.test + split.val
True
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._conditions import CONTROL, canonical_names, parse_condition, require_control

__all__ = ["SPLITS", "Split", "double_split", "make_split", "simulation_split"]

FORMAT = "linpert.split"
FORMAT_VERSION = 1
_PARTS = ("train", "val", "test")
_SEED_MAX = 2**32 - 1  # np.random.seed accepts 0 .. 2**32 - 1
# GEARS' second pass, which carves the validation set out of the training set, uses these fixed fractions.
_GEARS_VAL_FRACTION = 0.9


@dataclass(frozen=True)
class Split:
    """An assignment of perturbation conditions to train, validation and test.

    Condition names are canonical (see :func:`linpert.parse_condition`) and stored sorted, so two splits with the
    same content compare equal and have the same :attr:`hash`.

    Attributes
    ----------
    kind
        The scheme that made it: ``'double'`` or ``'simulation'``.
    seed
        The seed of numpy's legacy RNG.
    train, val, test
        Disjoint tuples of canonical condition names. ``ctrl`` is in ``train``.
    subgroups
        Named subsets of ``test`` and ``val``. For ``simulation``, GEARS' test subgroups ``unseen_single``,
        ``combo_seen0``, ``combo_seen1``, ``combo_seen2`` and the same four of its validation pass prefixed with
        ``val_``. Empty for ``double``.
    params
        The scheme's settings (JSON scalars), e.g. ``{'train_gene_set_size': 0.75, 'combo_seen2_train_frac': 0.75}``.

    Examples
    --------
    >>> s = Split("double", 1, train=("ctrl", "A+ctrl", "B+ctrl"), val=("A+B",), test=("B+C", "A+C"))
    >>> s.test
    ('A+C', 'B+C')
    >>> s.assignment().to_dict()
    {'ctrl': 'train', 'A+B': 'val', 'A+C': 'test', 'A+ctrl': 'train', 'B+C': 'test', 'B+ctrl': 'train'}
    """

    kind: str
    seed: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    subgroups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in SPLITS:
            raise ValueError(f"Unknown split kind {self.kind!r}; use one of {sorted(SPLITS)}.")
        object.__setattr__(self, "seed", _check_seed(self.seed))
        parts = {}
        for part in _PARTS:
            names = getattr(self, part)
            if isinstance(names, str):
                raise TypeError(f"Split.{part} must be a sequence of condition names, not the string {names!r}.")
            parts[part] = tuple(sorted(str(n) for n in names))
            object.__setattr__(self, part, parts[part])
        seen: dict[str, str] = {}
        for part, names in parts.items():
            for name in names:
                if name in seen:
                    raise ValueError(
                        f"Condition {name!r} is in both {seen[name]!r} and {part!r}; a split must be disjoint."
                    )
                seen[name] = part
        held_out = set(parts["val"]) | set(parts["test"])
        subgroups = {}
        for key, names in dict(self.subgroups).items():
            names = tuple(sorted(str(n) for n in names))
            stray = sorted(set(names) - held_out)
            if stray:
                raise ValueError(
                    f"Subgroup {key!r} names conditions that are neither in test nor in val: {stray[:5]}. "
                    "Subgroups describe held-out conditions only."
                )
            subgroups[str(key)] = names
        object.__setattr__(self, "subgroups", dict(sorted(subgroups.items())))
        params = dict(self.params)
        for key, value in params.items():
            if not (value is None or isinstance(value, (str, bool, int, float))):
                raise TypeError(f"Split.params[{key!r}] must be a JSON scalar, got {type(value).__name__}.")
        object.__setattr__(self, "params", dict(sorted(params.items())))

    # -- derived views ---------------------------------------------------------------------------------------
    @property
    def scored(self) -> tuple[str, ...]:
        """The conditions the paper scores: ``test`` then ``val``."""
        return self.test + self.val

    @property
    def hash(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON of the content (not of the file format).

        Examples
        --------
        >>> Split("double", 1, train=("ctrl",), val=("A+B",), test=("A+C",)).hash
        'bdeade7c46d8344f'
        """
        return hashlib.sha256(_canonical_json(self._content()).encode("ascii")).hexdigest()[:16]

    def __hash__(self) -> int:
        return int(self.hash, 16)

    def assignment(self) -> pd.Series:
        """Condition -> ``'train'``/``'val'``/``'test'``, ``ctrl`` first, then the conditions sorted by name."""
        labels = {n: part for part in _PARTS for n in getattr(self, part)}
        order = sorted(labels, key=lambda n: (n != CONTROL, n))
        return pd.Series(
            [labels[n] for n in order], index=pd.Index(order, name="condition"), name="split", dtype=object
        )

    # -- JSON ------------------------------------------------------------------------------------------------
    def _content(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "params": self.params,
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "subgroups": {k: list(v) for k, v in self.subgroups.items()},
        }

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the split as human-readable JSON, atomically (temp file + ``os.replace``); returns the path."""
        path = Path(path)
        document = {"format": FORMAT, "format_version": FORMAT_VERSION, "hash": self.hash, **self._content()}
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Split:
        """Read a split written by :meth:`to_json`, checking its format, version, content and hash."""
        path = Path(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); write splits with Split.to_json().") from err
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"{path} is not a linpert split file (expected \"format\": \"{FORMAT}\").")
        version = document.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{path} has split format version {version!r}; this linpert reads version {FORMAT_VERSION}. "
                "Upgrade linpert or regenerate the split."
            )
        missing = [k for k in ("kind", "seed", *_PARTS) if k not in document]
        if missing:
            raise ValueError(f"{path} lacks the field(s) {missing}; regenerate it with Split.to_json().")
        for part in _PARTS:
            if not isinstance(document[part], list):
                raise ValueError(f"{path}: field {part!r} must be a list of condition names.")
        split = cls(
            kind=document["kind"],
            seed=document["seed"],
            train=tuple(document["train"]),
            val=tuple(document["val"]),
            test=tuple(document["test"]),
            subgroups={k: tuple(v) for k, v in document.get("subgroups", {}).items()},
            params=document.get("params", {}),
        )
        stored = document.get("hash")
        if stored is not None and stored != split.hash:
            raise ValueError(
                f"{path}: stored hash {stored} does not match its content ({split.hash}); the file was edited "
                "by hand or damaged. Regenerate it with make_split(...).to_json()."
            )
        return split


# -- the two schemes -----------------------------------------------------------------------------------------
def double_split(conditions: Iterable[str], *, seed: int) -> Split:
    """The paper's split of a double-perturbation dataset (Norman), seeds 1-5 in the paper.

    Every condition with at most one gene (the control and the singles) trains. The doubles, sorted by name, are
    halved: ``len // 2`` drawn to train; of the rest (still sorted), ``len(rest) // 2`` drawn to test and the
    remainder to validation. The draws are ``np.random.seed(seed)`` then two ``np.random.choice(..., replace=False)``.

    Parameters
    ----------
    conditions
        Condition names (unique), e.g. the ``obs_names`` of a pseudobulk; ``ctrl`` must be among them.
    seed
        Seed of numpy's legacy RNG.

    Examples
    --------
    >>> conds = ["ctrl", "A+ctrl", "B+ctrl", "A+B", "A+C", "B+C", "C+D", "D+E"]
    >>> s = double_split(conds, seed=1)
    >>> s.train, s.test, s.val
    (('A+C', 'A+ctrl', 'B+C', 'B+ctrl', 'ctrl'), ('A+B',), ('C+D', 'D+E'))
    """
    seed = _check_seed(seed)
    names = _canonical_list(conditions)
    few = [n for n in names if len(parse_condition(n).genes) <= 1]
    doubles = sorted(n for n in names if len(parse_condition(n).genes) >= 2)
    if not doubles:
        raise ValueError(
            "double_split needs double perturbations ('A+B'), but every condition has at most one gene. "
            "For single-perturbation data use simulation_split (kind='simulation')."
        )
    rng = np.random.RandomState(seed)
    train = rng.choice(doubles, len(doubles) // 2, replace=False).tolist()
    # The rest stays sorted: the paper's published labels fix this order (a set difference would not reproduce them).
    taken = frozenset(train)
    rest = [n for n in doubles if n not in taken]
    test = rng.choice(rest, len(rest) // 2, replace=False).tolist() if rest else []
    tested = frozenset(test)
    val = [n for n in rest if n not in tested]
    return Split("double", seed, train=tuple(few + train), val=tuple(val), test=tuple(test))


def simulation_split(
    conditions: Iterable[str],
    *,
    seed: int,
    train_gene_set_size: float = 0.75,
    combo_seen2_train_frac: float = 0.75,
) -> Split:
    """GEARS 0.1.2's ``simulation`` split, as ``PertData.prepare_split(split='simulation')`` makes it.

    1. The perturbed genes, sorted; ``int(n * train_gene_set_size)`` of them drawn as *train genes*.
    2. Singles of train genes train; singles of other genes are ``unseen_single``. Doubles with one train gene are
       ``combo_seen1``, with none ``combo_seen0``; of those with two (sorted), ``int(n * combo_seen2_train_frac)``
       drawn to train (after re-seeding), the rest ``combo_seen2``. All held-out conditions form the test set.
    3. Steps 1-2 again on the training conditions with fractions 0.9 / 0.9: what they hold out is validation.
    4. ``ctrl`` trains.

    Parameters
    ----------
    conditions
        Condition names (unique) with ``ctrl``; singles (``A+ctrl``) and doubles (``A+B``) only. Start from the
        same list GEARS would (it first drops conditions whose genes are not in its GO graph).
    seed
        Seed of numpy's legacy RNG; the paper uses 1 and 2.
    train_gene_set_size
        Fraction of genes whose perturbations may train, in (0, 1].
    combo_seen2_train_frac
        Fraction of the doubles with two train genes that train, in (0, 1].

    Examples
    --------
    >>> conds = ["ctrl"] + [f"G{i}+ctrl" for i in range(8)]
    >>> s = simulation_split(conds, seed=1)
    >>> len(s.train), len(s.val), len(s.test)
    (6, 1, 2)
    >>> s.subgroups["unseen_single"] == s.test
    True
    """
    seed = _check_seed(seed)
    fractions = {"train_gene_set_size": train_gene_set_size, "combo_seen2_train_frac": combo_seen2_train_frac}
    for name, value in fractions.items():
        if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0 < float(value) <= 1):
            raise ValueError(f"{name} must be a fraction in (0, 1], got {value!r}.")
    train_gene_set_size, combo_seen2_train_frac = float(train_gene_set_size), float(combo_seen2_train_frac)
    names = _canonical_list(conditions)
    perts = [n for n in names if n != CONTROL]
    too_many = [n for n in perts if len(parse_condition(n).genes) > 2]
    if too_many:
        raise ValueError(
            f"GEARS' simulation split handles singles and doubles only, got {len(too_many)} condition(s) with three "
            f"or more genes, e.g. {too_many[0]!r}. Drop them before splitting."
        )
    n_genes = len({g for n in perts for g in parse_condition(n).genes})
    n_train_genes = int(n_genes * train_gene_set_size)
    if int(n_train_genes * _GEARS_VAL_FRACTION) < 1:
        raise ValueError(
            f"Too few perturbed genes for a simulation split: {n_genes} gene(s) leave {n_train_genes} train gene(s) "
            f"at train_gene_set_size={train_gene_set_size}, and the validation pass then trains none. Use more "
            "perturbations or a larger train_gene_set_size."
        )
    train, test, test_groups = _gears_simulation_pass(perts, train_gene_set_size, combo_seen2_train_frac, seed)
    train, val, val_groups = _gears_simulation_pass(train, _GEARS_VAL_FRACTION, _GEARS_VAL_FRACTION, seed)
    if not train:
        raise ValueError(
            f"Too few perturbed genes for a simulation split: with {n_genes} gene(s) no perturbation is left to "
            "train after the test and validation passes. Use more perturbations or a larger train_gene_set_size."
        )
    subgroups = {**test_groups, **{f"val_{k}": v for k, v in val_groups.items()}}
    params = {"train_gene_set_size": train_gene_set_size, "combo_seen2_train_frac": combo_seen2_train_frac}
    return Split(
        "simulation", seed, train=(*train, CONTROL), val=tuple(val), test=tuple(test), subgroups=subgroups,
        params=params,
    )


def _gears_simulation_pass(
    perts: list[str], gene_frac: float, seen2_frac: float, seed: int
) -> tuple[list[str], list[str], dict[str, tuple[str, ...]]]:
    """One call of GEARS' ``DataSplitter.get_simulation_split``: (train, held out, subgroups)."""
    genes_of = {n: parse_condition(n).genes for n in perts}
    genes = np.unique([g for n in perts for g in genes_of[n]])
    # np.random.choice(a, k, replace=False) takes a[permutation(len(a))[:k]]: only len(genes) reaches the RNG.
    train_genes = set(np.random.RandomState(seed).choice(genes, int(len(genes) * gene_frac), replace=False).tolist())
    n_seen = {n: sum(g in train_genes for g in genes_of[n]) for n in perts}
    singles = [n for n in perts if len(genes_of[n]) == 1]
    doubles = [n for n in perts if len(genes_of[n]) == 2]
    seen2 = sorted(n for n in doubles if n_seen[n] == 2)  # GEARS: np.setdiff1d, which sorts
    seen2_train = np.random.RandomState(seed).choice(seen2, int(len(seen2) * seen2_frac), replace=False).tolist() \
        if seen2 else []
    groups = {
        "unseen_single": tuple(n for n in singles if n_seen[n] == 0),
        "combo_seen0": tuple(n for n in doubles if n_seen[n] == 0),
        "combo_seen1": tuple(n for n in doubles if n_seen[n] == 1),
        "combo_seen2": tuple(sorted(set(seen2) - set(seen2_train))),
    }
    train = [n for n in singles if n_seen[n] == 1] + seen2_train
    held_out = [n for group in groups.values() for n in group]
    return train, held_out, groups


SPLITS: dict[str, Callable[..., Split]] = {"double": double_split, "simulation": simulation_split}


def make_split(kind: str, conditions: Iterable[str], *, seed: int, **params: Any) -> Split:
    """Make a split of ``conditions`` by the scheme named ``kind`` (a key of :data:`SPLITS`).

    Examples
    --------
    >>> make_split("simulation", ["ctrl"] + [f"G{i}+ctrl" for i in range(8)], seed=2).kind
    'simulation'
    """
    try:
        scheme = SPLITS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown split kind {kind!r}; use one of {sorted(SPLITS)}.") from None
    return scheme(conditions, seed=seed, **params)


# -- helpers -------------------------------------------------------------------------------------------------
def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= _SEED_MAX:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1] (numpy's legacy RNG), got {seed!r}.")
    return int(seed)


def _canonical_list(conditions: Iterable[str]) -> list[str]:
    """Canonical names of a list of distinct conditions; a repeated name is an error."""
    if isinstance(conditions, str):
        raise TypeError(f"conditions must be an iterable of condition names, not the string {conditions!r}.")
    raw = list(conditions)
    counts = pd.Series(raw, dtype=object).value_counts()
    repeated = counts[counts > 1]
    if len(repeated):
        raise ValueError(
            f"Duplicate condition names, e.g. {repeated.index[0]!r} ({int(repeated.iloc[0])} times). Pass each "
            "condition once, e.g. pd.unique(adata.obs['condition']) or a pseudobulk's obs_names."
        )
    names = canonical_names(raw).tolist()  # merges spellings of one condition ('ctrl+A' and 'A+ctrl')
    names = list(dict.fromkeys(names))
    require_control(names, what="the condition list")
    return names


def _canonical_json(content: Mapping[str, Any]) -> str:
    for value in content.get("params", {}).values():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("Split.params must hold finite numbers.")
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

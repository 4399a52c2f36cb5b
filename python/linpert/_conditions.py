"""Perturbation condition names: parse GEARS-style names into one canonical form.

GEARS and the datasets built on it write a condition as ``+``-joined tokens, with ``ctrl`` standing for "no
perturbation": ``ctrl``, ``A+ctrl`` (or ``ctrl+A``) for a single, ``A+B`` for a double. GEARS' predictions join
genes with ``_`` instead (``A_B``).

The canonical form keeps the genes in the order written and puts ``ctrl`` last (``ctrl+A`` -> ``A+ctrl``). The
written order is kept on purpose: the paper's split sorts the names as its Norman file writes them
(``CEBPE+CEBPB``), so re-sorting would change which doubles land in train. Where a dataset writes the same genes in
two orders (GEARS' Norman file has ``A+B`` and ``B+A``), :func:`canonical_names` merges them under the sorted order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

CONTROL = "ctrl"
KINDS = ("control", "single", "double", "combination")

# How a missing condition reads once written as text (pandas' NaN and None, R's NA): never a gene symbol.
_MISSING = {"nan", "none", "na", "<na>"}
# A gene symbol: letters, digits and the punctuation HGNC and Ensembl use; no separators or whitespace.
_GENE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-:/@']*$")


@dataclass(frozen=True)
class Condition:
    """One canonical perturbation condition.

    Attributes
    ----------
    name
        Canonical name: ``ctrl``, ``A+ctrl`` or ``A+B`` (genes in written order, ``ctrl`` last).
    genes
        The perturbed genes, in written order; empty for the control.
    """

    name: str
    genes: tuple[str, ...]

    @property
    def kind(self) -> str:
        """``control``, ``single``, ``double`` or ``combination`` (three or more genes)."""
        return KINDS[min(len(self.genes), 3)]

    @property
    def is_control(self) -> bool:
        return not self.genes


def parse_condition(name: str, *, sep: str = "+") -> Condition:
    """Parse one condition name into its canonical :class:`Condition`.

    Parameters
    ----------
    name
        A GEARS-style name (``ctrl``, ``A+ctrl``, ``ctrl+A``, ``A+B``) or, with ``sep="_"``, a key of GEARS'
        predictions (``A``, ``A_B``).
    sep
        The token separator.

    Examples
    --------
    >>> parse_condition("ctrl+KLF1")
    Condition(name='KLF1+ctrl', genes=('KLF1',))
    >>> parse_condition("CEBPE+CEBPB").genes
    ('CEBPE', 'CEBPB')
    >>> parse_condition("AHR_FEV", sep="_").name
    'AHR+FEV'
    """
    if not isinstance(name, str):
        raise TypeError(f"A condition name must be a string, got {type(name).__name__}: {name!r}.")
    return _parse(name, sep)


@lru_cache(maxsize=2**16)  # a Condition is immutable; every fit and every table parses the same few hundred names
def _parse(name: str, sep: str) -> Condition:
    tokens = [t.strip() for t in name.strip().split(sep)]
    if not tokens or any(t == "" for t in tokens):
        raise ValueError(
            f"Cannot parse condition {name!r}: empty token. Write conditions as 'ctrl', 'A+ctrl' or 'A+B'."
        )
    genes = tuple(t for t in tokens if t != CONTROL)
    missing = [t for t in genes if t.lower() in _MISSING]
    if missing:
        raise ValueError(
            f"Condition {name!r} reads as a missing value ({missing[0]!r}), not a gene: give every cell a condition "
            "('ctrl' for unperturbed cells) or drop the cells without one."
        )
    for gene in genes:
        if not _GENE.match(gene):
            raise ValueError(
                f"Cannot parse condition {name!r}: {gene!r} is not a gene symbol. "
                "Write conditions as 'ctrl', 'A+ctrl' or 'A+B'."
            )
    if len(set(genes)) != len(genes):
        raise ValueError(f"Condition {name!r} names the same gene twice.")
    if len(tokens) - len(genes) > 1:  # 'ctrl+ctrl' too: the same rule for every condition
        raise ValueError(f"Condition {name!r} has more than one 'ctrl' token; write 'ctrl' or 'A+ctrl'.")
    if not genes:
        return Condition(CONTROL, ())
    suffix = ("+" + CONTROL) if len(genes) == 1 else ""
    return Condition("+".join(genes) + suffix, genes)


def canonical_names(names: Iterable[str], *, sep: str = "+") -> pd.Series:
    """Map raw condition names to canonical names, merging names that differ only in gene order.

    Returns a Series indexed by the distinct raw names (in first-seen order) whose values are canonical names.
    Where a gene set is written in more than one order, all of them map to the sorted order.

    Examples
    --------
    >>> canonical_names(["ctrl", "ctrl+A", "B+A", "A+B", "C+B"]).to_dict()
    {'ctrl': 'ctrl', 'ctrl+A': 'A+ctrl', 'B+A': 'A+B', 'A+B': 'A+B', 'C+B': 'C+B'}
    """
    raw = pd.unique(pd.Series(list(names), dtype=object))
    parsed = [parse_condition(n, sep=sep) for n in raw]
    orders: dict[frozenset[str], set[tuple[str, ...]]] = {}
    for cond in parsed:
        orders.setdefault(frozenset(cond.genes), set()).add(cond.genes)
    canonical = []
    for cond in parsed:
        if len(orders[frozenset(cond.genes)]) > 1:
            cond = parse_condition("+".join(sorted(cond.genes)))
        canonical.append(cond.name)
    return pd.Series(canonical, index=pd.Index(raw, name="raw"), name="condition")


def require_one_row_each(names: Iterable[str], *, what: str = "the pseudobulk") -> None:
    """Refuse rows that are one condition written twice (``A+B`` and ``B+A``; ``A+ctrl`` and ``ctrl+A``; a name
    repeated).

    A pseudobulk has one row per condition. Two rows of one condition cannot both be trained and scored: a split
    keeps one name, and the other would still be read by the interaction analysis. linpert does not guess how to
    merge them (by cells, or as measured separately); :func:`linpert.pseudobulk` merges the cells of every
    spelling, so pseudobulking the cells again gives one row.
    """
    names = [str(n) for n in names]
    groups: dict[frozenset[str], list[str]] = {}
    for name in names:
        groups.setdefault(frozenset(parse_condition(name).genes), []).append(name)
    twice = [spellings for spellings in groups.values() if len(spellings) > 1]
    if twice:
        shown = "; ".join(f"{spellings[0]!r} {len(spellings)} times" if len(set(spellings)) == 1 else
                          " and ".join(repr(s) for s in spellings) for spellings in twice[:3])
        raise ValueError(
            f"{what[0].upper()}{what[1:]} has {len(twice)} condition{'s' * (len(twice) > 1)} in more than one row "
            f"({shown}{'; ...' if len(twice) > 3 else ''}): the same genes perturbed, written twice. A pseudobulk "
            "has one row per condition: pseudobulk the cells with linpert.pseudobulk(), which merges every "
            "spelling of a condition (weighted by cells), or keep one row of each."
        )


def condition_table(names: Iterable[str]) -> pd.DataFrame:
    """A table of canonical conditions: index ``condition``; columns ``genes`` (tuple), ``kind``, ``n_genes``."""
    rows = [parse_condition(n) for n in names]
    return pd.DataFrame(
        {
            "genes": [c.genes for c in rows],
            "kind": [c.kind for c in rows],
            "n_genes": np.array([len(c.genes) for c in rows], dtype=np.int64),
        },
        index=pd.Index([c.name for c in rows], name="condition"),
    )


def require_control(names: Iterable[str], *, what: str = "the data") -> None:
    """Raise a clear error when no control condition is among ``names``."""
    if CONTROL not in set(names):
        raise ValueError(
            f"No control cells in {what}: no condition is named 'ctrl'. linpert measures every effect against the "
            "control profile; label the unperturbed cells 'ctrl' in the condition column."
        )

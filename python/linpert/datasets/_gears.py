"""GEARS' condition filter: the perturbations GEARS 0.1.2's ``PertData`` keeps, as the paper loaded its data.

The paper loads Adamson and both Replogle screens with ``PertData.load``. ``set_pert_genes`` (default graph) takes
the genes of ``essential_all_data_pert_genes.pkl`` that are keys of ``gene2go_all.pkl``; ``load`` then keeps a cell
only if ``utils.filter_pert_in_go(condition, pert_names)``: ``ctrl`` always, else each token of the condition is
``ctrl`` or one of those genes. Every count the paper reports (Adamson: 82 conditions, not the file's 88) is after
this filter, so linpert's loaders apply it too and say what they dropped.

GEARS reads only a condition's first two tokens; linpert applies the same rule to every token (the same answer for
every name GEARS can read).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from pathlib import Path

from .._io import check_pickle
from ._download import data_dir

__all__ = ["GO_FILES", "DROP_REASON", "perturbable_genes", "kept_by_gears", "dropped_by_gears", "find_go_files"]

#: The two files of GEARS' GO graph that decide which genes can be perturbed (GEARS looks for them in its data_path).
GO_FILES = ("gene2go_all.pkl", "essential_all_data_pert_genes.pkl")
#: Why a condition is dropped, in the words the run folder and the report use.
DROP_REASON = (
    "not in GEARS' GO graph: GEARS 0.1.2's PertData (which loaded the paper's data) keeps only perturbations of "
    "genes that are in essential_all_data_pert_genes.pkl and gene2go_all.pkl"
)


def perturbable_genes(folder: str | os.PathLike) -> frozenset[str]:
    """GEARS' ``pert_names``: the genes of ``essential_all_data_pert_genes.pkl`` that ``gene2go_all.pkl`` knows."""
    folder = Path(folder)
    gene2go, essential = (_read_pickle(folder / name) for name in GO_FILES)
    if not isinstance(gene2go, dict):
        raise ValueError(f"{folder / GO_FILES[0]} holds a {type(gene2go).__name__}, not GEARS' gene -> GO dict.")
    return frozenset(str(gene) for gene in essential if gene in gene2go)


def _read_pickle(path: Path):
    check_pickle(path)  # a cut-short download is named as such, not as an unpickling error
    with open(path, "rb") as handle:
        return pickle.load(handle)  # GEARS' own published files, read as GEARS reads them


def kept_by_gears(condition: str, genes: frozenset[str]) -> bool:
    """GEARS' ``filter_pert_in_go``: ``ctrl``, or every ``+``-separated token is ``ctrl`` or a perturbable gene.

    >>> kept_by_gears("A+ctrl", frozenset({"A"})), kept_by_gears("A+B", frozenset({"A"}))
    (True, False)
    """
    return condition == "ctrl" or all(token == "ctrl" or token in genes for token in condition.split("+"))


def dropped_by_gears(conditions: Iterable[str], genes: frozenset[str]) -> list[str]:
    """The distinct names among ``conditions`` that GEARS' ``PertData`` drops, in order of first appearance."""
    return [c for c in dict.fromkeys(map(str, conditions)) if not kept_by_gears(c, genes)]


def find_go_files(dataset_file: Path, go_files: str | os.PathLike | None, cache_dir=None) -> Path:
    """The folder holding GEARS' two GO files for a dataset: ``go_files`` when given, else the dataset folder's parent
    (GEARS' ``data_path``) when it holds both, else linpert's cache when it does. A reader of local files downloads
    nothing: where neither has them, the error says how to get them."""
    candidates = [Path(go_files)] if go_files is not None else [dataset_file.resolve().parent.parent,
                                                                   data_dir(cache_dir)]
    for folder in candidates:
        if all((folder / name).is_file() for name in GO_FILES):
            return folder
    looked = " or ".join(repr(str(folder)) for folder in candidates)
    raise FileNotFoundError(
        f"GEARS' GO files ({' and '.join(GO_FILES)}) are not in {looked}. They decide which conditions GEARS' "
        "PertData keeps, as the paper loaded its data: download them once with linpert.datasets.fetch('gene2go_all') "
        "and linpert.datasets.fetch('essential_all_data_pert_genes'), pass go_files=<the folder that holds them>, "
        "or pass gears_filter=False to keep every condition of the file."
    )

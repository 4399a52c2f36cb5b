"""Gene and perturbation embeddings for the linear model (paper Fig. 2c): GO graph, pretrained models, transfer.

Every embedding is a DataFrame indexed by gene symbol, one column per dimension, ready for
``LinearModel(gene_embedding=..., perturbation_embedding=...)``. A model can also name an embedding by a **spec
string**, resolved (and cached) when it is fitted, so the runner and the command line can list model variants:

=====================================================  ==========================================================
``go`` / ``go:<go_essential_all.csv>``                 :func:`go_embedding` of GEARS' GO graph (2-d; ``go`` =
                                                       the registry's cached file)
``scgpt:<model folder>``                               :func:`read_scgpt_gene_embedding`
``scfoundation:<models.ckpt>?genes=<gene list file>``  :func:`read_scfoundation_gene_embedding`
``table:<file>``                                       :func:`read_embedding_table`
``transfer:<pseudobulk.h5ad>``                         :func:`transfer_embedding` of another dataset (10-d)
=====================================================  ==========================================================

Options follow ``?`` as ``key=value`` pairs joined by ``&`` (e.g. ``go:/d/go.csv?n_components=4&backend=python``,
``table:/d/emb.tsv?transpose=true``).

Examples
--------
>>> parse_embedding_spec("go:/data/go_essential_all.csv?n_components=2")
EmbeddingSpec(kind='go', path='/data/go_essential_all.csv', options={'n_components': 2})
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ._graph import go_embedding, jaccard_go_graph, normalize_signs, read_gene2go, read_go_edges, read_go_embedding
from ._pretrained import (
    layer_norm,
    read_embedding_table,
    read_scfoundation_gene_embedding,
    read_scgpt_gene_embedding,
)
from ._transfer import random_embedding, transfer_embedding

__all__ = [
    "SPEC_KINDS",
    "EmbeddingSpec",
    "go_embedding",
    "is_embedding_spec",
    "jaccard_go_graph",
    "layer_norm",
    "load_embedding",
    "normalize_signs",
    "parse_embedding_spec",
    "random_embedding",
    "read_embedding_table",
    "read_gene2go",
    "read_go_edges",
    "read_go_embedding",
    "read_scfoundation_gene_embedding",
    "read_scgpt_gene_embedding",
    "transfer_embedding",
]

#: Spec kind -> the options it accepts (and how to convert them).
SPEC_KINDS: dict[str, dict[str, type]] = {
    "go": {"n_components": int, "which": str, "scaled": bool, "backend": str},
    "scgpt": {"special_tokens": bool},
    "scfoundation": {"genes": str},
    "table": {"transpose": bool},
    "transfer": {"n_components": int},
}


@dataclass(frozen=True)
class EmbeddingSpec:
    """A parsed embedding spec string: ``kind``, ``path`` (``None`` only for ``go``) and typed ``options``."""

    kind: str
    path: str | None
    options: dict[str, Any] = field(default_factory=dict)


def is_embedding_spec(value: Any) -> bool:
    """Whether ``value`` is a string naming a file-based embedding (``kind:...`` or ``go``)."""
    return isinstance(value, str) and (value == "go" or value.split(":", 1)[0] in SPEC_KINDS and ":" in value)


def _convert(kind: str, key: str, text: str) -> Any:
    types = SPEC_KINDS[kind]
    if key not in types:
        raise ValueError(f"Embedding kind {kind!r} takes the options {sorted(types)}, not {key!r}.")
    if types[key] is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"Option {key}={text!r} must be true or false.")
        return text.lower() in ("true", "1")
    try:
        return types[key](text)
    except ValueError:
        raise ValueError(f"Option {key}={text!r} must be of type {types[key].__name__}.") from None


def parse_embedding_spec(text: str) -> EmbeddingSpec:
    """Parse ``kind:path?key=value&...`` (see the module docs) into an :class:`EmbeddingSpec`."""
    if not is_embedding_spec(text):
        raise ValueError(
            f"{text!r} is not an embedding spec. Write kind:path with kind one of {sorted(SPEC_KINDS)}, "
            "e.g. 'go:/data/go_essential_all.csv' or 'scgpt:/models/scGPT_human'."
        )
    kind, _, rest = text.partition(":")
    path, _, query = rest.partition("?")
    options = {}
    for pair in filter(None, query.split("&")):
        key, eq, value = pair.partition("=")
        if not eq:
            raise ValueError(f"Option {pair!r} in {text!r} must be written key=value.")
        options[key] = _convert(kind, key, value)
    if not path and kind != "go":
        raise ValueError(f"The embedding spec {text!r} names no file; write {kind}:<path>.")
    if kind == "scfoundation" and "genes" not in options:
        raise ValueError(
            f"{text!r} needs scFoundation's gene list: add ?genes=<OS_scRNA_gene_index.19264.tsv or one gene per line>."
        )
    return EmbeddingSpec(kind=kind, path=path or None, options=options)


def load_embedding(spec: str | EmbeddingSpec) -> pd.DataFrame:
    """Load the embedding a spec names (cached per spec and file modification time; returns a copy)."""
    if isinstance(spec, str):
        spec = parse_embedding_spec(spec)
    if spec.path is not None and not Path(spec.path).exists():
        raise FileNotFoundError(f"The {spec.kind} embedding file {spec.path!r} does not exist; check the path.")
    stamp = os.stat(spec.path).st_mtime_ns if spec.path is not None else 0
    return _load_cached(spec.kind, spec.path, tuple(sorted(spec.options.items())), stamp).copy()


@functools.lru_cache(maxsize=8)
def _load_cached(kind: str, path: str | None, options: tuple, stamp: int) -> pd.DataFrame:
    opts = dict(options)
    if kind == "go":
        return read_go_embedding(path, **opts)
    if kind == "scgpt":
        return read_scgpt_gene_embedding(path, **opts)
    if kind == "scfoundation":
        genes = opts.pop("genes")
        return read_scfoundation_gene_embedding(path, genes, **opts)
    if kind == "table":
        return read_embedding_table(path, **opts)
    from ..datasets._readers import _open

    return transfer_embedding(_open(path, backed=False), **opts)

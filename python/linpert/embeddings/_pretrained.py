"""Gene embeddings of pretrained models (scGPT, scFoundation) and plain embedding tables, as gene-indexed DataFrames.

torch is needed only to read the checkpoints and is imported when a reader runs
(``pip install 'linpert[torch]'``). No weights are downloaded: point the readers at files you have.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: scGPT's gene encoder LayerNorm epsilon (torch's default).
LAYER_NORM_EPS = 1e-5
SCGPT_KEYS = ("encoder.embedding.weight", "encoder.enc_norm.weight", "encoder.enc_norm.bias")
SCFOUNDATION_KEY = "model.pos_emb.weight"


def _torch():
    from .._config import optional

    return optional("torch", extra="torch", needed_for="Reading a model checkpoint")


def _load_checkpoint(path: Path, *, weights_only: bool) -> Any:
    torch = _torch()
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {str(path)!r}; give the path of the model file.")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # torch raises UnpicklingError and others for objects beyond plain tensors
        if not weights_only:
            raise
        raise ValueError(
            f"torch could not load {str(path)!r} as plain weights ({type(err).__name__}: {str(err)[:200]}). "
            "If you trust the file, pass weights_only=False (this runs pickled code)."
        ) from err


def _array(tensor: Any) -> np.ndarray:
    return np.asarray(tensor.detach().cpu().float().numpy(), dtype=np.float64)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, *, eps: float = LAYER_NORM_EPS) -> np.ndarray:
    """torch's ``LayerNorm`` over the last axis: ``(x − mean) / √(var + eps) · weight + bias`` (biased variance).

    Examples
    --------
    >>> layer_norm(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2)).round(4)
    array([[-1.,  1.]])
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + eps) * weight + bias


def _state_dict(checkpoint: Any, keys: Sequence[str], path: Path) -> Mapping[str, Any]:
    """The mapping holding ``keys``: the checkpoint itself or one of its values (``model_state_dict`` etc.)."""
    candidates = [checkpoint] + [v for v in checkpoint.values() if isinstance(v, Mapping)] if isinstance(
        checkpoint, Mapping
    ) else []
    for candidate in candidates:
        if all(key in candidate for key in keys):
            return candidate
    raise ValueError(
        f"{str(path)!r} holds no state dict with the keys {list(keys)}; is it scGPT's best_model.pt?"
    )


def read_scgpt_gene_embedding(
    folder: str | os.PathLike, *, weights_only: bool = True, special_tokens: bool = False
) -> pd.DataFrame:
    """scGPT's gene encoder applied to every vocabulary token: embedding row, then the encoder's LayerNorm.

    Reads ``vocab.json`` (token → row) and ``best_model.pt`` (the state dict) from ``folder`` (e.g. the
    ``scGPT_human`` model folder): ``encoder.embedding.weight`` then ``encoder.enc_norm`` (weight, bias,
    eps 1e-5), 512 dimensions for ``scGPT_human``.

    Parameters
    ----------
    folder
        The model folder.
    weights_only
        Load tensors only (safe); set False only for a checkpoint you trust that holds other objects.
    special_tokens
        Keep tokens written ``<...>`` (``<pad>``, ``<cls>``, ``<eoc>``); by default they are skipped.

    Returns
    -------
    DataFrame
        Genes × ``dim1..dimD``, rows in vocabulary order.
    """
    folder = Path(folder)
    vocab_path = folder / "vocab.json"
    if not vocab_path.is_file():
        raise FileNotFoundError(f"No vocab.json in {str(folder)!r}; pass scGPT's model folder (e.g. scGPT_human).")
    vocab = json.loads(vocab_path.read_text())
    if not isinstance(vocab, Mapping):
        raise ValueError(f"{str(vocab_path)!r} must map tokens to row numbers.")
    path = folder / "best_model.pt"
    state = _state_dict(_load_checkpoint(path, weights_only=weights_only), SCGPT_KEYS, path)
    table = _array(state[SCGPT_KEYS[0]])
    tokens = [t for t in vocab if special_tokens or not (t.startswith("<") and t.endswith(">"))]
    rows = np.array([int(vocab[t]) for t in tokens], dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= table.shape[0]):
        raise ValueError(
            f"vocab.json refers to row {int(rows.max())}, but the embedding has {table.shape[0]} rows; the vocabulary "
            "and the checkpoint do not belong together."
        )
    values = layer_norm(table[rows], _array(state[SCGPT_KEYS[1]]), _array(state[SCGPT_KEYS[2]]))
    return _frame(values, tokens)


def _gene_list(genes: Sequence[str] | str | os.PathLike) -> list[str]:
    """A gene list, or a file: scFoundation's ``OS_scRNA_gene_index.19264.tsv`` (column ``gene_name``) or one gene
    per line."""
    if isinstance(genes, (str, os.PathLike)):
        lines = Path(genes).read_text().splitlines()
        header = lines[0].split("\t") if lines else []
        if "gene_name" in header:
            return list(pd.read_csv(genes, sep="\t")["gene_name"].astype(str))
        return [line.split("\t")[0].strip() for line in lines if line.strip()]
    return [str(g) for g in genes]


def read_scfoundation_gene_embedding(
    checkpoint: str | os.PathLike, genes: Sequence[str] | str | os.PathLike, *, weights_only: bool = True
) -> pd.DataFrame:
    """scFoundation's gene embedding: ``ckp['gene']['state_dict']['model.pos_emb.weight']`` of ``models.ckpt``.

    Row ``i`` belongs to gene ``i`` of scFoundation's 19,264-gene list (the extra rows at the end are its
    total-count tokens and are dropped). Genes outside that list have no embedding: a linear model with it predicts
    NaN for them, and they drop out of that model's metric (spec §3).

    Parameters
    ----------
    checkpoint
        ``models.ckpt``.
    genes
        The gene list in model order: a sequence, or a file (``OS_scRNA_gene_index.19264.tsv`` with a
        ``gene_name`` column, or one gene per line).
    weights_only
        Load tensors only (safe); set False only for a checkpoint you trust that holds other objects.
    """
    path = Path(checkpoint)
    names = _gene_list(genes)
    ckp = _load_checkpoint(path, weights_only=weights_only)
    try:
        weight = ckp["gene"]["state_dict"][SCFOUNDATION_KEY]
    except (KeyError, TypeError):
        raise ValueError(
            f"{str(path)!r} has no ckp['gene']['state_dict']['{SCFOUNDATION_KEY}']; pass scFoundation's models.ckpt."
        ) from None
    table = _array(weight)
    if table.shape[0] < len(names):
        raise ValueError(
            f"The gene list has {len(names)} genes but the embedding only {table.shape[0]} rows; pass scFoundation's "
            "19,264-gene list in model order."
        )
    return _frame(table[: len(names)], names)


def read_embedding_table(path: str | os.PathLike, *, transpose: bool = False) -> pd.DataFrame:
    """A genes × dimensions table from a ``.tsv``/``.txt``, ``.csv`` or ``.parquet`` file.

    The gene symbols are the first column (or the parquet index, when it is not a plain range). With
    ``transpose=True`` the file is dimensions × genes, as the paper wrote its GO embedding (2 rows × genes, gene
    names in the header).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "emb.tsv"
    >>> _ = path.write_text("gene\\ta\\tb\\nX\\t1\\t2\\nY\\t3\\t4\\n")
    >>> emb = read_embedding_table(path)
    >>> list(emb.index), list(emb.columns), emb.to_numpy().tolist()
    (['X', 'Y'], ['dim1', 'dim2'], [[1.0, 2.0], [3.0, 4.0]])
    """
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix.startswith(".parquet"):
        table = pd.read_parquet(path)
        if isinstance(table.index, pd.RangeIndex):
            table = table.set_index(table.columns[0])
    elif suffix.startswith((".tsv", ".txt", ".csv")):
        table = pd.read_csv(path, sep="," if suffix.startswith(".csv") else "\t", index_col=0)
    else:
        raise ValueError(f"Cannot read {str(path)!r}: use a .tsv, .txt, .csv or .parquet file (optionally .gz).")
    if transpose:
        table = table.T
    try:
        values = table.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{str(path)!r} must hold numbers only besides the gene column; with genes as columns pass "
            "transpose=True."
        ) from None
    return _frame(values, [str(g) for g in table.index])


def _frame(values: np.ndarray, genes: Sequence[str]) -> pd.DataFrame:
    index = pd.Index(genes, name="gene", dtype=object)
    if index.has_duplicates:
        dup = sorted(set(index[index.duplicated()]))[:5]
        raise ValueError(f"The embedding lists genes more than once ({dup}); keep one row per gene.")
    return pd.DataFrame(values, index=index, columns=[f"dim{d + 1}" for d in range(values.shape[1])])

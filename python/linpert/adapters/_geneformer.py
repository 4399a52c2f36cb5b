"""Geneformer's perturbed cell embeddings, computed with its weights in an isolated environment.

The paper decoded Geneformer with a ridge regression (:class:`~linpert.adapters.GeneformerDecoder`) from the mean
embedding of each condition's in-silico perturbed control cells. :func:`geneformer_embedding` computes that table:
linpert rank-value encodes the control cells and perturbs them (:mod:`linpert.adapters._inputs`); the worker embeds
them with ``transformers`` (Geneformer is a BERT in Hugging Face's format; its ``geneformer`` package, which is on
no registry, does the same) and averages per condition. :func:`write_geneformer_model` writes a small randomly
initialised model in Geneformer's folder layout to try this before downloading the real weights.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._conditions import CONTROL, parse_condition
from .._io import atomic_write
from ._base import embed_once, run_once
from ._cells import gene_symbols, load_cells, per_cell_conditions, reconstruct_counts
from ._environment import Runtime, Stack
from ._inputs import GENEFORMER_MAX_LEN, perturb_rank_encoding, rank_value_encoding

__all__ = ["geneformer_embedding", "write_geneformer_model"]

#: What Geneformer's model folder holds besides the weights: its token and gene-median dictionaries.
TOKEN_DICTIONARY, MEDIAN_DICTIONARY = "token_dictionary.pkl", "gene_median_dictionary.pkl"
STACKS = (Stack(("transformers>=4.40,<4.50", "torch==2.3.0", "numpy<2"),
                note="transformers, which Geneformer's own package runs on"),)
MODULES = ("transformers", "torch")
_WORKER = "geneformer_worker.py"


def write_geneformer_model(
    folder: str | os.PathLike,
    gene_ids: Sequence[str],
    *,
    gene_medians: dict[str, float] | None = None,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 2,
    max_len: int = GENEFORMER_MAX_LEN,
    seed: int = 0,
    runtime: Runtime | str = "venv",
) -> Path:
    """Write a randomly initialised Geneformer-format model: ``config.json`` and weights (``BertForMaskedLM``),
    ``token_dictionary.pkl`` (``<pad>`` 0, ``<mask>`` 1, then the genes) and ``gene_median_dictionary.pkl``.

    Parameters
    ----------
    folder
        Where to write (created; must not hold a model already).
    gene_ids
        The vocabulary (Geneformer keys genes by Ensembl ID; any identifiers work for a test).
    gene_medians
        Gene -> median normalised expression (default: 1 for every gene).
    hidden_size, layers, heads, max_len
        The architecture (Geneformer: 256 or 512, 6 or 12 layers, 4 or 8 heads, 2,048 tokens).
    seed, runtime
        Seeds the initialisation; where ``transformers`` runs.
    """
    folder = Path(folder)
    if (folder / "config.json").exists():
        raise FileExistsError(f"{folder} already holds a model (config.json); choose an empty folder.")
    folder.mkdir(parents=True, exist_ok=True)
    genes = [str(g) for g in dict.fromkeys(gene_ids)]
    tokens = {"<pad>": 0, "<mask>": 1, **{g: i + 2 for i, g in enumerate(genes)}}
    medians = {g: float((gene_medians or {}).get(g, 1.0)) for g in genes}
    config = {"model_type": "bert", "vocab_size": len(tokens), "hidden_size": int(hidden_size),
              "num_hidden_layers": int(layers), "num_attention_heads": int(heads),
              "intermediate_size": 2 * int(hidden_size), "max_position_embeddings": int(max_len),
              "pad_token_id": 0, "hidden_act": "relu", "layer_norm_eps": 1e-12}
    atomic_write(folder / TOKEN_DICTIONARY, pickle.dumps(tokens), kind="bytes")
    atomic_write(folder / MEDIAN_DICTIONARY, pickle.dumps(medians), kind="bytes")
    atomic_write(folder / "config.json", json.dumps(config, indent=1))
    weights = folder / "weights"
    run_once(runtime, model="geneformer", worker=_WORKER, modules=MODULES, stacks=STACKS, action="model",
             inputs={"model": folder}, output="weights", keep=weights, request={"seed": int(seed)})
    for path in weights.iterdir():  # config.json and the weights file, beside the dictionaries
        path.replace(folder / path.name)
    weights.rmdir()
    return folder


def geneformer_embedding(
    cells: Any,
    model: str | os.PathLike,
    *,
    mode: str = "overexpress",
    conditions: Sequence[str] | None = None,
    n_control_cells: int | None = 100,
    condition_key: str = "condition",
    batch_size: int = 32,
    seed: int = 0,
    device: str = "auto",
    runtime: Runtime | str = "venv",
) -> pd.DataFrame:
    """Per-condition Geneformer embeddings of in-silico perturbed control cells (conditions × dimensions).

    Each condition's targets are over-expressed (``mode="overexpress"``, CRISPRa screens such as Norman's) or
    deleted (``"delete"``, CRISPRi and knock-out screens) in the rank-value encoding of the same control cells;
    ``ctrl`` is the unperturbed control cells. A target without a Geneformer token cannot be perturbed: that
    condition is left out (its decoder prediction is then NaN with a reason).

    Parameters
    ----------
    cells
        Cells (AnnData or ``.h5ad``): raw counts in ``layers['counts']`` (else reconstructed from the log data),
        gene identifiers of Geneformer's dictionaries (Ensembl IDs) as ``var_names`` and symbols in
        ``var['gene_name']`` (else ``var_names``).
    model
        Geneformer's model folder: ``config.json``, the weights, ``token_dictionary.pkl`` and
        ``gene_median_dictionary.pkl`` (see :func:`write_geneformer_model`).
    conditions
        Canonical names to embed (default: every condition of ``cells``).
    n_control_cells
        Control cells per condition (drawn once with ``seed``; ``None``: all).
    batch_size, device, runtime
        As for the other adapters.

    Returns
    -------
    pandas.DataFrame
        One row per embedded condition: give it to ``GeneformerDecoder(embedding=...)``.
    """
    folder = Path(model)
    missing = [f for f in ("config.json", TOKEN_DICTIONARY, MEDIAN_DICTIONARY) if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"The Geneformer model folder {folder} lacks {', '.join(missing)}.")
    tokens = pickle.loads((folder / TOKEN_DICTIONARY).read_bytes())
    medians = pickle.loads((folder / MEDIAN_DICTIONARY).read_bytes())
    cells = load_cells(cells, condition_key=condition_key)
    labels, encoded = _perturbed_inputs(cells, tokens, medians, mode=mode, conditions=conditions,
                                        n_control_cells=n_control_cells, condition_key=condition_key, seed=seed)
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    matrix = np.zeros((len(encoded), max(1, int(lengths.max(initial=1)))), dtype=np.int64)
    for i, e in enumerate(encoded):
        matrix[i, : len(e)] = e

    def write_tokens(path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, tokens=matrix, lengths=lengths, conditions=np.asarray(labels, dtype=str))

    params = {"pad_token": int(tokens.get("<pad>", 0)), "batch_size": int(batch_size), "layer": -2}
    return embed_once(runtime, model="geneformer", worker=_WORKER, modules=MODULES, stacks=STACKS,
                      inputs={"model": folder}, files={"tokens.npz": write_tokens},
                      request={"seed": int(seed), "device": device, "params": params})


def _perturbed_inputs(cells, tokens, medians, *, mode, conditions, n_control_cells, condition_key, seed):
    """Condition labels and token arrays: the control cells' encodings with each condition's targets perturbed."""
    condition = per_cell_conditions(cells.obs[condition_key]).to_numpy()
    ctrl_rows = np.flatnonzero(condition == CONTROL)
    if ctrl_rows.size == 0:
        raise ValueError("The cells have no control cells to perturb in silico.")
    if n_control_cells is not None and n_control_cells < ctrl_rows.size:
        ctrl_rows = np.sort(np.random.default_rng(seed).choice(ctrl_rows, n_control_cells, replace=False))
    X = cells.X[ctrl_rows]
    counts = cells.layers["counts"][ctrl_rows] if "counts" in cells.layers else reconstruct_counts(X)
    ids = [str(g) for g in cells.var_names]
    base = rank_value_encoding(counts, ids, gene_medians=medians, token_ids=tokens)
    id_of = dict(zip(gene_symbols(cells), ids))
    names = sorted(set(condition)) if conditions is None else [parse_condition(str(c)).name for c in conditions]
    labels, encoded = [], []
    for name in names:
        targets = parse_condition(name).genes
        if any(id_of.get(g) not in tokens for g in targets):
            continue  # no token for a target: Geneformer cannot perturb it
        target_tokens = [tokens[id_of[g]] for g in targets]
        for cell in base:
            encoded.append(perturb_rank_encoding(cell, target_tokens, mode=mode) if targets else cell)
            labels.append(name)
    if not labels:
        raise ValueError("No condition could be encoded: none of the targets has a token in Geneformer's "
                         "dictionary (it keys genes by Ensembl ID: put them in var_names).")
    return labels, encoded

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
from scipy import sparse

from .._conditions import CONTROL, parse_condition
from .._io import atomic_write
from ._base import embed_once, run_once
from ._cells import gene_symbols, load_cells, per_cell_conditions, raw_counts
from ._environment import EMBEDDING_STACK, Runtime, Stack
from ._inputs import GENEFORMER_MAX_LEN, perturb_rank_encoding, rank_value_encoding

__all__ = ["geneformer_embedding", "write_geneformer_model"]

#: What Geneformer's model folder holds besides the weights: its token and gene-median dictionaries.
TOKEN_DICTIONARY, MEDIAN_DICTIONARY = "token_dictionary.pkl", "gene_median_dictionary.pkl"
_NO_CONDITION = ("No condition could be encoded: none of the targets has a token in Geneformer's dictionary (it keys "
                 "genes by Ensembl ID: put them in var_names).")
STACKS = (Stack(("transformers>=4.40,<4.50", "torch==2.3.0", "numpy<2"), pythons=("3.10",),
                note="transformers, which Geneformer's own package runs on"), EMBEDDING_STACK)
MODULES = ("transformers", "torch")
#: The paper's protocol runs Geneformer's own code (the user's clone of its repository at a 0.1.0 commit): its
#: requirements.txt on the Hugging Face releases of that time, since the newest transformers no longer exports what
#: its collator imports (SpecialTokensMixin). torch 2.13.0 is the CPU build on this project's registry.
CODE_STACKS = (Stack(("torch==2.13.0", "transformers==4.44.2", "datasets==3.0.1", "accelerate==0.34.2",
                      "peft==0.12.0", "huggingface-hub<0.26", "anndata>=0.9", "hyperopt>=0.2", "loompy>=3.0",
                      "matplotlib>=3.7", "optuna>=3.6", "optuna-integration>=3.6", "pandas>=2.0", "pyarrow>=12.0",
                      "ray>=2.6", "scanpy>=1.9", "scikit-learn>=1.2", "scipy>=1.10", "seaborn>=0.12",
                      "statsmodels>=0.14", "tdigest>=0.5.2", "tensorboard>=2.15", "tqdm>=4.65"),
                     pythons=("3.11", "3.12"), note="Geneformer 0.1.0's requirements (its code given by the user)"),)
CODE_MODULES = ("transformers", "datasets", "torch", "tdigest", "loompy")
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
    code: str | os.PathLike | None = None,
    train_conditions: Sequence[str] | None = None,
    epochs: int | None = None,
    training_args: dict[str, Any] | None = None,
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
    code, train_conditions, epochs, training_args
        The paper's protocol: with ``code`` (Geneformer's repository at a 0.1.0 commit), Geneformer's own
        ``TranscriptomeTokenizer`` encodes the cells, its ``Classifier`` fine-tunes the model to tell the cells of
        ``train_conditions`` apart (``train_all_data``: its defaults, 10 epochs unless ``epochs`` says otherwise;
        ``training_args`` overrides Hugging Face ``TrainingArguments``), and the targets are perturbed as its
        ``InSilicoPerturber`` perturbs a
        group of genes and embedded with the fine-tuned model as the perturber embeds them. Without ``code``: the
        pretrained model as it is, linpert's encoding (the same as Geneformer's) and ``transformers``.
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
    if code is not None:
        if epochs is not None:
            training_args = {**(training_args or {}), "num_train_epochs": int(epochs)}
        return _fine_tuned_embedding(cells, folder, tokens, code=code, mode=mode, conditions=conditions,
                                     train_conditions=train_conditions, training_args=training_args,
                                     n_control_cells=n_control_cells, condition_key=condition_key,
                                     batch_size=batch_size, seed=seed, device=device, runtime=runtime)
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


def _require_known_genes(cells, tokens: dict) -> None:
    """Geneformer's tokenizer silently drops genes outside its dictionary: with none known, every cell would be
    empty (and its fine-tuning fail deep in its collator)."""
    if not any(str(g) in tokens for g in cells.var_names):
        known = next((str(k) for k in tokens if not str(k).startswith("<")), "?")
        raise ValueError(f"None of the cells' {cells.n_vars} genes (var_names, e.g. {str(cells.var_names[0])!r}) is in "
                         f"Geneformer's token dictionary, which keys genes by Ensembl ID (e.g. {known!r}): put the "
                         "Ensembl IDs in var_names.")


def _perturbed_inputs(cells, tokens, medians, *, mode, conditions, n_control_cells, condition_key, seed):
    """Condition labels and token arrays: the control cells' encodings with each condition's targets perturbed."""
    _require_known_genes(cells, tokens)
    condition = per_cell_conditions(cells.obs[condition_key]).to_numpy()
    ctrl_rows = _control_rows(condition, n_control_cells, seed)
    counts = raw_counts(cells, ctrl_rows)
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
        raise ValueError(_NO_CONDITION)
    return labels, encoded


def _fine_tuned_embedding(cells, folder, tokens, *, code, mode, conditions, train_conditions, training_args,
                          n_control_cells, condition_key, batch_size, seed, device, runtime) -> pd.DataFrame:
    """The paper's protocol in Geneformer's own code (``finetune_embed`` of the worker): the cells it tokenizes
    (the training conditions' to fine-tune on, the control cells to perturb), and each condition's targets."""
    import anndata

    if not (Path(code) / "geneformer" / "in_silico_perturber.py").is_file():
        raise FileNotFoundError(f"code={str(code)!r} is not Geneformer's repository (it needs "
                                "geneformer/in_silico_perturber.py): clone it at a 0.1.0 commit.")
    if not train_conditions:
        raise ValueError("Geneformer is fine-tuned to tell the training conditions apart: give train_conditions.")
    _require_known_genes(cells, tokens)
    condition = per_cell_conditions(cells.obs[condition_key]).to_numpy()
    ctrl_rows = _control_rows(condition, n_control_cells, seed)
    train_rows = np.flatnonzero(np.isin(condition, list(train_conditions)))
    rows = np.concatenate([train_rows, ctrl_rows])
    counts = sparse.csr_matrix(raw_counts(cells, rows))
    roles = ["train"] * len(train_rows) + ["control"] * len(ctrl_rows)
    obs = pd.DataFrame({"condition": condition[rows], "role": roles,
                        "n_counts": np.asarray(counts.sum(axis=1)).ravel()},
                       index=[f"cell{i}" for i in range(len(rows))])
    # Geneformer's tokenizer keys genes by var['ensembl_id']: the identifiers of its dictionaries
    tokenize = anndata.AnnData(counts, obs=obs, var=pd.DataFrame({"ensembl_id": cells.var_names.astype(str)},
                                                                       index=cells.var_names.astype(str)))
    id_of = dict(zip(gene_symbols(cells), cells.var_names.astype(str)))
    names = sorted(set(condition)) if conditions is None else [parse_condition(str(c)).name for c in conditions]
    perturbations = {}
    for name in names:
        targets = [id_of.get(g) for g in parse_condition(name).genes]
        if all(t in tokens for t in targets):  # a target without a token cannot be perturbed: left out
            perturbations[name] = targets
    if not perturbations:
        raise ValueError(_NO_CONDITION)
    params = {"mode": mode, "batch_size": int(batch_size), "perturbations": perturbations,
              "training_args": training_args}
    return embed_once(runtime, model="geneformer", worker=_WORKER, modules=CODE_MODULES, stacks=CODE_STACKS,
                      action="finetune_embed", inputs={"model": folder, "code": code},
                      files={"cells.h5ad": lambda path: tokenize.write_h5ad(path)},
                      request={"seed": int(seed), "device": device, "params": params})


def _control_rows(condition: np.ndarray, n_control_cells: int | None, seed: int) -> np.ndarray:
    """The control cells perturbed in silico: all, or ``n_control_cells`` drawn once with ``seed``."""
    rows = np.flatnonzero(condition == CONTROL)
    if rows.size == 0:
        raise ValueError("The cells have no control cells to perturb in silico.")
    if n_control_cells is not None and n_control_cells < rows.size:
        rows = np.sort(np.random.default_rng(seed).choice(rows, n_control_cells, replace=False))
    return rows

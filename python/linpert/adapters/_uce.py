"""UCE's embeddings of the paper's perturbed inputs, computed with the ``uce-model`` package in an isolated environment.

The paper ran UCE zero-shot (its four-layer model) on the control cells with the targets' expression overwritten by
the perturbed cells' (:func:`~linpert.adapters.overwrite_targets`), averaged the embedding per condition and decoded
it with a ridge regression (:class:`~linpert.adapters.UceDecoder`). :func:`uce_embedding` computes that table from
UCE's ``model_files`` folder; :func:`write_uce_model` writes a small random one in the same layout, to try this before
downloading UCE's files (several GB).
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_write
from ._base import embed_once, run_once
from ._cells import load_cells
from ._environment import EMBEDDING_STACK, Runtime, Stack
from ._inputs import perturbed_counts

__all__ = ["uce_embedding", "write_uce_model"]

STACKS = (Stack(("uce-model==0.1.4", "torch==2.3.0", "numpy<2"), pythons=("3.10",), note="UCE's package on PyPI"),
          EMBEDDING_STACK)
MODULES = ("uce", "torch")
_WORKER = "uce_worker.py"
#: UCE's token table: special tokens, then every species' genes; chromosome tokens follow (added by UCE).
N_TOKENS, N_CHROMOSOME_TOKENS = 143_574, 1_895
SPECIES_FILES = {
    "human": "Homo_sapiens.GRCh38.gene_symbol_to_embedding_ESM2.pt",
    "mouse": "Mus_musculus.GRCm39.gene_symbol_to_embedding_ESM2.pt",
    "frog": "Xenopus_tropicalis.Xenopus_tropicalis_v9.1.gene_symbol_to_embedding_ESM2.pt",
    "zebrafish": "Danio_rerio.GRCz11.gene_symbol_to_embedding_ESM2.pt",
    "mouse_lemur": "Microcebus_murinus.Mmur_3.0.gene_symbol_to_embedding_ESM2.pt",
    "pig": "Sus_scrofa.Sscrofa11.1.gene_symbol_to_embedding_ESM2.pt",
    "macaca_fascicularis": "Macaca_fascicularis.Macaca_fascicularis_6.0.gene_symbol_to_embedding_ESM2.pt",
    "macaca_mulatta": "Macaca_mulatta.Mmul_10.gene_symbol_to_embedding_ESM2.pt",
}
_CONFIG = "linpert_uce.json"


def write_uce_model(
    folder: str | os.PathLike,
    genes: Sequence[str],
    *,
    token_dim: int = 8,
    d_hid: int = 64,
    nlayers: int = 1,
    output_dim: int = 32,
    sample_size: int = 256,
    pad_length: int = 512,
    seed: int = 0,
    runtime: Runtime | str = "venv",
) -> Path:
    """Write a randomly initialised UCE ``model_files`` folder for human ``genes``.

    The folder holds what UCE reads: ``species_chrom.csv`` (each gene on one of four chromosomes),
    ``species_offsets.pkl``, ``all_tokens.torch`` (random token embeddings), ``protein_embeddings/`` (one file per
    species UCE knows; only human has genes), ``model.torch`` (UCE's ``TransformerModel``, random) and
    ``linpert_uce.json`` (the architecture and sentence settings :func:`uce_embedding` passes to UCE). UCE's real
    four-layer model has ``token_dim=5120``, ``d_hid=5120``, ``nlayers=4``, ``output_dim=1280``,
    ``sample_size=1024``, ``pad_length=1536``: write that ``linpert_uce.json`` beside its files (with
    ``"weights": "4layer_model.torch"``) to use them.
    """
    folder = Path(folder)
    if (folder / _CONFIG).exists():
        raise FileExistsError(f"{folder} already holds a UCE model ({_CONFIG}); choose an empty folder.")
    symbols = [str(g).upper() for g in dict.fromkeys(genes)]
    if not symbols:
        raise ValueError("genes is empty: give the gene symbols UCE should have protein embeddings for.")
    folder.mkdir(parents=True, exist_ok=True)
    offset = 4  # pad, chromosome left, chromosome right, cls come first, as in UCE's table
    chromosomes = pd.DataFrame({"species": "human", "gene_symbol": symbols,
                                # "X" first, so that the column reads back as text, as UCE's own file does
                                "chromosome": [("X", "1", "2", "MT")[i % 4] for i in range(len(symbols))],
                                "start": np.arange(len(symbols)) * 1000})
    atomic_write(folder / "species_chrom.csv", chromosomes, kind="csv")
    atomic_write(folder / "species_offsets.pkl", pickle.dumps({s: offset for s in SPECIES_FILES}), kind="bytes")
    params = {"token_dim": int(token_dim), "d_hid": int(d_hid), "nlayers": int(nlayers), "output_dim": int(output_dim),
              "genes": symbols, "n_tokens": N_TOKENS, "offset": offset, "species_files": SPECIES_FILES}
    with tempfile.TemporaryDirectory(prefix="linpert-uce-model-") as tmp:
        files = Path(tmp) / "files"
        run_once(runtime, model="uce", worker=_WORKER, modules=MODULES, stacks=STACKS, action="model", inputs={},
                 output="files", keep=files, request={"seed": int(seed), "params": params})
        for path in files.iterdir():
            path.replace(folder / path.name)
    config = {"weights": "model.torch", "token_dim": int(token_dim), "d_hid": int(d_hid), "nlayers": int(nlayers),
              "output_dim": int(output_dim), "sample_size": int(sample_size), "pad_length": int(pad_length),
              "species": "human", "linpert": f"randomly initialised with seed {seed}: not UCE's weights"}
    atomic_write(folder / _CONFIG, json.dumps(config, indent=1))
    return folder


def uce_embedding(
    cells: Any,
    model_files: str | os.PathLike,
    *,
    conditions: Sequence[str] | None = None,
    n_control_cells: int | None = 100,
    condition_key: str = "condition",
    batch_size: int = 25,
    seed: int = 0,
    device: str = "auto",
    runtime: Runtime | str = "venv",
) -> pd.DataFrame:
    """Per-condition UCE embeddings of the paper's perturbed inputs (conditions × dimensions).

    Builds the inputs with :func:`~linpert.adapters.overwrite_targets` on raw counts (``layers['counts']``, else
    reconstructed from the log data), plus the unperturbed control cells as ``ctrl``, embeds them with UCE and
    averages per condition. Genes are matched to UCE's protein embeddings by symbol (``var['gene_name']`` or
    ``var_names``); genes without one are left out by UCE.

    Returns
    -------
    pandas.DataFrame
        One row per condition: give it to ``UceDecoder(embedding=...)``.
    """
    folder = Path(model_files)
    needed = ["species_chrom.csv", "species_offsets.pkl", "all_tokens.torch", "protein_embeddings", _CONFIG]
    missing = [f for f in needed if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"UCE's model_files folder {folder} lacks {', '.join(missing)} (see write_uce_model "
                                f"for {_CONFIG}).")
    cells = load_cells(cells, condition_key=condition_key)
    inputs = perturbed_counts(cells, conditions, n_control_cells=n_control_cells, condition_key=condition_key,
                               seed=seed)
    return embed_once(runtime, model="uce", worker=_WORKER, modules=MODULES, stacks=STACKS,
                      inputs={"model_files": folder}, files={"cells.h5ad": lambda path: inputs.write_h5ad(path)},
                      request={"seed": int(seed), "device": device, "params": {"batch_size": int(batch_size)}})

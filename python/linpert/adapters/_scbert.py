"""scBERT fine-tuned on the training conditions and embedded with its own code, in an isolated environment.

The paper fine-tuned scBERT (commit 262fd4b9 of TencentAILabHealthcare/scBERT, with the authors' pretrained weights)
to predict the perturbation labels of the training cells, embedded the same perturbed inputs as for UCE (control
cells with the targets overwritten, :func:`~linpert.adapters.overwrite_targets`) and decoded the per-condition mean
embedding with a ridge regression (:class:`~linpert.adapters.ScBertDecoder`). :func:`scbert_embedding` does that with
the user's copy of scBERT's repository: its ``performer_pytorch`` model and its ``utils`` scheduler, and its
``preprocess.py`` and ``finetune.py`` settings (restated where a script cannot be imported; see the worker).
:func:`write_scbert_model` writes a small randomly initialised model in scBERT's layout to try this first.

The paper's scBERT script is not in its repository; what linpert chooses where the paper says nothing:
the cell embedding is the mean over genes of the fine-tuned model's final encodings (scBERT has no CLS token), and
every cell is kept (``preprocess.py`` drops cells with fewer than 200 genes, which would drop labels).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._io import atomic_write
from ._base import embed_once, run_once
from ._cells import gene_symbols, load_cells, per_cell_conditions, raw_counts
from ._environment import EMBEDDING_STACK, Runtime
from ._inputs import perturbed_counts

__all__ = ["scbert_embedding", "write_scbert_model"]

# scBERT's requirements.txt pins torch 1.8.1, which has no wheel for Python >= 3.10; its code runs unchanged on the
# embedding models' shared environment (torch 2.13.0).
STACKS = (EMBEDDING_STACK,)
MODULES = ("torch", "einops", "local_attention", "sklearn")
_WORKER = "scbert_worker.py"
#: Where scBERT's code reads its files: its model folder's ``data/`` (gene2vec, the reference genes of
#: ``preprocess.py``) and the pretrained checkpoint the README downloads.
GENE2VEC, REFERENCE, CHECKPOINT = "data/gene2vec_16906.npy", "data/panglao_10000.h5ad", "panglao_pretrained.pth"
#: finetune.py's defaults: its argparse options, and the sum preprocess.py normalises each cell to.
FINETUNE = {"epochs": 100, "batch_size": 3, "grad_acc": 60, "learning_rate": 1e-4}
TARGET_SUM = 1e4


def write_scbert_model(folder: str | os.PathLike, genes: Sequence[str], *, code: str | os.PathLike, depth: int = 2,
                       seed: int = 0, runtime: Runtime | str = "venv") -> Path:
    """Write a randomly initialised scBERT model folder for ``genes``: ``panglao_pretrained.pth`` (scBERT's
    ``PerformerLM``, width 200 and 10 heads as in ``finetune.py``, ``depth`` layers; scBERT's has 6), and in
    ``data/`` a random gene2vec table and the reference genes (``panglao_10000.h5ad``, no cells). ``code`` is
    scBERT's repository (its model class builds the weights)."""
    import anndata

    folder = Path(folder)
    if (folder / CHECKPOINT).exists():
        raise FileExistsError(f"{folder} already holds a scBERT model ({CHECKPOINT}); choose an empty folder.")
    symbols = list(dict.fromkeys(str(g) for g in genes))
    if not symbols:
        raise ValueError("genes is empty: give the gene symbols the model should read.")
    if depth < 2:
        raise ValueError(f"depth must be >= 2: finetune.py trains the second-to-last layer, got {depth}.")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    gene2vec = np.random.default_rng(seed).normal(size=(len(symbols), 200)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, gene2vec)
    atomic_write(folder / GENE2VEC, buffer.getvalue(), kind="bytes")
    reference = anndata.AnnData(sparse.csr_matrix((0, len(symbols)), dtype=np.float32),
                                var=pd.DataFrame(index=symbols))
    atomic_write(folder / REFERENCE, reference, kind="h5ad")
    run_once(runtime, model="scbert", worker=_WORKER, modules=MODULES, stacks=STACKS, action="model",
             inputs={"code": code, "model": folder}, output=CHECKPOINT, keep=folder / CHECKPOINT,
             request={"seed": int(seed), "params": {"depth": int(depth)}})
    return folder


def scbert_embedding(
    cells: Any,
    model: str | os.PathLike,
    *,
    code: str | os.PathLike,
    train_conditions: Sequence[str],
    conditions: Sequence[str] | None = None,
    n_control_cells: int | None = 100,
    checkpoint: str = CHECKPOINT,
    epochs: int = FINETUNE["epochs"],
    batch_size: int = FINETUNE["batch_size"],
    grad_acc: int = FINETUNE["grad_acc"],
    learning_rate: float = FINETUNE["learning_rate"],
    embed_batch_size: int = 16,
    condition_key: str = "condition",
    seed: int = 0,
    device: str = "auto",
    runtime: Runtime | str = "venv",
) -> pd.DataFrame:
    """Per-condition scBERT embeddings after fine-tuning on the training conditions' labels (conditions × 200).

    Parameters
    ----------
    cells
        Cell-level data (AnnData or ``.h5ad``) with raw counts (``layers['counts']``, else reconstructed from the
        log data) and gene symbols (``var['gene_name']`` or ``var_names``).
    model
        scBERT's model folder: the checkpoint, ``data/gene2vec_16906.npy`` and ``data/panglao_10000.h5ad`` (whose
        genes, in order, are the model's input; see :func:`write_scbert_model`).
    code
        scBERT's repository at commit 262fd4b9 (the paper's).
    train_conditions
        The conditions whose cells scBERT is fine-tuned to tell apart (``ctrl`` included if listed).
    conditions
        The conditions to embed (default: every one in ``cells``), each from ``n_control_cells`` control cells.
    epochs, batch_size, grad_acc, learning_rate
        ``finetune.py``'s options (its defaults: 100, 3, 60, 1e-4); it stops early after 10 epochs without a better
        validation accuracy.

    Returns
    -------
    pandas.DataFrame
        One row per condition and ``ctrl``: give it to ``ScBertDecoder(embedding=...)``.
    """
    import anndata

    folder = Path(model)
    missing = [name for name in (checkpoint, GENE2VEC, REFERENCE) if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"scBERT's model folder {folder} lacks {', '.join(missing)} (see write_scbert_model).")
    if not (Path(code) / "performer_pytorch").is_dir() or not (Path(code) / "utils.py").is_file():
        raise FileNotFoundError(f"code={str(code)!r} is not scBERT's repository (it needs performer_pytorch/ and "
                                "utils.py): clone TencentAILabHealthcare/scBERT and check out 262fd4b9.")
    reference = pd.Index(anndata.read_h5ad(folder / REFERENCE, backed="r").var_names.astype(str))
    cells = load_cells(cells, condition_key=condition_key)
    labels = per_cell_conditions(cells.obs[condition_key]).to_numpy()
    training = np.isin(labels, list(train_conditions))
    if len(set(labels[training])) < 2:
        raise ValueError(f"scBERT is fine-tuned to tell the training conditions apart; the cells hold "
                         f"{len(set(labels[training]))} of them.")
    train_x = scbert_preprocess(raw_counts(cells, np.flatnonzero(training)), gene_symbols(cells), reference)
    inputs = perturbed_counts(cells, conditions, n_control_cells=n_control_cells, condition_key=condition_key,
                              seed=seed)
    inputs_x = scbert_preprocess(inputs.X, inputs.var_names, reference)
    params = {"checkpoint": checkpoint, "epochs": int(epochs), "batch_size": int(batch_size),
              "grad_acc": int(grad_acc), "learning_rate": float(learning_rate),
              "embed_batch_size": int(embed_batch_size)}
    return embed_once(runtime, model="scbert", worker=_WORKER, modules=MODULES, stacks=STACKS,
                      inputs={"code": code, "model": folder},
                      files={"train_x.npz": lambda path: sparse.save_npz(path, train_x),
                             "inputs_x.npz": lambda path: sparse.save_npz(path, inputs_x),
                             "labels.npz": lambda path: np.savez(path, train=labels[training].astype("U"),
                                                                 inputs=inputs.obs["condition"].to_numpy("U"))},
                      request={"seed": int(seed), "device": device, "params": params})


def scbert_preprocess(counts: Any, genes: Sequence[str], reference: Sequence[str]) -> sparse.csr_matrix:
    """scBERT's ``preprocess.py``: the counts of the reference genes in the reference's order (zero where
    unmeasured), each cell scaled to 10,000, then ``log2(1 + x)``.

    Examples
    --------
    >>> scbert_preprocess(np.array([[3.0, 1.0]]), ["A", "B"], ["B", "C", "A"]).toarray().round(3)
    array([[11.288,  0.   , 12.873]], dtype=float32)
    """
    X = sparse.csr_matrix(counts, dtype=np.float64)
    where = pd.Index(reference).get_indexer(pd.Index(genes))
    if (where < 0).all():
        raise ValueError(f"None of the cells' genes (e.g. {list(genes)[:3]}) is among scBERT's reference genes "
                         f"(e.g. {list(reference)[:3]}): scBERT reads gene symbols.")
    keep = np.flatnonzero(where >= 0)
    moved = sparse.csr_matrix((np.ones(len(keep)), (keep, where[keep])), shape=(X.shape[1], len(reference)))
    aligned = (X @ moved).tocsr()
    totals = np.asarray(aligned.sum(axis=1)).ravel()
    scale = np.divide(TARGET_SUM, totals, out=np.zeros_like(totals), where=totals > 0)
    aligned = sparse.diags(scale) @ aligned
    aligned.data = np.log2(1 + aligned.data)
    return aligned.tocsr().astype(np.float32)

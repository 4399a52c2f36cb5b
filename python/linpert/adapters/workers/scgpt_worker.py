"""scGPT perturbation worker: fine-tune ``scGPT_human`` on linpert's split, predict. Run by linpert.

    python scgpt_worker.py REQUEST.json

Follows scGPT's perturbation tutorial (``Tutorial_Perturbation.ipynb``) with the paper's settings; data loading goes
through the GEARS 0.0.2 that scGPT pins, with linpert's train/val split and no test split. The ``checkpoint`` action
writes a randomly initialised ``best_model.pt`` for :func:`linpert.adapters.write_scgpt_checkpoint`.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _protocol as protocol  # noqa: E402
from gears_worker import pert_data  # noqa: E402

SPECIAL_TOKENS = ["<pad>", "<cls>", "<eoc>"]
MEASURED_CELLS = "scgpt_cells.h5ad"  # the cells without conditions naming unmeasured genes
CHECKPOINT_FILES = ("args.json", "vocab.json", "best_model.pt")
# the tutorial transfers the encoders only: gene embedding, value encoder and transformer layers
PRETRAINED_PREFIXES = ("encoder", "value_encoder", "transformer_encoder")


def _vocab(checkpoint: str):
    from scgpt.tokenizer.gene_tokenizer import GeneVocab

    vocab = GeneVocab.from_file(os.path.join(checkpoint, "vocab.json"))
    for token in SPECIAL_TOKENS:
        if token not in vocab:
            vocab.append_token(token)
    vocab.set_default_index(vocab["<pad>"])
    return vocab


def _config(checkpoint: str) -> dict:
    with open(os.path.join(checkpoint, "args.json")) as handle:
        return json.load(handle)


def _model(request: dict, genes: list[str], device: str):
    import numpy as np
    import torch
    from scgpt.model import TransformerGenerator

    checkpoint = request["inputs"]["checkpoint"]
    vocab = _vocab(checkpoint)
    known = [g for g in genes if g in vocab]
    if not known:
        raise ValueError(f"None of the data's {len(genes)} genes (e.g. {genes[:3]}) is in the checkpoint's "
                         f"vocabulary {os.path.join(checkpoint, 'vocab.json')}: use gene symbols in the data, or a "
                         "checkpoint whose vocabulary covers them.")
    gene_ids = np.array([vocab[g] if g in vocab else vocab["<pad>"] for g in genes], dtype=int)
    config = _config(checkpoint)
    model = TransformerGenerator(
        len(vocab), config["embsize"], config["nheads"], config["d_hid"], config["nlayers"],
        nlayers_cls=config["n_layers_cls"], n_cls=1, vocab=vocab, dropout=config["dropout"], pad_token="<pad>",
        pad_value=0, pert_pad_id=2, use_fast_transformer=False,
    )
    return model, gene_ids, torch.device(device)


def _load_pretrained(model, path: str, device) -> int:
    """Copy the checkpoint's encoder weights into ``model``; returns how many tensors were transferred."""
    import torch

    pretrained = torch.load(path, map_location=device)
    own = model.state_dict()
    keep = {k: v for k, v in pretrained.items()
            if k in own and v.shape == own[k].shape and k.startswith(PRETRAINED_PREFIXES)}
    if not keep:
        raise ValueError(f"{path} holds no encoder weights of the checkpoint's shape (args.json); is it scGPT's "
                         "best_model.pt from the same folder?")
    own.update(keep)
    model.load_state_dict(own)
    return len(keep)


def _batch_inputs(batch, n_genes: int, gene_ids, max_seq_len: int, device):
    import torch
    from scgpt.utils import map_raw_id_to_vocab_id

    size = len(batch.y)
    x = batch.x
    values = x[:, 0].view(size, n_genes)
    flags = x[:, 1].long().view(size, n_genes)
    target = batch.y
    genes = torch.arange(n_genes, device=device)
    if n_genes > max_seq_len:  # the tutorial trains on a random subset of genes per batch
        genes = torch.randperm(n_genes, device=device)[:max_seq_len]
    values, flags, target = values[:, genes], flags[:, genes], target[:, genes]
    mapped = map_raw_id_to_vocab_id(genes, gene_ids).repeat(size, 1)
    return mapped, values, flags, target


def _loss(model, loader, n_genes, gene_ids, params, device, *, optimizer=None, scaler=None) -> float:
    import torch
    from scgpt.loss import masked_mse_loss

    total, count = 0.0, 0
    model.train(optimizer is not None)
    amp = params["amp"] and device.type == "cuda"  # autocast is a CUDA feature; on the CPU it only warns
    for batch in loader:
        batch.to(device)
        mapped, values, flags, target = _batch_inputs(batch, n_genes, gene_ids, params["max_seq_len"], device)
        with torch.set_grad_enabled(optimizer is not None), torch.cuda.amp.autocast(enabled=amp):
            out = model(mapped, values, flags, src_key_padding_mask=torch.zeros_like(values, dtype=torch.bool),
                        CLS=False, CCE=False, MVC=False, ECS=False)["mlm_output"]
            loss = masked_mse_loss(out, target, torch.ones_like(values, dtype=torch.bool))
        if optimizer is not None:
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        total += float(loss) * len(batch.y)
        count += len(batch.y)
    return total / max(1, count)


def _measured_cells(request: dict) -> tuple[dict, dict]:
    """The request with its cells restricted to conditions whose genes are measured (scGPT flags them in the
    input, GEARS 0.0.2 fails on others), and the dropped conditions with why."""
    import anndata

    cells = anndata.read_h5ad(request["cells"])
    genes = set(cells.var["gene_name"].astype(str))
    condition = cells.obs["condition"].astype(str)
    dropped = {}
    for name in condition.unique():
        unknown = [g for g in protocol.condition_genes(name) if g not in genes]
        if unknown:
            dropped[name] = f"{', '.join(unknown)} not measured, so scGPT cannot flag it"
    if dropped:
        path = os.path.join(request["run_dir"], MEASURED_CELLS)
        cells[~condition.isin(list(dropped)).to_numpy()].copy().write_h5ad(path)
        request = {**request, "cells": path}
    return request, dropped


def fit(request: dict) -> dict:
    import torch

    params = request["params"]
    protocol.seed_everything(request["seed"])
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    request, dropped = _measured_cells(request)
    train = [c for c in request["train"] if c not in dropped]
    val = [c for c in request["val"] if c not in dropped]
    data, split, not_loaded = pert_data(request, train, val, batch_size=params["batch_size"],
                                        test_batch_size=params["test_batch_size"])
    genes = [str(g) for g in data.adata.var["gene_name"]]
    model, gene_ids, dev = _model(request, genes, device)
    transferred = _load_pretrained(model, os.path.join(request["inputs"]["checkpoint"], "best_model.pt"), dev)
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=params["gamma"])
    scaler = torch.cuda.amp.GradScaler(enabled=params["amp"] and dev.type == "cuda")
    best, best_state, waited, epochs, epoch_seconds = float("inf"), None, 0, 0, []
    start = time.perf_counter()
    for _ in range(params["epochs"]):
        epochs += 1
        tick = time.perf_counter()
        _loss(model, data.dataloader["train_loader"], len(genes), gene_ids, params, dev, optimizer=optimizer,
              scaler=scaler)
        epoch_seconds.append(time.perf_counter() - tick)
        val_loss = _loss(model, data.dataloader["val_loader"], len(genes), gene_ids, params, dev)
        if val_loss < best:
            best, best_state, waited = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= params["early_stop"]:
                break
        scheduler.step()
    train_seconds = time.perf_counter() - start
    os.makedirs(request["model_dir"], exist_ok=True)
    torch.save(best_state, os.path.join(request["model_dir"], "model.pt"))
    measured = sorted(set(genes))
    return {"device": device, "train_seconds": train_seconds, "epochs": epochs, "epoch_seconds": epoch_seconds,
            "best_val_loss": best, "pretrained_tensors": transferred,
            "n_genes_in_vocab": int((gene_ids != model.pad_token_id).sum()),  # the others are fed as <pad>
            "train_conditions": split["train"], "val_conditions": split["val"], "dropped": {**dropped, **not_loaded},
            "predictable_genes": measured, "peak_gpu_mib": protocol.gpu_peak_mib(device)}


def predict(request: dict) -> dict:
    import pickle

    import numpy as np
    import torch
    from gears.utils import create_cell_graph_dataset_for_prediction
    from torch_geometric.loader import DataLoader

    params = request["params"]
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    with open(os.path.join(request["run_dir"], "gears_split.pkl"), "rb") as handle:
        split = pickle.load(handle)
    filtered = os.path.join(request["run_dir"], MEASURED_CELLS)  # written by fit when it dropped conditions
    if os.path.exists(filtered):
        request = {**request, "cells": filtered}
    data, _, _ = pert_data(request, split["train"], split["val"], batch_size=params["batch_size"],
                           test_batch_size=params["test_batch_size"])
    genes = [str(g) for g in data.adata.var["gene_name"]]
    model, gene_ids, dev = _model(request, genes, device)
    model.load_state_dict(torch.load(os.path.join(request["model_dir"], "model.pt"), map_location=dev))
    model.to(dev).eval()
    ctrl = data.adata[data.adata.obs["condition"] == "ctrl"]
    amp = params["amp"] and dev.type == "cuda"
    keys, rows = [], []
    for perturbation in request["perturbations"]:
        keys.append("_".join(perturbation))
        protocol.seed_everything(request["seed"])  # the same control cells whatever else is asked
        graphs = create_cell_graph_dataset_for_prediction(perturbation, ctrl, genes, dev,
                                                          num_samples=params["n_control_cells"])
        preds = []
        with torch.no_grad():
            for batch in DataLoader(graphs, batch_size=params["test_batch_size"], shuffle=False):
                preds.append(model.pred_perturb(batch, include_zero_gene="all", gene_ids=gene_ids,
                                                amp=amp).float().cpu().numpy())
        rows.append(np.concatenate(preds).mean(axis=0))
    protocol.write_predictions(request["output"], keys, np.vstack(rows), [""] * len(keys), genes)
    return {"device": device, "peak_gpu_mib": protocol.gpu_peak_mib(device)}


def checkpoint(request: dict) -> dict:
    """A randomly initialised ``best_model.pt`` (scGPT's ``TransformerModel`` state dict) matching the folder's
    ``args.json`` and ``vocab.json``, written to ``request['output']``."""
    import torch
    from scgpt.model import TransformerModel

    folder = request["inputs"]["checkpoint"]
    protocol.seed_everything(request["seed"])
    config = _config(folder)
    vocab = _vocab(folder)
    model = TransformerModel(len(vocab), config["embsize"], config["nheads"], config["d_hid"], config["nlayers"],
                             nlayers_cls=config["n_layers_cls"], vocab=vocab, dropout=config["dropout"],
                             pad_token=config["pad_token"], pad_value=config["pad_value"])
    def save(tmp: str) -> None:
        with open(tmp, "wb") as handle:  # torch.save refuses the temporary file's name, not a handle
            torch.save(model.state_dict(), handle)

    protocol.atomic(request["output"], save)
    return {"device": "cpu", "parameters": int(sum(p.numel() for p in model.parameters()))}


if __name__ == "__main__":
    protocol.main({"fit": fit, "predict": predict, "checkpoint": checkpoint})

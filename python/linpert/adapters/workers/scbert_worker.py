"""scBERT worker: fine-tune scBERT on the training conditions' labels with its own code, embed the perturbed inputs.

    python scbert_worker.py REQUEST.json

``inputs.code`` is scBERT's repository at the paper's commit 262fd4b9 (put first on ``sys.path``: its
``performer_pytorch`` and ``utils``); ``inputs.model`` a folder holding the checkpoint (``params.checkpoint``) and
``data/gene2vec_16906.npy``, which scBERT's ``Gene2VecPositionalEmbedding`` opens as ``../data/gene2vec_16906.npy``
from the working directory. The cells come preprocessed as scBERT's ``preprocess.py`` does (reference genes,
``normalize_total(1e4)``, ``log1p(base=2)``): ``train_x.npz`` and ``inputs_x.npz`` (scipy sparse) with their labels in
``labels.npz``.

``finetune.py`` is a script that starts a distributed (NCCL) process group when imported, so its steps are restated
here for one process, each with the line it follows: the model and its frozen layers, the classification head, the
optimiser and scheduler (scBERT's own ``CosineAnnealingWarmupRestarts``), the 80/20 stratified split, the random
draws of its ``SCDataset``, gradient accumulation and early stopping on validation accuracy. ``model`` writes a
randomly initialised checkpoint in scBERT's format for :func:`linpert.adapters.write_scbert_model`.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _protocol as protocol  # noqa: E402

# finetune.py: 5 expression bins + 2 special tokens, and PerformerLM's fixed width and heads
BIN_NUM, DIM, HEADS = 5, 200, 10
CLASS = BIN_NUM + 2
PATIENCE, HEAD_WIDTH = 10, 128  # finetune.py: PATIENCE = 10; Identity(h_dim=128)


def _use_code(request: dict) -> None:
    """Import scBERT's modules from its repository, with the working directory where its gene2vec path resolves."""
    code = os.path.abspath(request["inputs"]["code"])
    sys.path.insert(0, code)
    work = os.path.join(request["run_dir"], "scbert")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(request["run_dir"], "data")
    if not os.path.lexists(data):
        os.symlink(os.path.join(os.path.abspath(request["inputs"]["model"]), "data"), data)
    os.chdir(work)


def _performer(seq_len: int, depth: int):
    from performer_pytorch import PerformerLM

    # finetune.py's PerformerLM(...), with the depth of the checkpoint (6 in scBERT's pretrained model)
    return PerformerLM(num_tokens=CLASS, dim=DIM, depth=depth, max_seq_len=seq_len, heads=HEADS, local_attn_heads=0,
                       g2v_position_emb=True)


def _head(seq_len: int, n_labels: int):
    """finetune.py's ``Identity`` head (a class of the script, so not importable): a 1 × 200 convolution over each
    gene's encoding, then 512 → 128 → labels."""
    from torch import nn

    class Identity(nn.Module):
        def __init__(self, dropout=0.0, h_dim=100, out_dim=10):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 1, (1, DIM))
            self.act = nn.ReLU()
            self.fc1 = nn.Linear(in_features=seq_len, out_features=512, bias=True)
            self.act1 = nn.ReLU()
            self.dropout1 = nn.Dropout(dropout)
            self.fc2 = nn.Linear(in_features=512, out_features=h_dim, bias=True)
            self.act2 = nn.ReLU()
            self.dropout2 = nn.Dropout(dropout)
            self.fc3 = nn.Linear(in_features=h_dim, out_features=out_dim, bias=True)

        def forward(self, x):
            x = self.act(self.conv1(x[:, None, :, :])).view(x.shape[0], -1)
            x = self.dropout1(self.act1(self.fc1(x)))
            x = self.dropout2(self.act2(self.fc2(x)))
            return self.fc3(x)

    return Identity(dropout=0.0, h_dim=HEAD_WIDTH, out_dim=n_labels)


def _sequence(matrix, rows):
    """SCDataset.__getitem__: the cells' binned expression (values above the top bin clipped, then truncated to
    integers), with the extra position scBERT appends."""
    import torch

    full = matrix[rows].toarray()
    full[full > (CLASS - 2)] = CLASS - 2
    full = torch.from_numpy(full).long()
    return torch.cat((full, torch.zeros((len(rows), 1), dtype=torch.long)), dim=1)


def _depth(state: dict) -> int:
    return 1 + max(int(key.split(".")[3]) for key in state if key.startswith("performer.net.layers."))


def fine_tune(request: dict, train, labels, device: str):
    """finetune.py on one process. Returns the model with the weights of its best validation accuracy."""
    import copy
    import random

    import numpy as np
    import torch
    from sklearn.model_selection import StratifiedShuffleSplit
    from torch import nn
    from utils import CosineAnnealingWarmupRestarts

    params = request["params"]
    seq_len = train.shape[1] + 1
    state = torch.load(os.path.join(request["inputs"]["model"], params["checkpoint"]), map_location="cpu",
                       weights_only=False)["model_state_dict"]
    model = _performer(seq_len, _depth(state))
    model.load_state_dict(state)
    for param in model.parameters():
        param.requires_grad = False
    for param in model.norm.parameters():
        param.requires_grad = True
    for param in model.performer.net.layers[-2].parameters():
        param.requires_grad = True
    label_dict, label = np.unique(labels, return_inverse=True)
    model.to_out = _head(seq_len, len(label_dict))
    model = model.to(device)
    lr = float(params["learning_rate"])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = CosineAnnealingWarmupRestarts(optimizer, first_cycle_steps=15, cycle_mult=2, max_lr=lr, min_lr=1e-6,
                                              warmup_steps=5, gamma=0.9)
    loss_fn = nn.CrossEntropyLoss(weight=None)
    split = StratifiedShuffleSplit(n_splits=1, test_size=0.2, random_state=request["seed"])
    index_train, index_val = next(split.split(np.zeros(len(label)), label))
    batch, accumulate = int(params["batch_size"]), int(params["grad_acc"])

    def draws(pool):  # SCDataset ignores the index it is given and draws a random cell of its data
        for _ in range(0, len(pool), batch):
            rows = [pool[random.randint(0, len(pool) - 1)] for _ in range(min(batch, len(pool)))]
            yield _sequence(train, rows).to(device), torch.as_tensor(label[rows]).to(device)

    best, max_acc, trigger, epochs = copy.deepcopy(model.state_dict()), 0.0, 0, 0
    for _epoch in range(int(params["epochs"])):
        epochs += 1
        model.train()
        for index, (data, labels_) in enumerate(draws(index_train), start=1):
            loss_fn(model(data), labels_).backward()
            if index % accumulate == 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), int(1e6))
                optimizer.step()
                optimizer.zero_grad()
        scheduler.step()
        model.eval()
        with torch.no_grad():
            hits = [(model(data).argmax(dim=-1) == labels_).cpu().numpy() for data, labels_ in draws(index_val)]
        accuracy = float(np.concatenate(hits).mean())
        if accuracy > max_acc:
            max_acc, trigger, best = accuracy, 0, copy.deepcopy(model.state_dict())
        else:
            trigger += 1
            if trigger > PATIENCE:
                break
    model.load_state_dict(best)
    return model.eval(), {"epochs": epochs, "val_accuracy": max_acc, "labels": len(label_dict)}


def embed(request: dict) -> dict:
    """Fine-tune, then each perturbed input's cell embedding: the mean over genes of the final layer's encodings."""
    import numpy as np
    import torch
    from scipy import sparse

    _use_code(request)
    from utils import seed_all

    seed_all(request["seed"])
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    train, inputs = sparse.load_npz(request["train_x"]).tocsr(), sparse.load_npz(request["inputs_x"]).tocsr()
    with np.load(request["labels"], allow_pickle=False) as saved:
        train_labels, input_labels = saved["train"].astype(str), saved["inputs"].astype(str)
    model, trained = fine_tune(request, train, train_labels, device)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    batch = int(request["params"]["embed_batch_size"])
    with torch.no_grad():
        for start in range(0, inputs.shape[0], batch):
            rows = list(range(start, min(start + batch, inputs.shape[0])))
            encodings = model(_sequence(inputs, rows).to(device), return_encodings=True)[:, :-1, :]
            for label, cell in zip(input_labels[rows], encodings.mean(dim=1).float().cpu().numpy()):
                sums[label] = sums.get(label, 0) + cell.astype(np.float64)
                counts[label] = counts.get(label, 0) + 1
    names = sorted(sums)
    protocol.write_embedding(request["output"], names, np.vstack([sums[n] / counts[n] for n in names]))
    return {"device": device, "n_cells": int(inputs.shape[0]), "dimensions": DIM, **trained,
            "peak_gpu_mib": protocol.gpu_peak_mib(device),
            "versions": {**protocol.versions(), "scbert": protocol.code_version(request["inputs"]["code"])}}


def model(request: dict) -> dict:
    """A randomly initialised PerformerLM over the folder's gene2vec, saved as scBERT's checkpoints are."""
    import numpy as np
    import torch

    _use_code(request)
    protocol.seed_everything(request["seed"])
    genes = np.load(os.path.join("..", "data", "gene2vec_16906.npy")).shape[0]
    performer = _performer(genes + 1, int(request["params"]["depth"]))
    torch.save({"epoch": 0, "model_state_dict": performer.state_dict()}, request["output"])
    return {"device": "cpu"}


if __name__ == "__main__":
    protocol.main({"embed": embed, "model": model})

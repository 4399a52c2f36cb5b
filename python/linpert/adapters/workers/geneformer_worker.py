"""Geneformer embedding worker: embed rank-value encoded cells with the model's weights, average per condition.

    python geneformer_worker.py REQUEST.json

Geneformer is a BERT masked-language model in Hugging Face's format (``config.json`` and the weights); its own
``EmbExtractor`` takes a cell's embedding as the mean over its tokens of the second-to-last hidden layer, which is
what ``embed`` does here with ``transformers``. The inputs (token ids per cell, in-silico perturbed by linpert) come
as ``tokens.npz``; ``model`` writes a randomly initialised model for :func:`linpert.adapters.write_geneformer_model`.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _protocol as protocol  # noqa: E402


def embed(request: dict) -> dict:
    import numpy as np
    import torch
    from transformers import BertForMaskedLM

    params = request["params"]
    protocol.seed_everything(request["seed"])
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    model = BertForMaskedLM.from_pretrained(request["inputs"]["model"], output_hidden_states=True).to(device).eval()
    data = np.load(request["tokens"])
    tokens, lengths, labels = data["tokens"], data["lengths"], data["conditions"]
    pad = int(params["pad_token"])
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    batch = int(params["batch_size"])
    with torch.no_grad():
        for start in range(0, len(lengths), batch):
            stop = min(start + batch, len(lengths))
            width = int(lengths[start:stop].max())
            ids = torch.full((stop - start, width), pad, dtype=torch.long)
            for row, i in enumerate(range(start, stop)):
                ids[row, : lengths[i]] = torch.as_tensor(tokens[i, : lengths[i]])
            mask = (ids != pad).long()
            hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device)).hidden_states[params["layer"]]
            weights = mask.to(device).unsqueeze(-1).float()
            cells = ((hidden * weights).sum(1) / weights.sum(1).clamp(min=1)).float().cpu().numpy()
            for label, cell in zip(labels[start:stop], cells):
                sums[label] = sums.get(label, 0) + cell.astype(np.float64)
                counts[label] = counts.get(label, 0) + 1
    names = sorted(sums)
    means = np.vstack([sums[n] / counts[n] for n in names])
    protocol.write_embedding(request["output"], names, means)
    return {"device": device, "n_cells": int(len(lengths)), "dimensions": int(means.shape[1]),
            "peak_gpu_mib": protocol.gpu_peak_mib(device)}


def model(request: dict) -> dict:
    """A randomly initialised BertForMaskedLM with the folder's ``config.json``, saved in Hugging Face's format."""
    from transformers import BertConfig, BertForMaskedLM

    protocol.seed_everything(request["seed"])
    with open(os.path.join(request["inputs"]["model"], "config.json")) as handle:
        config = BertConfig(**json.load(handle))
    BertForMaskedLM(config).save_pretrained(request["output"])
    return {"device": "cpu"}


if __name__ == "__main__":
    protocol.main({"embed": embed, "model": model})

"""Geneformer embedding worker: embed rank-value encoded cells with the model's weights, average per condition.

    python geneformer_worker.py REQUEST.json

Geneformer is a BERT masked-language model in Hugging Face's format (``config.json`` and the weights); its own
``EmbExtractor`` takes a cell's embedding as the mean over its tokens of the second-to-last hidden layer, which is
what ``embed`` does here with ``transformers``. The inputs (token ids per cell, in-silico perturbed by linpert) come
as ``tokens.npz``; ``model`` writes a randomly initialised model for :func:`linpert.adapters.write_geneformer_model`.

``finetune_embed`` is the paper's protocol with Geneformer's own code (``inputs.code``, its repository at a 0.1.0
commit, put first on ``sys.path``): ``TranscriptomeTokenizer`` encodes the cells of ``cells.h5ad``, ``Classifier``
fine-tunes the model to tell the training conditions apart (``train_all_data``, its default settings), and each
condition's targets are perturbed in the control cells as ``InSilicoPerturber`` does for a group of genes, then
embedded with the fine-tuned model as the perturber embeds them (``get_embs``, mean over each cell's genes).
"""

from __future__ import annotations

import json
import os
import sys
import time

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


def _cuda_means_cpu() -> None:
    """Let Geneformer's embedding code run without a GPU: it places tensors on ``"cuda"`` by name
    (``get_embs``, ``gen_attention_mask``), so without one that name means the CPU. Nothing else changes."""
    import torch

    def here(device):
        return "cpu" if isinstance(device, str) and device.startswith("cuda") else device

    tensor, to = torch.tensor, torch.Tensor.to
    torch.tensor = lambda *args, device=None, **kwargs: tensor(*args, device=here(device), **kwargs)
    torch.Tensor.to = lambda self, *args, **kwargs: to(
        self, *(here(a) for a in args), **{k: here(v) if k == "device" else v for k, v in kwargs.items()})


def finetune_embed(request: dict) -> dict:
    import numpy as np

    sys.path.insert(0, os.path.abspath(request["inputs"]["code"]))
    device = protocol.resolve_device(request["device"])
    if device == "cpu":
        _cuda_means_cpu()
    protocol.seed_everything(request["seed"])
    protocol.reset_gpu_peak(device)
    folder, work = os.path.abspath(request["inputs"]["model"]), os.path.join(request["run_dir"], "geneformer")
    data = _tokenized(request["cells"], folder, work)
    t0 = time.perf_counter()
    fine_tuned, n_classes = _fine_tuned(data, folder, work, request["params"])
    train_seconds = time.perf_counter() - t0
    controls = data.filter(lambda cell: cell["role"] == "control")
    names = sorted(request["params"]["perturbations"])
    means = [_perturbed_embedding(fine_tuned, n_classes, controls, request["params"]["perturbations"][name], folder,
                                  request["params"]) for name in names]
    protocol.write_embedding(request["output"], names, np.vstack(means))
    return {"device": device, "n_cells": int(len(controls)), "dimensions": int(means[0].shape[0]),
            "classes": n_classes, "train_seconds": train_seconds, "peak_gpu_mib": protocol.gpu_peak_mib(device),
            "versions": {**protocol.versions(), "geneformer": protocol.code_version(request["inputs"]["code"])}}


def _tokenized(cells: str, folder: str, work: str):
    """``TranscriptomeTokenizer`` on the cells file, with the model folder's dictionaries; its dataset."""
    import pickle

    from datasets import load_from_disk
    from geneformer import TranscriptomeTokenizer

    tokens_file = os.path.join(folder, "token_dictionary.pkl")
    with open(tokens_file, "rb") as handle:
        special = "<cls>" in pickle.load(handle)  # the 95M models' dictionaries have <cls> and <eos>
    with open(os.path.join(folder, "config.json")) as handle:
        input_size = json.load(handle)["max_position_embeddings"]
    cells_dir = os.path.join(work, "cells")  # the tokenizer reads every .h5ad of a folder
    os.makedirs(cells_dir, exist_ok=True)
    os.symlink(cells, os.path.join(cells_dir, "cells.h5ad"))
    tokenizer = TranscriptomeTokenizer({"condition": "condition", "role": "role"}, nproc=1,
                                       model_input_size=input_size, special_token=special,
                                       gene_median_file=os.path.join(folder, "gene_median_dictionary.pkl"),
                                       token_dictionary_file=tokens_file, gene_mapping_file=None)
    tokenizer.tokenize_data(cells_dir, work, "cells", file_format="h5ad")
    return load_from_disk(os.path.join(work, "cells.dataset"))


def _fine_tuned(data, folder: str, work: str, params: dict):
    """``Classifier`` trained on all the training cells to tell their conditions apart; the model, loaded as the
    perturber loads one, and its number of classes."""
    import glob
    import pickle

    from geneformer import Classifier
    from geneformer import perturber_utils as pu

    data.filter(lambda cell: cell["role"] == "train").remove_columns("role").save_to_disk(
        os.path.join(work, "train.dataset"))
    # Geneformer's own training settings unless the user changed them (training_args None: its defaults)
    classifier = Classifier(classifier="cell", cell_state_dict={"state_key": "condition", "states": "all"},
                            training_args=params["training_args"], forward_batch_size=params["batch_size"],
                            token_dictionary_file=os.path.join(folder, "token_dictionary.pkl"), nproc=1)
    classifier.prepare_data(input_data_file=os.path.join(work, "train.dataset"), output_directory=work,
                            output_prefix="linpert", test_size=0)
    classes = os.path.join(work, "linpert_id_class_dict.pkl")
    with open(classes, "rb") as handle:
        n_classes = len(pickle.load(handle))
    classifier.train_all_data(model_directory=folder, prepared_input_data_file=os.path.join(
        work, "linpert_labeled.dataset"), id_class_dict_file=classes, output_directory=work, output_prefix="linpert")
    tuned = os.path.dirname(glob.glob(os.path.join(work, "*_geneformer_cellClassifier_linpert", "config.json"))[0])
    return pu.load_model("CellClassifier", n_classes, tuned, "eval"), n_classes


def _perturbed_embedding(model, n_classes: int, controls, genes: list[str], folder: str, params: dict):
    """The mean embedding of the control cells with ``genes`` perturbed as ``InSilicoPerturber`` perturbs a group
    (none: the control cells as they are), embedded as the perturber embeds cells (``emb_layer`` -1, mean over
    each cell's genes)."""
    import functools

    import numpy as np
    import torch
    from geneformer import InSilicoPerturber
    from geneformer import perturber_utils as pu
    from geneformer.emb_extractor import get_embs

    settings = {"model_type": "CellClassifier", "num_classes": n_classes, "emb_mode": "cell", "nproc": 1,
                "token_dictionary_file": os.path.join(folder, "token_dictionary.pkl")}
    perturber = InSilicoPerturber(**settings, perturb_type=params["mode"], genes_to_perturb=genes or "all")
    inputs = controls
    if genes:
        inputs = controls.map(functools.partial(_perturb_group, isp=perturber, pu=pu,
                                                max_len=pu.get_model_input_size(model)))
    layer = pu.quant_layers(model) + perturber.emb_layer
    embedded = get_embs(model, inputs, "gene", layer, perturber.pad_token_id, params["batch_size"],
                        token_gene_dict=perturber.token_gene_dict, summary_stat=None, silent=True)
    cells = pu.mean_nonpadding_embs(embedded, torch.tensor(inputs["length"], device=embedded.device), dim=1)
    return cells.float().mean(dim=0).cpu().numpy().astype(np.float64)


def _perturb_group(cell: dict, *, isp, pu, max_len: int) -> dict:
    """``InSilicoPerturber.isp_perturb_set``'s ``make_group_perturbation_batch`` (a closure, so not importable):
    the targets' positions in the cell, then ``delete_indices`` or ``overexpress_tokens``."""
    cell["tokens_to_perturb"] = isp.tokens_to_perturb
    where = [cell["input_ids"].index(token) for token in isp.tokens_to_perturb if token in cell["input_ids"]]
    cell["perturb_index"] = where if where else [-100]  # -100: none of the targets is in the encoding
    if isp.perturb_type == "delete":
        return pu.delete_indices(cell)
    return pu.overexpress_tokens(cell, max_len, isp.special_token)


if __name__ == "__main__":
    protocol.main({"embed": embed, "finetune_embed": finetune_embed, "model": model})

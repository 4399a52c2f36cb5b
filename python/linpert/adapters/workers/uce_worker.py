"""UCE embedding worker: embed cells with the ``uce-model`` package, average per condition. Run by linpert.

    python uce_worker.py REQUEST.json

``inputs.model_files`` is UCE's ``model_files`` folder (``species_chrom.csv``, ``species_offsets.pkl``,
``all_tokens.torch``, ``protein_embeddings/`` and the weights). Preprocessing, gene indexing and the cell sentences
are UCE's own (``AnndataProcessor``, ``MultiDatasetSentences``); the model is built with the token-table shape the
weights hold (UCE's ``run_eval`` hard-codes the full 145,469 × 5,120 table), then run as ``run_eval`` runs it. The
``model`` action writes randomly initialised weights for :func:`linpert.adapters.write_uce_model`.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _protocol as protocol  # noqa: E402

# UCE's fixed architecture (uce.evaluate.run_eval)
D_MODEL, N_HEAD, DROPOUT = 1280, 20, 0.05


def _args(request: dict, adata_path: str | None = None):
    from uce.eval_single_anndata import parser

    files = request["inputs"]["model_files"]
    with open(os.path.join(files, "linpert_uce.json")) as handle:
        config = json.load(handle)
    args = parser.parse_args([])
    args.adata_path = adata_path
    args.dir = request["run_dir"].rstrip("/") + "/"  # UCE joins paths by string concatenation
    args.filter = False  # keep every cell (and so the condition labels) and every gene with an embedding
    args.skip = False
    args.model_loc = os.path.join(files, config["weights"])
    args.spec_chrom_csv_path = os.path.join(files, "species_chrom.csv")
    args.token_file = os.path.join(files, "all_tokens.torch")
    args.protein_embeddings_dir = os.path.join(files, "protein_embeddings")
    args.offset_pkl_path = os.path.join(files, "species_offsets.pkl")
    for key in ("nlayers", "output_dim", "d_hid", "token_dim", "sample_size", "pad_length", "species",
                "batch_size"):
        if key in config:
            setattr(args, key, config[key])
    if "batch_size" in request.get("params", {}):
        args.batch_size = request["params"]["batch_size"]
    # UCE's gene-embedding loader reads a path relative to the working directory: point it at the user's folder
    import uce.data_proc.gene_embeddings as gene_embeddings

    for species, path in gene_embeddings.MODEL_TO_SPECIES_TO_GENE_EMBEDDING_PATH["ESM2"].items():
        gene_embeddings.MODEL_TO_SPECIES_TO_GENE_EMBEDDING_PATH["ESM2"][species] = os.path.join(
            args.protein_embeddings_dir, os.path.basename(str(path)))
    return args


def _model(args, device: str):
    import torch
    from torch import nn
    from uce.evaluate import get_ESM2_embeddings
    from uce.model import TransformerModel

    state = torch.load(args.model_loc, map_location="cpu")
    model = TransformerModel(token_dim=args.token_dim, d_model=D_MODEL, nhead=N_HEAD, d_hid=args.d_hid,
                             nlayers=args.nlayers, dropout=DROPOUT, output_dim=args.output_dim)
    model.pe_embedding = nn.Embedding.from_pretrained(torch.zeros(state["pe_embedding.weight"].shape))
    model.load_state_dict(state, strict=True)
    tokens = get_ESM2_embeddings(args)
    if tokens.shape[0] != state["pe_embedding.weight"].shape[0]:  # as run_eval: keep the weights' own table
        model.pe_embedding = nn.Embedding.from_pretrained(tokens)
    return model.eval().to(device)


def embed(request: dict) -> dict:
    import anndata
    import numpy as np
    import pickle
    import torch
    from torch.utils.data import DataLoader
    from uce.eval_data import MultiDatasetSentenceCollator, MultiDatasetSentences
    from uce.evaluate import AnndataProcessor

    protocol.seed_everything(request["seed"])  # UCE samples each cell's sentence with numpy's global RNG
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    args = _args(request, adata_path=request["cells"])
    processor = AnndataProcessor(args, accelerator=None)
    processor.preprocess_anndata()
    processor.generate_idxs()
    with open(processor.shapes_dict_path, "rb") as handle:
        shapes = pickle.load(handle)
    dataset = MultiDatasetSentences(sorted_dataset_names=[processor.name], shapes_dict=shapes, args=args,
                                    npzs_dir=args.dir, dataset_to_protein_embeddings_path=processor.pe_idx_path,
                                    datasets_to_chroms_path=processor.chroms_path,
                                    datasets_to_starts_path=processor.starts_path)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False,
                        collate_fn=MultiDatasetSentenceCollator(args), num_workers=0)
    model = _model(args, device)
    cells = []
    with torch.no_grad():
        for sentences, mask, _, _ in loader:
            sentences = model.pe_embedding(sentences.permute(1, 0).long().to(device))
            sentences = torch.nn.functional.normalize(sentences, dim=2)
            _, embedding = model.forward(sentences, mask=mask.to(device))
            cells.append(embedding.float().cpu().numpy())
    embedded = np.vstack(cells).astype(np.float64)
    labels = anndata.read_h5ad(processor.proc_h5_path).obs["condition"].astype(str).to_numpy()
    names = sorted(set(labels))
    means = np.vstack([embedded[labels == n].mean(axis=0) for n in names])
    protocol.write_embedding(request["output"], names, means)
    return {"device": device, "n_cells": int(len(labels)), "n_genes": int(shapes[processor.name][1]),
            "peak_gpu_mib": protocol.gpu_peak_mib(device)}


def model(request: dict) -> dict:
    """Random UCE files into the output folder: the token table, the species' protein embeddings (human: the
    genes' rows of the table) and ``TransformerModel`` weights with that table (plus UCE's chromosome tokens)."""
    import argparse

    import torch
    from torch import nn
    from uce.evaluate import get_ESM2_embeddings
    from uce.model import TransformerModel

    params = request["params"]
    protocol.seed_everything(request["seed"])
    out = request["output"]
    os.makedirs(os.path.join(out, "protein_embeddings"))
    tokens = torch.randn(params["n_tokens"], params["token_dim"])
    torch.save(tokens, os.path.join(out, "all_tokens.torch"))
    offset = params["offset"]
    for species, name in params["species_files"].items():
        genes = params["genes"] if species == "human" else []
        torch.save({g: tokens[offset + i] for i, g in enumerate(genes)}, os.path.join(out, "protein_embeddings", name))
    args = argparse.Namespace(token_file=os.path.join(out, "all_tokens.torch"), token_dim=params["token_dim"])
    model = TransformerModel(token_dim=params["token_dim"], d_model=D_MODEL, nhead=N_HEAD, d_hid=params["d_hid"],
                             nlayers=params["nlayers"], dropout=DROPOUT, output_dim=params["output_dim"])
    model.pe_embedding = nn.Embedding.from_pretrained(get_ESM2_embeddings(args))
    torch.save(model.state_dict(), os.path.join(out, "model.torch"))
    return {"device": "cpu", "parameters": int(sum(p.numel() for p in model.parameters()))}


if __name__ == "__main__":
    protocol.main({"embed": embed, "model": model})

"""GEARS (cell-gears 0.1.2) worker: train on linpert's split, predict perturbations. Run by linpert, not by hand.

    python gears_worker.py REQUEST.json

``fit`` builds GEARS' data folder from the request's cells (``perturb_processed.h5ad`` in GEARS' format, DE keys
already computed by linpert) and the user's GO files, trains with a custom split (train / val only: the test split
never reaches this process) and saves the best model by validation DE MSE; ``predict`` reloads it and predicts each
requested perturbation as the mean over 300 control cells, as ``GEARS.predict`` does. GO files are never downloaded.
"""

from __future__ import annotations

import os
import pickle
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# gears imports dcor, whose numba kernels compile at import (~5 s per process, cached after the first). Do not set
# NUMBA_DISABLE_JIT to skip that: with a cold cache, dcor's guvectorize kernels then fail to compile at import.

import _protocol as protocol  # noqa: E402

GO_FILES = ("gene2go_all.pkl", "essential_all_data_pert_genes.pkl")
GO_GRAPH = "go_essential_all.csv"
DATASET = "linpert"


def _data_path(request: dict) -> str:
    """GEARS' ``data_path``: the GO files linked in, the dataset folder holding our cells."""
    data_path = os.path.join(request["run_dir"], "gears")
    dataset = os.path.join(data_path, DATASET)
    os.makedirs(dataset, exist_ok=True)
    cells = os.path.join(dataset, "perturb_processed.h5ad")
    if not os.path.lexists(cells):
        os.symlink(os.path.abspath(request["cells"]), cells)
    go = request["inputs"].get("go_files")
    if go is None:  # GEARS 0.0.2 (scGPT's data loading) reads no GO files
        return data_path
    graph = next((p for p in (os.path.join(go, GO_GRAPH), os.path.join(go, "go_essential_all", GO_GRAPH))
                  if os.path.isfile(p)), None)
    missing = [f for f in GO_FILES if not os.path.isfile(os.path.join(go, f))] + ([GO_GRAPH] if graph is None else [])
    if missing:
        raise FileNotFoundError(
            f"go_files={go!r} lacks {missing}. It must hold gene2go_all.pkl, essential_all_data_pert_genes.pkl and "
            "go_essential_all.csv (or go_essential_all/go_essential_all.csv), GEARS' files from Harvard Dataverse."
        )
    links = {os.path.join(data_path, f): os.path.join(go, f) for f in GO_FILES}
    os.makedirs(os.path.join(data_path, "go_essential_all"), exist_ok=True)
    links[os.path.join(data_path, "go_essential_all", GO_GRAPH)] = graph
    for link, target in links.items():
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(target), link)
    return data_path


def _forbid_downloads() -> None:
    """GEARS downloads whatever is missing from data_path; here a missing file is an error, never a download."""
    import gears.pertdata
    import gears.utils

    def offline(url: str, save_path: str, *args) -> None:
        if not os.path.exists(save_path):
            raise FileNotFoundError(f"GEARS wanted to download {url} to {save_path}; linpert never downloads at run "
                                    "time. Put the file into go_files.")

    for module in (gears.pertdata, gears.utils):
        for name in ("dataverse_download", "tar_data_download_wrapper", "zip_data_download_wrapper"):
            if hasattr(module, name):
                setattr(module, name, offline)


def pert_data(request: dict, train: list[str], val: list[str], *, batch_size: int, test_batch_size: int):
    """Load GEARS' PertData with linpert's train/val split and its data loaders (also used by the GEARS forks)."""
    from gears import PertData

    data_path = _data_path(request)
    _forbid_downloads()
    loaded = PertData(data_path)
    loaded.load(data_path=os.path.join(data_path, DATASET))
    present = set(loaded.adata.obs["condition"].astype(str).unique())
    split = {"train": [c for c in train if c in present], "val": [c for c in val if c in present], "test": []}
    if not split["val"]:
        raise ValueError("No validation condition is left after GEARS dropped perturbations outside its GO graph.")
    with open(os.path.join(request["run_dir"], "gears_split.pkl"), "wb") as handle:
        pickle.dump(split, handle)
    # linpert's split set directly (what prepare_split(split='custom') does in 0.1.2, and works in the 0.0.2 forks
    # too); 'no_test': no test loader, so the test split never reaches GEARS, not even for its final report
    loaded.split, loaded.seed, loaded.subgroup = "no_test", request["seed"], None
    loaded.train_gene_set_size = None
    loaded.set2conditions = split
    loaded.get_dataloader(batch_size=batch_size, test_batch_size=test_batch_size)
    dropped = {c: "not in GEARS' GO graph" for c in [*train, *val] if c not in present}
    return loaded, split, dropped


def fit(request: dict) -> dict:
    from gears import GEARS

    params = request["params"]
    protocol.seed_everything(request["seed"])
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    data, split, dropped = pert_data(request, request["train"], request["val"], batch_size=params["batch_size"],
                                     test_batch_size=params["test_batch_size"])
    model = GEARS(data, device=device)
    model.model_initialize(hidden_size=params["hidden_size"])
    start = time.perf_counter()
    model.train(epochs=params["epochs"], lr=params["lr"], weight_decay=params["weight_decay"])
    train_seconds = time.perf_counter() - start
    model.save_model(request["model_dir"])
    return {
        "device": device,
        "train_seconds": train_seconds,
        "epochs": params["epochs"],
        "epoch_seconds": train_seconds / max(1, params["epochs"]),
        "n_train_cells": len(data.dataloader["train_loader"].dataset),
        "train_conditions": split["train"],
        "val_conditions": split["val"],
        "dropped": dropped,
        "predictable_genes": sorted(str(g) for g in data.pert_names),
        "peak_gpu_mib": protocol.gpu_peak_mib(device),
    }


def predict(request: dict) -> dict:
    import numpy as np
    from gears import GEARS

    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    params = request["params"]
    with open(os.path.join(request["run_dir"], "gears_split.pkl"), "rb") as handle:
        split = pickle.load(handle)
    data, _, _ = pert_data(request, split["train"], split["val"], batch_size=params["batch_size"],
                           test_batch_size=params["test_batch_size"])
    model = GEARS(data, device=device)
    model.load_pretrained(request["model_dir"])
    genes = [str(g) for g in data.adata.var["gene_name"]]
    keys, rows, reasons = [], [], []
    for perturbation in request["perturbations"]:
        key = "_".join(perturbation)
        keys.append(key)
        unknown = [g for g in perturbation if g not in model.pert_list]
        if unknown:
            rows.append(np.full(len(genes), np.nan))
            reasons.append(f"{', '.join(unknown)} not in GEARS' GO graph")
            continue
        protocol.seed_everything(request["seed"])  # the same 300 control cells whatever else is asked
        rows.append(np.asarray(model.predict([list(perturbation)])[key], dtype=np.float64))
        reasons.append("")
    protocol.write_predictions(request["output"], keys, np.vstack(rows), reasons, genes)
    return {"device": device, "peak_gpu_mib": protocol.gpu_peak_mib(device)}


if __name__ == "__main__":
    protocol.main({"fit": fit, "predict": predict})

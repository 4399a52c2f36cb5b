"""CPA (cpa-tools 0.8.8) worker: train on reconstructed counts with linpert's split, predict. Run by linpert.

    python cpa_worker.py REQUEST.json

Validation (early stopping) uses linpert's validation conditions only; the test split never reaches this process.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _protocol as protocol  # noqa: E402


def _adata(request: dict):
    import anndata

    adata = anndata.read_h5ad(request["cells"])
    adata.X = adata.layers["counts"].astype("float32")
    val = set(request["val"])
    adata.obs["split"] = ["valid" if c in val else "train" for c in adata.obs["condition"].astype(str)]
    adata.obs["condition"] = adata.obs["condition"].astype(str)
    return adata


def _setup(cpa, adata) -> None:
    cpa.CPA.setup_anndata(adata, perturbation_key="condition", control_group="ctrl", dosage_key="dose_val",
                          categorical_covariate_keys=["cell_type"], is_count_data=True, max_comb_len=2)


def fit(request: dict) -> dict:
    import cpa

    params = request["params"]
    protocol.seed_everything(request["seed"])
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    adata = _adata(request)
    _setup(cpa, adata)
    model = cpa.CPA(adata, split_key="split", train_split="train", valid_split="valid", test_split="none",
                    n_latent=params["n_latent"], recon_loss=params["recon_loss"], seed=request["seed"],
                    **params["model_params"])
    start = time.perf_counter()
    model.train(max_epochs=params["max_epochs"], use_gpu=device == "cuda", batch_size=params["batch_size"],
                early_stopping_patience=params["early_stopping_patience"],
                check_val_every_n_epoch=params["check_val_every_n_epoch"], save_path=request["model_dir"])
    train_seconds = time.perf_counter() - start
    model.save(request["model_dir"], overwrite=True, save_anndata=True)
    # a gene seen only in validation has an untrained embedding: predict only genes trained on
    genes = sorted({g for c in request["train"] for g in c.split("+") if g != "ctrl"})
    epochs = int(model.epoch_history["epoch"].max()) + 1  # 0-based epoch index of the last epoch run
    return {"device": device, "train_seconds": train_seconds, "epochs": epochs,
            "epoch_seconds": train_seconds / epochs, "train_conditions": request["train"],
            "val_conditions": request["val"], "dropped": {},
            "predictable_genes": genes, "peak_gpu_mib": protocol.gpu_peak_mib(device)}


def _query(cpa, model, ctrl, perturbation: list[str]):
    """Control cells relabelled with ``perturbation``, set up like the training data.

    A test double is a category CPA never saw in training (its genes it did see), so the query's setup is
    transferred with ``extend_categories``: the model encodes a combination by its genes, not by its category.
    """
    query = ctrl.copy()
    query.obs["condition"] = perturbation[0] + "+ctrl" if len(perturbation) == 1 else "+".join(perturbation)
    query.obs["dose_val"] = "1+1"
    _setup(cpa, query)
    model._register_manager_for_instance(model.adata_manager.transfer_fields(query, extend_categories=True))
    return query


def predict(request: dict) -> dict:
    import cpa
    import numpy as np

    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    model = cpa.CPA.load(request["model_dir"], use_gpu=device == "cuda")
    adata = model.adata
    ctrl = adata[adata.obs["condition"].astype(str) == "ctrl"]
    counts = ctrl.X.toarray() if hasattr(ctrl.X, "toarray") else np.asarray(ctrl.X)
    target = float(np.median(counts.sum(axis=1)))  # the data's normalize_total target
    genes = [str(g) for g in adata.var["gene_name"]]
    keys, rows = [], []
    for perturbation in request["perturbations"]:
        keys.append("_".join(perturbation))
        protocol.seed_everything(request["seed"])  # CPA samples: the same draw whatever else is asked
        query = _query(cpa, model, ctrl, perturbation)
        model.predict(query, batch_size=request["params"]["batch_size"])
        pred = np.asarray(query.obsm["CPA_pred"], dtype=np.float64)
        pred = np.log1p(pred / pred.sum(axis=1, keepdims=True) * target)
        rows.append(pred.mean(axis=0))
    protocol.write_predictions(request["output"], keys, np.vstack(rows), [""] * len(keys), genes)
    return {"device": device, "peak_gpu_mib": protocol.gpu_peak_mib(device)}


if __name__ == "__main__":
    protocol.main({"fit": fit, "predict": predict})

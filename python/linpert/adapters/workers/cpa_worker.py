"""CPA (cpa-tools 0.8.8) worker: train on reconstructed counts with linpert's split, predict. Run by linpert.

    python cpa_worker.py REQUEST.json

The request's ``params`` carry everything CPA is given (the adapter's preset, see ``CpaModel``): ``model_params`` for
``cpa.CPA``, ``trainer_params`` for its training plan (``plan_kwargs``), ``train`` for ``model.train``; how a
perturbation is encoded (``encoding``), whether random cells validate (``valid_cells``, the tutorial's split) or the
request's validation conditions do, and the total that predicted counts are normalised to before the log
(``target_sum``; None: the control cells' median). The test split never reaches this process.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _protocol as protocol  # noqa: E402

SETUP = {"perturbation_key": "condition", "control_group": "ctrl", "dosage_key": "dose_val",
         "categorical_covariate_keys": ["cell_type"], "is_count_data": True, "max_comb_len": 2}


def _encoded(genes: list[str], encoding: str) -> tuple[str, str]:
    """A perturbation's label and dose: CPA's tutorial writes a single as its gene with dose "1"; GEARS' format, as
    linpert writes the cells, as "A+ctrl" with dose "1+1"."""
    if len(genes) == 1 and encoding == "tutorial":
        return genes[0], "1"
    return protocol.condition_name(genes), "1+1"


def _adata(request: dict):
    import anndata
    import numpy as np

    params = request["params"]
    adata = anndata.read_h5ad(request["cells"])
    adata.X = adata.layers["counts"].astype("float32")
    conditions = adata.obs["condition"].astype(str)
    if params["encoding"] == "tutorial":
        recoded = {c: _encoded(protocol.condition_genes(c), "tutorial") for c in set(conditions) if c != "ctrl"}
        adata.obs["condition"] = [recoded[c][0] if c in recoded else c for c in conditions]
        adata.obs["dose_val"] = [recoded[c][1] if c in recoded else "1" for c in conditions]
    else:
        adata.obs["condition"] = conditions
    if params["valid_cells"]:  # the tutorial's split: random cells of the training conditions
        rng = np.random.default_rng(request["seed"])
        adata.obs["split"] = np.where(rng.random(adata.n_obs) < params["valid_cells"], "valid", "train")
    else:
        val = set(request["val"])
        adata.obs["split"] = ["valid" if c in val else "train" for c in conditions]
    return adata


def fit(request: dict) -> dict:
    import cpa

    params = request["params"]
    protocol.seed_everything(request["seed"])
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    adata = _adata(request)
    cpa.CPA.setup_anndata(adata, **SETUP)
    model_params = {"seed": request["seed"], **params["model_params"]}  # the tutorial's seed where it names one
    model = cpa.CPA(adata, split_key="split", train_split="train", valid_split="valid", test_split="none",
                    **model_params)
    start = time.perf_counter()
    model.train(use_gpu=device == "cuda", plan_kwargs=dict(params["trainer_params"]), save_path=request["model_dir"],
                **params["train"])
    train_seconds = time.perf_counter() - start
    model.save(request["model_dir"], overwrite=True, save_anndata=True)
    # a gene seen only in validation has an untrained embedding: predict only genes trained on
    genes = sorted({g for c in request["train"] for g in protocol.condition_genes(c)})
    epochs = int(model.epoch_history["epoch"].max()) + 1  # 0-based epoch index of the last epoch run
    plan = model.training_plan
    passed = {  # what CPA itself recorded of what it was given
        "model_params": model.init_params_["kwargs"]["hyper_params"],
        "trainer_params": {k: v for k, v in {**_adversary(plan), **vars(plan)}.items()
                           if k in params["trainer_params"]},
        "train": params["train"], "setup": SETUP,
        "labels": sorted(set(adata.obs["condition"].astype(str))),
        "doses": sorted(set(adata.obs["dose_val"].astype(str))),
        "valid_cells": int((adata.obs["split"] == "valid").sum()), "cells": int(adata.n_obs),
    }
    return {"device": device, "train_seconds": train_seconds, "epochs": epochs,
            "epoch_seconds": train_seconds / epochs, "train_conditions": request["train"],
            "val_conditions": request["val"], "dropped": {}, "passed": passed,
            "predictable_genes": genes, "peak_gpu_mib": protocol.gpu_peak_mib(device)}


def _adversary(plan) -> dict:
    """The adversary's settings as CPA built its classifier (its training plan keeps no attribute of them)."""
    import torch.nn as nn

    modules = list(plan.perturbation_classifier.modules())
    linear = [m for m in modules if isinstance(m, nn.Linear)]
    return {"n_hidden_adv": linear[0].out_features, "n_layers_adv": len(linear) - 1,  # the last maps to the labels
            "use_batch_norm_adv": any(isinstance(m, nn.BatchNorm1d) for m in modules),
            "use_layer_norm_adv": any(isinstance(m, nn.LayerNorm) for m in modules),
            "dropout_rate_adv": next((m.p for m in modules if isinstance(m, nn.Dropout)), 0.0)}


def _query(cpa, model, ctrl, perturbation: list[str], encoding: str):
    """Control cells relabelled with ``perturbation``, set up like the training data.

    A test double is a category CPA never saw in training (its genes it did see), so the query's setup is
    transferred with ``extend_categories``: the model encodes a combination by its genes, not by its category.
    """
    query = ctrl.copy()
    query.obs["condition"], query.obs["dose_val"] = _encoded(perturbation, encoding)
    cpa.CPA.setup_anndata(query, **SETUP)
    model._register_manager_for_instance(model.adata_manager.transfer_fields(query, extend_categories=True))
    return query


def predict(request: dict) -> dict:
    import cpa
    import numpy as np

    params = request["params"]
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    model = cpa.CPA.load(request["model_dir"], use_gpu=device == "cuda")
    adata = model.adata
    ctrl = adata[adata.obs["condition"].astype(str) == "ctrl"]
    counts = ctrl.X.toarray() if hasattr(ctrl.X, "toarray") else np.asarray(ctrl.X)
    target = params["target_sum"] or float(np.median(counts.sum(axis=1)))  # None: the data's normalize_total
    genes = [str(g) for g in adata.var["gene_name"]]
    keys, rows = [], []
    for perturbation in request["perturbations"]:
        keys.append("_".join(perturbation))
        protocol.seed_everything(request["seed"])  # CPA samples: the same draw whatever else is asked
        query = _query(cpa, model, ctrl, perturbation, params["encoding"])
        model.predict(query, batch_size=params["train"]["batch_size"])
        pred = np.asarray(query.obsm["CPA_pred"], dtype=np.float64)
        pred = np.log1p(pred / pred.sum(axis=1, keepdims=True) * target)
        rows.append(pred.mean(axis=0))
    protocol.write_predictions(request["output"], keys, np.vstack(rows), [""] * len(keys), genes)
    return {"device": device, "peak_gpu_mib": protocol.gpu_peak_mib(device)}


if __name__ == "__main__":
    protocol.main({"fit": fit, "predict": predict})

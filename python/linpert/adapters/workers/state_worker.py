"""STATE (arc-state) worker: train its state-transition model on the training cells, predict by its own inference.
Run by linpert.

    python state_worker.py REQUEST.json

Training is ``state tx train`` on a folder with one ``.h5ad`` and a TOML task that names the validation conditions
(few-shot ``val``; its ``test`` is empty: the test split never reaches this process). Prediction runs STATE's model as
``state tx infer`` does (its ``predict_step`` on sets of control cells, one perturbation per set), but draws each
perturbation's control cells from its own seeded generator: ``state tx infer`` draws them in turn from one generator,
so a perturbation's prediction would depend on which others were asked with it.

A perturbation reaches STATE as a feature vector (``perturbation_features_file``): one entry per target gene seen in
training, 1 for each of its targets (a double is the sum of its singles, as the linear model composes; the control
is zero). STATE's loader gives a perturbation without features a zero vector, i.e. predicts the control, and its
inference does the same for a name missing from its saved map: this worker builds a vector for every perturbation it
trains on or is asked for, checks that STATE kept them, and refuses a perturbation with a gene it never trained on.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _protocol as protocol  # noqa: E402

PERT_COL, BATCH_COL, CELL_TYPE_COL, CONTROL = "condition", "gem_group", "cell_type", "ctrl"


def _features(conditions, genes: list[str]) -> dict:
    """Each condition's vector: 1 for each of its targets among ``genes``."""
    import torch

    where = {g: i for i, g in enumerate(genes)}
    out = {}
    for condition in conditions:
        vector = torch.zeros(len(genes))
        for gene in protocol.condition_genes(condition):
            vector[where[gene]] = 1.0
        out[condition] = vector
    return out


def _state(args: list[str], run_dir: str, device: str) -> None:
    """``state`` with these arguments, in this worker's environment; its output kept in ``state.log``."""
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    with open(os.path.join(run_dir, "state.log"), "a") as log:
        done = subprocess.run([sys.executable, "-m", "state", *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                              cwd=run_dir)
    if done.returncode != 0:
        with open(os.path.join(run_dir, "state.log")) as log:
            tail = log.read()[-3000:]
        raise RuntimeError(f"state {' '.join(args[:2])} failed (exit {done.returncode}):\n{tail}")


def _training_file(request: dict, folder: str) -> tuple[list[str], list[str], list[str]]:
    """The training and validation cells as STATE reads them; their conditions, the genes the training conditions
    target, and the cell types."""
    import anndata
    import pandas as pd
    from scipy import sparse

    adata = anndata.read_h5ad(request["cells"])
    conditions = adata.obs["condition"].astype(str)
    adata.obs[PERT_COL] = pd.Categorical(conditions)
    adata.obs[CELL_TYPE_COL] = pd.Categorical(adata.obs[CELL_TYPE_COL].astype(str))
    adata.obs[BATCH_COL] = pd.Categorical(["1"] * adata.n_obs)
    adata.var["gene_name"] = pd.Categorical(adata.var["gene_name"].astype(str))
    adata.X = sparse.csr_matrix(adata.X, dtype="float32")
    os.makedirs(folder, exist_ok=True)
    adata.write_h5ad(os.path.join(folder, "screen.h5ad"))
    names = sorted(set(conditions))
    trained = sorted({g for c in request["train"] for g in protocol.condition_genes(c)})
    return names, trained, sorted(set(adata.obs[CELL_TYPE_COL].astype(str)))


def _task(folder: str, cell_types: list[str], val: list[str]) -> str:
    """STATE's TOML task: every cell trains but the validation conditions', which validate; no test."""
    quoted = lambda names: "[" + ", ".join(f'"{n}"' for n in names) + "]"  # noqa: E731
    lines = ["[datasets]", f'linpert = "{folder}"', "", "[training]", 'linpert = "train"', "", "[zeroshot]", "",
             "[fewshot]"]
    for cell_type in cell_types:
        lines += ["", f'[fewshot."linpert.{cell_type}"]', f"val = {quoted(val)}", "test = []"]
    return "\n".join(lines) + "\n"


def fit(request: dict) -> dict:
    import torch

    params, run_dir = request["params"], request["run_dir"]
    device = protocol.resolve_device(request["device"])
    data = os.path.join(run_dir, "data")
    names, genes, cell_types = _training_file(request, data)
    unseen = [c for c in names if any(g not in genes for g in protocol.condition_genes(c))]
    if unseen:  # a validation condition with a gene no training condition has: its vector would be zero
        raise ValueError(f"Validation conditions {unseen[:5]} target genes no training condition targets.")
    features = os.path.join(run_dir, "features.pt")
    torch.save(_features(names, genes), features)
    protocol.write_json(os.path.join(run_dir, "genes.json"), genes)  # the features' order, for predict
    task = os.path.join(run_dir, "task.toml")
    with open(task, "w") as handle:
        handle.write(_task(data, cell_types, list(request["val"])))
    overrides = {
        "data.kwargs.toml_config_path": task, "data.kwargs.embed_key": "null", "data.kwargs.output_space": "gene",
        "data.kwargs.pert_col": PERT_COL, "data.kwargs.cell_type_key": CELL_TYPE_COL,
        "data.kwargs.batch_col": BATCH_COL, "data.kwargs.control_pert": CONTROL,
        "data.kwargs.perturbation_features_file": features, "data.kwargs.num_workers": 0,
        "data.kwargs.pin_memory": "false", "training.train_seed": request["seed"],
        "training.max_steps": params["max_steps"], "training.batch_size": params["batch_size"],
        "training.lr": params["lr"], "training.val_freq": params["val_freq"],
        "training.ckpt_every_n_steps": params["val_freq"], "model": params["model"],
        "model.kwargs.cell_set_len": params["cell_set_len"], "use_wandb": "false",
        "output_dir": run_dir, "name": "model", **params["overrides"],
    }
    start = time.perf_counter()
    _state(["tx", "train", *(f"{key}={value}" for key, value in overrides.items())], run_dir, device)
    train_seconds = time.perf_counter() - start
    saved = torch.load(os.path.join(run_dir, "model", "pert_onehot_map.pt"), weights_only=False)
    zero = [c for c in names if c != CONTROL and not bool(saved[c].any())]
    if zero:  # STATE gave these a zero vector: it would train them as controls
        raise RuntimeError(f"STATE holds no features for {zero[:5]}; they would be trained as the control.")
    return {"device": device, "train_seconds": train_seconds, "train_conditions": request["train"],
            "val_conditions": request["val"], "dropped": {}, "predictable_genes": genes, "overrides": overrides,
            "peak_rss_mib": max(protocol.peak_rss_mib(), _children_peak_mib())}


def _children_peak_mib() -> float:
    """The peak resident memory of the finished child processes: STATE trains in one."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _basal(request: dict, label: str, ctrl, n: int):
    """The control cells STATE transforms into ``label``: ``n`` drawn from a generator seeded by the seed and the
    label alone, so that a prediction never depends on what else is asked in the same call."""
    import zlib

    import numpy as np

    rng = np.random.default_rng([int(request["seed"]), zlib.crc32(label.encode())])
    return ctrl[rng.choice(ctrl.shape[0], size=n, replace=ctrl.shape[0] < n)]


def predict(request: dict) -> dict:
    """STATE's model on sets of control cells with each requested perturbation's vector (its ``predict_step``, as
    ``state tx infer`` calls it, one perturbation per set); the mean of the predicted cells."""
    import anndata
    import numpy as np
    import torch
    from state.tx.models.state_transition import StateTransitionPerturbationModel

    params, run_dir = request["params"], request["run_dir"]
    device = protocol.resolve_device(request["device"])
    with open(os.path.join(run_dir, "genes.json")) as handle:
        trained = json.load(handle)
    unknown = sorted({g for p in request["perturbations"] for g in p if g not in trained})
    if unknown:
        raise ValueError(f"STATE never trained on {unknown[:5]}; linpert asks only for perturbations of its genes.")
    labels = [protocol.condition_name(p) for p in request["perturbations"]]
    vectors = _features(labels, trained)
    cells = anndata.read_h5ad(os.path.join(run_dir, "data", "screen.h5ad"))
    ctrl = cells[cells.obs[PERT_COL].astype(str) == CONTROL].X
    ctrl = np.asarray(ctrl.toarray() if hasattr(ctrl, "toarray") else ctrl, dtype=np.float32)
    # the checkpoint this worker's training wrote: Lightning keeps numpy scalars in it, which weights_only refuses
    model = StateTransitionPerturbationModel.load_from_checkpoint(
        os.path.join(run_dir, "model", "checkpoints", "final.ckpt"), map_location=device, weights_only=False)
    model.eval()
    set_len = int(params["cell_set_len"])
    rows = []
    with torch.no_grad():
        for label in labels:
            basal = torch.tensor(_basal(request, label, ctrl, int(params["n_control_cells"])), device=device)
            predicted = []
            for start in range(0, basal.shape[0], set_len):
                window = basal[start:start + set_len]
                batch = {"ctrl_cell_emb": window, "pert_emb": vectors[label].to(device).repeat(len(window), 1),
                         "pert_name": [label] * len(window)}
                if getattr(model, "batch_encoder", None) is not None:  # the screen is one batch
                    batch["batch"] = torch.zeros(len(window), dtype=torch.long, device=device)
                out = model.predict_step(batch, batch_idx=0, padded=False)
                counts = out.get("pert_cell_counts_preds")
                predicted.append((out["preds"] if counts is None else counts).detach().cpu().numpy())
            rows.append(np.concatenate(predicted).astype(np.float64).mean(axis=0))
    if rows and len(rows[0]) != cells.n_vars:
        raise RuntimeError(f"STATE predicted {len(rows[0])} values per cell for {cells.n_vars} genes.")
    keys = ["_".join(p) for p in request["perturbations"]]
    protocol.write_predictions(request["output"], keys, np.vstack(rows) if rows else np.zeros((0, cells.n_vars)),
                               [""] * len(keys), [str(g) for g in cells.var["gene_name"]])
    return {"device": device}


if __name__ == "__main__":
    protocol.main({"fit": fit, "predict": predict})

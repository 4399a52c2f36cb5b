"""CellFlow (cellflow-tools) worker: flow matching from control to perturbed cells in PCA space. Run by linpert.

    python cellflow_worker.py REQUEST.json

``fit`` follows CellFlow's own workflow: ``cellflow.preprocessing.centered_pca`` on the training cells, a
``CellFlow(adata, solver="otfm")`` whose perturbation is the set of its target genes (``gene1``, ``gene2``; the
unused slot is ``ctrl``, a zero vector), ``prepare_data``, ``prepare_model`` (CellFlow's defaults unless the request
changes them) and ``train``. A gene's representation is a one-hot vector over the target genes seen in training, or
a row of the table the user gives (CellFlow's tutorials use protein-language-model embeddings of the genes). A
perturbation with a gene that has no representation is refused (NaN with a reason), never embedded as zeros, which
CellFlow reads as "no perturbation". ``predict`` moves control cells with ``CellFlow.predict`` and returns the mean
of the predicted cells, mapped back to genes with ``cellflow.preprocessing.reconstruct_pca``.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _protocol as protocol  # noqa: E402

CONTROL, SLOTS = "ctrl", ("gene1", "gene2")


def _device(requested: str) -> str:
    """JAX's device for ``auto`` / ``cpu`` / ``cuda`` (the protocol's ``resolve_device`` asks torch, which this
    environment does not have)."""
    if requested == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"  # before JAX starts
    import jax

    gpu = jax.default_backend() == "gpu"
    if requested == "cuda" and not gpu:
        raise RuntimeError("device='cuda' was asked for, but JAX sees no GPU (install jax[cuda12] in the environment).")
    return "cuda" if gpu else "cpu"


def _representations(request: dict) -> dict:
    """Gene -> vector: the user's table where given, else one-hot over the genes the training conditions target."""
    import numpy as np

    table = request["inputs"].get("perturbation_embedding")
    if table:
        import pandas as pd

        frame = pd.read_csv(table, index_col=0) if table.endswith(".csv") else pd.read_parquet(table)
        vectors = {str(g): row.to_numpy(np.float32) for g, row in frame.iterrows()}
    else:
        genes = sorted({g for c in request["train"] for g in protocol.condition_genes(c)})
        vectors = {g: np.eye(len(genes), dtype=np.float32)[i] for i, g in enumerate(genes)}
    width = len(next(iter(vectors.values())))
    return {**vectors, CONTROL: np.zeros(width, dtype=np.float32)}


def _slots(conditions) -> dict:
    """The ``gene1`` / ``gene2`` columns: a condition's targets, ``ctrl`` where it has fewer than two."""
    import pandas as pd

    targets = [protocol.condition_genes(str(c)) + [CONTROL, CONTROL] for c in conditions]
    return {slot: pd.Categorical([t[i] for t in targets]) for i, slot in enumerate(SLOTS)}


def fit(request: dict) -> dict:
    device = _device(request["device"])  # before JAX starts
    import anndata
    import cellflow.preprocessing as cfpp
    import numpy as np
    import pandas as pd
    from cellflow.model import CellFlow

    params, model_dir = request["params"], request["model_dir"]
    protocol.seed_everything(request["seed"])
    cells = anndata.read_h5ad(request["cells"])
    conditions = cells.obs["condition"].astype(str)
    cells = cells[conditions.isin([*request["train"], CONTROL]).to_numpy()].copy()
    cells.X = np.asarray(cells.X.toarray() if hasattr(cells.X, "toarray") else cells.X, dtype=np.float32)
    cfpp.centered_pca(cells, n_comps=int(params["n_components"]), keep_centered_data=False)
    os.makedirs(model_dir, exist_ok=True)
    np.savez(os.path.join(model_dir, "pca.npz"), means=cells.varm["X_mean"], pcs=cells.varm["PCs"])
    vectors = _representations(request)
    conditions = cells.obs["condition"].astype(str)
    missing = sorted({g for c in conditions for g in protocol.condition_genes(c) if g not in vectors})
    dropped = {c: f"no representation for {', '.join(g for g in protocol.condition_genes(c) if g not in vectors)}"
               for c in sorted(set(conditions)) if any(g in missing for g in protocol.condition_genes(c))}
    cells = cells[~conditions.isin(list(dropped)).to_numpy()].copy()
    obs = pd.DataFrame({**_slots(cells.obs["condition"]), "control": cells.obs["condition"].astype(str) == CONTROL},
                       index=cells.obs_names)
    train = anndata.AnnData(cells.X, obs=obs, obsm={"X_pca": cells.obsm["X_pca"]}, uns={"genes": vectors})
    flow = CellFlow(train, solver="otfm")
    flow.prepare_data(sample_rep="X_pca", control_key="control", perturbation_covariates={"genes": SLOTS},
                      perturbation_covariate_reps={"genes": "genes"}, max_combination_length=2, null_value=0.0)
    flow.prepare_model(seed=int(request["seed"]), **params["model"])
    start = time.perf_counter()
    flow.train(num_iterations=int(params["num_iterations"]), batch_size=int(params["batch_size"]),
               valid_freq=int(params["num_iterations"]) + 1)  # no validation data: CellFlow trains a fixed budget
    train_seconds = time.perf_counter() - start
    flow.save(model_dir, file_prefix="linpert", overwrite=True)
    names = sorted(vectors)  # CellFlow reads each condition's representations from the source cells' uns
    np.savez(os.path.join(model_dir, "representations.npz"), genes=np.array(names), vectors=np.vstack(
        [vectors[g] for g in names]))
    return {"device": device, "train_seconds": train_seconds, "train_conditions": request["train"],
            "val_conditions": [], "dropped": dropped, "predictable_genes": sorted(g for g in vectors if g != CONTROL)}


def predict(request: dict) -> dict:
    """CellFlow's prediction from control cells for each requested perturbation; the mean predicted cell, in genes."""
    device = _device(request["device"])  # before JAX starts
    import anndata
    import cellflow.preprocessing as cfpp
    import numpy as np
    import pandas as pd
    from cellflow.model import CellFlow

    params, model_dir = request["params"], request["model_dir"]
    flow = CellFlow.load(os.path.join(model_dir, "linpert_CellFlow.pkl"))
    with np.load(os.path.join(model_dir, "representations.npz")) as saved:
        vectors = dict(zip(saved["genes"].astype(str), saved["vectors"]))
    unknown = sorted({g for p in request["perturbations"] for g in p if g not in vectors})
    if unknown:
        raise ValueError(f"CellFlow has no representation for {unknown[:5]}; linpert asks only for its genes.")
    with np.load(os.path.join(model_dir, "pca.npz")) as saved:
        means, pcs = saved["means"], saved["pcs"]
    cells = anndata.read_h5ad(request["cells"])
    ctrl = cells[cells.obs["condition"].astype(str) == CONTROL]
    ctrl_X = np.asarray(ctrl.X.toarray() if hasattr(ctrl.X, "toarray") else ctrl.X, dtype=np.float32)
    labels = [protocol.condition_name(p) for p in request["perturbations"]]
    # one set of control cells, drawn by the seed alone, moved for every perturbation in one call (one compiled
    # solve): a perturbation's prediction depends on the seed and its own genes, never on what else is asked
    n = int(params["n_control_cells"])
    chosen = np.random.default_rng(int(request["seed"])).choice(ctrl_X.shape[0], size=n, replace=ctrl_X.shape[0] < n)
    source = anndata.AnnData(ctrl_X[chosen], obs=pd.DataFrame({"control": np.ones(n, dtype=bool)},
                                                              index=[f"ctrl{i}" for i in range(n)]),
                             uns={"genes": vectors})
    cfpp.project_pca(source, ref_means=means, ref_pcs=pcs)
    rows, predicted = [], {}
    if labels:
        covariates = pd.DataFrame({**_slots(labels), "control": False, "condition": labels})
        predicted = flow.predict(source, covariate_data=covariates, sample_rep="X_pca", condition_id_key="condition",
                                 rng=None)
    for label in labels:  # one at a time: a stacked product would round differently with what else is asked
        mean = anndata.AnnData(np.zeros((1, cells.n_vars), dtype=np.float32),
                               obsm={"X_pca": np.asarray(predicted[label]).mean(axis=0, keepdims=True)})
        cfpp.reconstruct_pca(mean, use_rep="X_pca", ref_means=means, ref_pcs=pcs)
        rows.append(np.asarray(mean.layers["X_recon"], dtype=np.float64)[0])
    keys = ["_".join(p) for p in request["perturbations"]]
    values = np.vstack(rows) if rows else np.zeros((0, cells.n_vars))
    protocol.write_predictions(request["output"], keys, values, [""] * len(keys),
                               [str(g) for g in cells.var["gene_name"]])
    return {"device": device}


if __name__ == "__main__":
    protocol.main({"fit": fit, "predict": predict})

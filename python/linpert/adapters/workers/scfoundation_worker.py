"""scFoundation worker: its GEARS fork (from the scFoundation repository) on linpert's split. Run by linpert.

It also runs plain GEARS from the fork (``params.fork_model == "gears"``), as the paper's ``run_gears.py`` did on
Norman.

    python scfoundation_worker.py REQUEST.json

The user gives the fork's folder (``inputs.code``, put first on ``sys.path`` so ``import gears`` is the fork), the
``models.ckpt`` checkpoint and GEARS' GO files. Settings follow the repository's ``run_sh/run_singlecell_norman.sh``.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _use_fork(request: dict) -> dict:
    """Import the fork as ``gears``, from inside its folder (it imports ``../model/load.py`` relative to the working
    directory), and give it what its data loading reads: ``obs['total_count']`` and ``gene2go.pkl``."""
    import anndata
    import numpy as np
    from gears_worker import _data_path

    code = os.path.abspath(request["inputs"]["code"])
    sys.path.insert(0, code)
    os.chdir(code)
    path = os.path.join(request["run_dir"], "scfoundation_cells.h5ad")
    if not os.path.exists(path):  # written once by fit; predict reads the same file
        cells = anndata.read_h5ad(request["cells"])
        cells.obs["total_count"] = np.asarray(cells.layers["counts"].sum(axis=1)).ravel().astype(float)
        cells.write_h5ad(path)
    request = {**request, "cells": path}
    data_path = _data_path(request)
    gene2go = os.path.join(data_path, "gene2go.pkl")
    if not os.path.lexists(gene2go):
        os.symlink(os.path.join(request["inputs"]["go_files"], "gene2go_all.pkl"), gene2go)
    return request


def _cpu_as_on_gpu(device: str) -> None:
    """Let the fork's loss run on the CPU as it does on a GPU.

    Its loss starts from ``torch.tensor(0.0, requires_grad=True).to(device)``: on a GPU ``.to`` returns a copy, on
    the CPU the leaf itself, and the loss's in-place ``+=`` on it then raises ("a leaf Variable that requires grad
    is being used in an in-place operation"). The fork's ``utils`` get a ``torch`` whose ``tensor(...,
    requires_grad=True)`` is such a copy; nothing else changes.
    """
    if device != "cpu":
        return
    import types

    import gears.utils
    import torch

    class CopyingTorch(types.ModuleType):
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def tensor(*args, **kwargs):
            made = torch.tensor(*args, **kwargs)
            return made.clone() if kwargs.get("requires_grad") else made

    gears.utils.torch = CopyingTorch("torch")


def fit(request: dict) -> dict:
    request = _use_fork(request)
    import gears.version
    from gears import GEARS
    from gears_worker import pert_data

    params = request["params"]
    protocol.seed_everything(request["seed"])
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    data, split, dropped = pert_data(request, request["train"], request["val"], batch_size=params["batch_size"],
                                     test_batch_size=params["test_batch_size"])
    _cpu_as_on_gpu(device)
    model = GEARS(data, device=device)
    if params.get("fork_model") == "gears":  # plain GEARS from the fork: the paper's run_gears.py on Norman
        model.model_initialize(hidden_size=params["hidden_size"])
        start = time.perf_counter()
        model.train(epochs=params["epochs"], lr=params["lr"], weight_decay=params["weight_decay"])
    else:
        model.model_initialize(
            hidden_size=params["hidden_size"], model_type=params["model_type"], bin_set=params["bin_set"],
            load_path=request["inputs"]["checkpoint"], finetune_method=params["finetune_method"],
            accumulation_steps=params["accumulation_steps"], mode="v1", highres=0,
        )
        start = time.perf_counter()
        model.train(epochs=params["epochs"], lr=params["lr"])
    train_seconds = time.perf_counter() - start
    model.save_model(request["model_dir"])
    with open(os.path.join(request["model_dir"], "linpert_params.json"), "w") as handle:
        json.dump(params, handle)
    return {"device": device, "train_seconds": train_seconds, "epochs": params["epochs"],
            "train_conditions": split["train"], "val_conditions": split["val"], "dropped": dropped,
            "predictable_genes": sorted(str(g) for g in data.pert_names),
            "peak_gpu_mib": protocol.gpu_peak_mib(device),
            "versions": {**protocol.versions(), "gears": f"{gears.version.__version__} (scFoundation's fork, "
                                                         f"{protocol.code_version(request['inputs']['code'])})"}}


def predict(request: dict) -> dict:
    """The fork keeps GEARS' model API (load_pretrained, predict), so GEARS' own prediction step serves it."""
    request = _use_fork(request)
    from gears_worker import predict as gears_predict

    return gears_predict(request)


import _protocol as protocol  # noqa: E402

if __name__ == "__main__":
    protocol.main({"fit": fit, "predict": predict})

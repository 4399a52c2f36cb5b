"""scFoundation worker: its GEARS fork (from the scFoundation repository) on linpert's split. Run by linpert.

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


def _use_fork(request: dict) -> None:
    sys.path.insert(0, os.path.abspath(request["inputs"]["code"]))


def fit(request: dict) -> dict:
    _use_fork(request)
    from gears import GEARS
    from gears_worker import pert_data

    params = request["params"]
    protocol.seed_everything(request["seed"])
    device = protocol.resolve_device(request["device"])
    protocol.reset_gpu_peak(device)
    data, split, dropped = pert_data(request, request["train"], request["val"], batch_size=params["batch_size"],
                                     test_batch_size=params["test_batch_size"])
    model = GEARS(data, device=device)
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
            "peak_gpu_mib": protocol.gpu_peak_mib(device)}


def predict(request: dict) -> dict:
    """The fork keeps GEARS' model API (load_pretrained, predict), so GEARS' own prediction step serves it."""
    _use_fork(request)
    from gears_worker import predict as gears_predict

    return gears_predict(request)


import _protocol as protocol  # noqa: E402

if __name__ == "__main__":
    protocol.main({"fit": fit, "predict": predict})

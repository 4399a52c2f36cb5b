"""Helpers every linpert worker shares: read the request, seed, pick the device, measure, write results atomically.

Workers run in the model's own environment (this interpreter, a pinned venv or a container), where linpert itself
is not installed: this file depends on the standard library, numpy and (lazily) anndata / torch only. The protocol
is described in ``linpert/adapters/_base.py``.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

PROTOCOL = 1
#: The distributions whose versions a worker reports (those installed), so a run records what it ran with.
STACK_DISTRIBUTIONS = ("torch", "cpa-tools", "scvi-tools", "lightning", "scgpt", "cell-gears", "torch-geometric",
                       "arc-state", "cell-load", "cellflow-tools", "jax", "uce-model", "transformers", "datasets",
                       "anndata", "numpy", "scanpy")


def main(actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """Run ``actions[request['action']](request)`` and write its report; exit 1 with a traceback on failure."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} REQUEST.json")
    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    if request.get("protocol") != PROTOCOL:
        sys.exit(f"This worker speaks protocol {PROTOCOL}, the request is protocol {request.get('protocol')!r}.")
    action = request["action"]
    if action not in actions:
        sys.exit(f"Unknown action {action!r}; this worker knows {sorted(actions)}.")
    start = time.perf_counter()
    try:
        report = actions[action](request)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    report.setdefault("seconds", time.perf_counter() - start)
    report.setdefault("peak_rss_mib", peak_rss_mib())
    report.setdefault("versions", versions())
    write_json(request["report"], report)


def versions() -> dict[str, str]:
    """``{"python": "3.11.7", "torch": "2.0.0", ...}`` for the installed :data:`STACK_DISTRIBUTIONS`."""
    from importlib import metadata

    found = {"python": "%d.%d.%d" % sys.version_info[:3]}
    for name in STACK_DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def code_version(folder: str) -> str:
    """What a model's own code given as a folder is: its ``setup.py`` version and git commit, where it has them."""
    import re
    import subprocess

    found = []
    setup = os.path.join(folder, "setup.py")
    if os.path.isfile(setup):
        match = re.search(r"version\s*=\s*[\"']([^\"']+)", open(setup).read())
        found += [match.group(1)] if match else []
    try:
        commit = subprocess.run(["git", "-C", folder, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        found += [f"commit {commit.stdout.strip()}"] if commit.returncode == 0 else []
    except OSError:  # no git here
        pass
    return ", ".join(found) or f"code in {folder}"


def condition_genes(condition: str) -> list[str]:
    """The target genes of a condition in GEARS' spelling (``"A+B"``, ``"A+ctrl"``; none for ``"ctrl"``)."""
    return [gene for gene in condition.split("+") if gene != "ctrl"]


def condition_name(genes: list[str]) -> str:
    """GEARS' spelling of a perturbation of these genes: ``"A+ctrl"`` for one, ``"A+B"`` for two."""
    return genes[0] + "+ctrl" if len(genes) == 1 else "+".join(genes)


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # a worker without torch
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch sees no CUDA device; use device='auto' or 'cpu'.")
    return device


def reset_gpu_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def gpu_peak_mib(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_json(path: str, content: Any) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            json.dump(content, handle, indent=1, default=_plain)

    atomic(path, write)


def write_predictions(path: str, keys: list[str], values, reasons: list[str], genes: list[str]) -> None:
    """Predictions as h5ad: rows ``keys`` (genes joined by ``_``), ``obs['reason']``, columns the gene symbols."""
    import anndata
    import numpy as np
    import pandas as pd

    obs = pd.DataFrame({"reason": [str(r) for r in reasons]}, index=pd.Index([str(k) for k in keys]))
    var = pd.DataFrame(index=pd.Index([str(g) for g in genes]))
    adata = anndata.AnnData(X=np.asarray(values, dtype=np.float64), obs=obs, var=var)
    atomic(path, lambda tmp: adata.write_h5ad(tmp))


def write_embedding(path: str, conditions: list[str], embedding) -> None:
    """A per-condition embedding as ``.npz``: ``conditions`` (names) and ``embedding`` (conditions × dimensions)."""
    import numpy as np

    def save(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, conditions=np.asarray(conditions, dtype=str), embedding=np.asarray(embedding))

    atomic(path, save)


def atomic(path: str, write: Callable[[str], Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Cannot write {type(value).__name__} to JSON")

"""scFoundation's GEARS fork through linpert's adapter, on a clone of its repository and a random checkpoint.

    python benchmarks/scfoundation_fork.py --clone PATH/TO/scFoundation [--cells 8] [--epochs 1] [--keep DIR]

No registry serves the fork (github.com/biomap-research/scFoundation, folder ``GEARS``), so this runs as a user with
a clone would: a small Norman-like screen simulated on scFoundation's 19,264 genes (``model/OS_scRNA_gene_index
.19264.tsv``: its encoder reads exactly those), a randomly initialised ``models.ckpt`` in the checkpoint's format
(``{"gene": {"config": ..., "state_dict": ...}}``, the ``MaeAutobin`` built by the clone's own
``model/pretrainmodels``), GEARS' GO files for the screen's genes, then ``ScFoundationModel`` fit and predict on the
double split. It prints the fit report or, when the fork fails, the end of the worker's log.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

import linpert
from linpert.adapters import ScFoundationModel, write_go_files
from linpert.datasets import simulate
from linpert.splits import double_split

# A small MaeAutobin: scFoundation's layout (bins, special tokens, 19,264 genes + 2 count tokens), tiny dimensions.
CHECKPOINT = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from pretrainmodels.select_model import select_model
hidden = int(sys.argv[3])
config = {"model": "mae_autobin", "n_class": 104, "seq_len": 19266, "bin_alpha": 1.0, "bin_num": 100,
          "pad_token_id": 103, "mask_token_id": 102,
          "encoder": {"hidden_dim": 16, "depth": 1, "heads": 2, "dim_head": 8, "module_type": "performer"},
          "decoder": {"hidden_dim": hidden, "depth": 1, "heads": 2, "dim_head": 8, "module_type": "performer"}}
torch.manual_seed(0)
model = select_model(config)
state = {"model." + k: v for k, v in model.state_dict().items()}
rnaseq = {k: config[k] for k in ("seq_len", "pad_token_id", "mask_token_id", "n_class", "bin_num", "bin_alpha")}
torch.save({"gene": {"config": {"model": "mae_autobin", "model_config": {"mae_autobin": config},
                                "dataset_config": {"rnaseq": rnaseq}}, "state_dict": state}}, sys.argv[2])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone", required=True, help="a clone of github.com/biomap-research/scFoundation")
    parser.add_argument("--cells", type=int, default=8, help="cells per condition")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--keep", help="keep the worker's run folder here")
    args = parser.parse_args()
    clone = Path(args.clone).resolve()
    genes = pd.read_csv(clone / "model" / "OS_scRNA_gene_index.19264.tsv", sep="\t")["gene_name"].astype(str)

    cells = simulate("norman", n_genes=len(genes), n_singles=6, n_doubles=6, cells_per_condition=args.cells,
                     n_control_cells=60, seed=0)
    rename = dict(zip(cells.var["gene_name"].astype(str), genes))  # the simulated genes onto scFoundation's list
    cells.var["gene_name"] = genes.to_numpy()
    cells.var_names = genes.to_numpy()
    cells.obs["condition"] = ["+".join(rename.get(g, g) for g in str(c).split("+")) for c in cells.obs["condition"]]
    bulk = linpert.pseudobulk(cells)
    split = double_split(bulk.obs_names, seed=1)
    folder = Path(tempfile.mkdtemp(prefix="linpert-scfoundation-"))
    go = write_go_files(sorted({g for c in bulk.obs_names for g in c.split("+") if g != "ctrl"}), folder / "go")
    model = ScFoundationModel(cells=cells, code=clone / "GEARS", checkpoint=folder / "models.ckpt", go_files=go,
                              validation=list(split.val), hidden_size=args.hidden, epochs=args.epochs, device="cpu",
                              work_dir=args.keep)
    python = model._launcher().python
    subprocess.run([python, "-c", CHECKPOINT, str(clone / "model"), str(folder / "models.ckpt"), str(args.hidden)],
                   check=True)
    print(f"data: {cells.n_obs} cells x {cells.n_vars} genes; environment {python}", flush=True)
    t0 = time.perf_counter()
    try:
        model.fit(bulk[list(split.train)].copy())
        fit_s = time.perf_counter() - t0
        pred = model.predict(list(split.scored))
    except RuntimeError as err:
        print(f"FAILED after {time.perf_counter() - t0:.0f} s:\n{err}")
        raise SystemExit(1) from None
    report = {k: v for k, v in model.fit_report_.items() if k not in ("train_conditions", "predictable_genes")}
    print(json.dumps({"fit_seconds": fit_s, **report}, indent=1, default=str))
    print(f"predicted {pred.n_obs} conditions; finite rows: {int(pd.notna(pred.X).all(axis=1).sum())}")


if __name__ == "__main__":
    main()

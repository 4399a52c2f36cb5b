"""linpert's GEARS loader keeps exactly the conditions GEARS 0.1.2's own PertData keeps, as the paper loaded its data.

GEARS runs in a worker process of its own (as the GEARS adapter does): PertData.load writes caches into the dataset
folder and prints what it drops, and its torch stack stays out of the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import linpert
from linpert.datasets import read_gears
from linpert.splits import simulation_split

from test_readers import GEARS_CONDITIONS, GEARS_KEEPS, gears_cells, write_go_files

REPO = Path(__file__).resolve().parents[2]
GEARS_LOAD = """
import json, sys
import gears.version
from gears import PertData
assert gears.version.__version__ == "0.1.2", gears.version.__version__
data = PertData(sys.argv[1])
data.load(data_path=sys.argv[2])
print("KEPT " + json.dumps(data.adata.obs["condition"].astype(str).unique().tolist()))
"""


def _gears_keeps(data_path: Path, folder: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", GEARS_LOAD, str(data_path), str(folder)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("KEPT ", 1)[1])


def test_read_gears_keeps_exactly_what_gears_pertdata_keeps(tmp_path):
    pytest.importorskip("gears", reason="the test command installs linpert[gears]: cell-gears 0.1.2")
    data_path = tmp_path / "data"
    write_go_files(data_path, ["A", "B", "C"])
    folder = data_path / "screen"
    folder.mkdir()
    gears_cells(GEARS_CONDITIONS, n_per=3).write_h5ad(folder / "perturb_processed.h5ad")

    with pytest.warns(UserWarning, match="dropped 4 conditions"):
        ours = read_gears(folder).obs["condition"].astype(str).unique().tolist()
    assert _gears_keeps(data_path, folder) == ours == GEARS_KEEPS


def test_the_paper_conditions_give_the_published_split_labels_with_nothing_extra(tmp_path):
    golden = json.loads((REPO / "inst" / "extdata" / "splits" / "adamson_simulation.json").read_text())
    paper = golden["conditions"]  # Adamson as the paper had it: 81 singles and ctrl
    targets = sorted({c.split("+")[0] for c in paper if c != "ctrl"})
    extra = ["NOGO1+ctrl", "NOGO2+ctrl", "ONLYGO+ctrl"]  # in the file, outside GEARS' graph
    write_go_files(tmp_path, targets, without_go=("NOGO1", "NOGO2"))
    (tmp_path / "adamson").mkdir()
    gears_cells([*paper, *extra], n_per=1).write_h5ad(tmp_path / "adamson" / "perturb_processed.h5ad")

    with pytest.warns(UserWarning, match="dropped 3 conditions"):
        cells = read_gears(tmp_path / "adamson")
    pb = linpert.pseudobulk(cells)
    assert sorted(pb.obs_names) == sorted(paper)
    for seed, parts in golden["gears_0.1.2"].items():
        split = simulation_split(pb.obs_names, seed=int(seed))
        assert {p: list(getattr(split, p)) for p in parts} == parts
    # without the filter the extra conditions enter the split and move the paper's labels
    unfiltered = linpert.pseudobulk(read_gears(tmp_path / "adamson", gears_filter=False))
    assert list(simulation_split(unfiltered.obs_names, seed=1).train) != golden["gears_0.1.2"]["1"]["train"]


def test_a_run_on_loaded_data_names_what_loading_dropped(tmp_path):
    from linpert import benchmark
    from linpert.report import write_report

    write_go_files(tmp_path, ["A", "B", "C", "D"])
    (tmp_path / "screen").mkdir()
    conditions = ["ctrl", "A+ctrl", "B+ctrl", "C+ctrl", "D+ctrl", "A+B", "C+D", "A+C", "B+D", "NOGO+ctrl"]
    gears_cells(conditions, n_per=3, n_genes=8).write_h5ad(tmp_path / "screen" / "perturb_processed.h5ad")
    with pytest.warns(UserWarning, match="dropped 1 condition"):
        pb = linpert.pseudobulk(read_gears(tmp_path / "screen"))  # the pseudobulk keeps what loading dropped
    assert pb.uns["linpert"]["dropped_conditions"] == ["NOGO+ctrl"] and "NOGO+ctrl" not in pb.obs_names
    out = tmp_path / "run"
    benchmark.run(pb, split="double", seeds=[1], models=["additive"], out=out, progress=False, interactions=False,
                  n_genes=8)
    assert json.loads((out / "run.json").read_text())["dropped_conditions"]["names"] == ["NOGO+ctrl"]
    report = write_report(out, tmp_path / "report.html").read_text()
    assert "conditions dropped on loading" in report and "NOGO+ctrl" in report

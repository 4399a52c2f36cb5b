"""Tests of linpert.adapters: GEARS end to end, the worker protocol, environments, the linear decoders."""

from __future__ import annotations

import json
import pickle
import sys
import textwrap
import threading
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats

import linpert
from linpert.adapters import (
    ADAPTERS,
    EmbeddingDecoder,
    GearsModel,
    GeneformerDecoder,
    ScGptModel,
    container_command,
    de_keys,
    ensure_venv,
    gears_cells,
    reconstruct_counts,
    ridge_fit,
    validation_conditions,
    venv_path,
    write_go_files,
)
from linpert.adapters._environment import Launcher
from linpert.datasets import simulate


@pytest.fixture(scope="module")
def cells():
    return simulate("norman", n_genes=60, n_singles=8, n_doubles=6, cells_per_condition=12, n_control_cells=60, seed=0)


@pytest.fixture(scope="module")
def bulk(cells):
    return linpert.pseudobulk(cells)


def _split(bulk):
    doubles = [c for c in bulk.obs_names if "ctrl" not in c]
    test = doubles[:3]
    return [c for c in bulk.obs_names if c not in test], test


# -- GEARS, end to end ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_gears_trains_on_train_only_and_predicts_every_requested_row(cells, bulk, tmp_path):
    train, test = _split(bulk)
    outside = "STAT1"  # a perturbed gene left out of the GO files: GEARS cannot predict it
    assert any(outside in c for c in train) and not any(outside in c for c in test)
    genes = [g for g in bulk.var_names if g != outside]
    go = write_go_files(genes, tmp_path / "go", seed=1)
    # a seed whose held-out validation condition GEARS can use
    seed = next(s for s in range(10) if outside not in validation_conditions(train, 0.1, seed=s)[0])
    model = GearsModel(cells=cells, go_files=go, epochs=1, work_dir=tmp_path / "work", seed=seed)
    model.fit(bulk[train].copy())

    # the test split never reached the worker: not in its cells, not in its split
    split = pickle.loads((model.run_dir_ / "gears_split.pkl").read_bytes())
    seen = set(anndata.read_h5ad(model.run_dir_ / "cells.h5ad").obs["condition"].astype(str))
    assert not set(test) & (set(split["train"]) | set(split["val"]) | seen)
    assert split["val"] == model.val_conditions_ and len(model.val_conditions_) == 1
    assert not set(split["val"]) & set(split["train"])
    assert set(model.dropped_) == {c for c in train if outside in c}
    assert model.fit_seconds_ > model.train_seconds_ > 0 and model.peak_memory_mib_ > 50
    assert model.device_ == "cpu"

    asked = [test[2], "ctrl", f"ctrl+{outside}", test[0], test[1]]
    pred = model.predict(asked)
    assert list(pred.obs_names) == [test[2], "ctrl", f"{outside}+ctrl", test[0], test[1]]
    assert list(pred.var_names) == list(bulk.var_names)
    finite = np.isfinite(pred.X).all(axis=1)
    assert finite.tolist() == [True, True, False, True, True]
    assert pred.obs["reason"].iloc[2] == f"{outside} not in gears's perturbation graph"
    np.testing.assert_allclose(pred.X[1], bulk["ctrl"].X.ravel())
    # GEARS predicts log expression near the data's range, and differently per perturbation
    assert np.abs(pred.X[0] - bulk["ctrl"].X.ravel()).max() < 10
    assert not np.allclose(pred.X[0], pred.X[3])
    assert model.predict_seconds_ > 0
    # the worker's raw output is keyed like GEARS (genes joined by '_')
    raw = anndata.read_h5ad(model.run_dir_ / "predictions.h5ad")
    assert list(raw.obs_names) == [test[2].replace("+", "_"), test[0].replace("+", "_"), test[1].replace("+", "_")]


def test_gears_needs_go_files_and_a_known_environment(cells, bulk):
    with pytest.raises(ValueError, match="go_files="):
        GearsModel(cells=cells, epochs=1).fit(bulk)
    with pytest.raises(ValueError, match="Unknown environment 'conda'"):
        GearsModel(cells=cells, go_files=".", environment="conda").fit(bulk)
    with pytest.raises(ValueError, match="needs cell-level data"):
        GearsModel(go_files=".").fit(bulk)


def test_missing_stack_names_the_extra(cells, bulk):
    with pytest.raises(ImportError, match=r"pip install 'linpert\[scgpt\]'.*environment='venv'"):
        ScGptModel(cells=cells, checkpoint=".", environment="current").fit(bulk)


# -- the worker protocol with a fake worker ------------------------------------------------------------------
FAKE_WORKER = """
import json, sys
import anndata, numpy as np, pandas as pd
request = json.load(open(sys.argv[1]))
if request["params"].get("fail"):
    print("boom: the fake model exploded"); sys.exit(3)
if request["action"] == "fit":
    cells = anndata.read_h5ad(request["cells"])
    report = {"device": "cpu", "train_seconds": 0.5, "peak_rss_mib": 123.0, "train_conditions": request["train"],
              "val_conditions": request["val"], "dropped": {}, "predictable_genes": None,
              "n_cells": int(cells.n_obs), "checkpoint": request["inputs"]["checkpoint"]}
else:
    genes = list(anndata.read_h5ad(request["cells"]).var["gene_name"])[::-1]   # another gene order
    perts = request["perturbations"][::-1]                                   # another row order
    X = np.array([[len(p) * 100 + i for i in range(len(genes))] for p in perts], dtype=float)
    obs = pd.DataFrame({"reason": ["no luck" if "NUP1" in p else "" for p in perts]},
                       index=["_".join(p) for p in perts])
    anndata.AnnData(X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(request["output"])
    report = {"device": "cuda", "peak_gpu_mib": 7.0, "peak_rss_mib": 50.0}
report["seconds"] = 1.0
json.dump(report, open(request["report"], "w"))
"""


@pytest.fixture
def fake_scgpt(tmp_path):
    script = tmp_path / "fake_worker.py"
    script.write_text(textwrap.dedent(FAKE_WORKER))

    class FakeScGpt(ScGptModel):
        worker = str(script)  # an absolute path replaces the shipped worker
        stack = ()

    return FakeScGpt


def test_file_protocol_maps_worker_output_back(fake_scgpt, cells, bulk, tmp_path):
    train, test = _split(bulk)
    model = fake_scgpt(cells=cells, checkpoint=tmp_path, environment="current", validation=[test[1]])
    model.fit(bulk[train].copy())
    request = json.loads((model.run_dir_ / "request-fit.json").read_text())
    assert request["train"] == train and request["val"] == [test[1]]
    assert request["params"]["lr"] == 1e-4 and request["params"]["batch_size"] == 64
    assert model.fit_report_["checkpoint"] == str(tmp_path.resolve())
    assert model.fit_report_["n_cells"] == int(cells.obs["condition"].isin([*train, test[1]]).sum())
    assert model.peak_memory_mib_ == 123.0 and model.train_seconds_ == 0.5

    pred = model.predict([test[0], "ctrl", "NUP1+ctrl", test[2]])
    genes = list(bulk.var_names)
    n = len(genes)
    # the fake writes value len(perturbation)*100 + position in its reversed gene order
    np.testing.assert_array_equal(pred.X[0], 200 + (n - 1 - np.arange(n)))
    np.testing.assert_array_equal(pred.X[3], 200 + (n - 1 - np.arange(n)))
    np.testing.assert_allclose(pred.X[1], bulk["ctrl"].X.ravel())
    assert np.isnan(pred.X[2]).all() and pred.obs["reason"].tolist() == ["", "", "no luck", ""]
    assert model.predict_peak_memory_mib_ == 7.0  # the GPU peak when the worker ran on CUDA
    sent = json.loads((model.run_dir_ / "request-predict.json").read_text())["perturbations"]
    assert sent == [list(parse.genes) for parse in map(linpert.parse_condition, [test[0], "NUP1+ctrl", test[2]])]


def test_worker_failure_shows_its_log(fake_scgpt, cells, bulk, tmp_path):
    model = fake_scgpt(cells=cells, checkpoint=tmp_path, environment="current")
    model._params = lambda: {"fail": True}
    with pytest.raises(RuntimeError, match=r"(?s)failed to fit \(exit code 3.*boom: the fake model exploded"):
        model.fit(bulk)


# -- environments -----------------------------------------------------------------------------------------
def test_container_commands_mount_run_workers_and_inputs(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.pt").write_text("x")
    docker = Launcher("docker", "python", image="linpert/scgpt:0.2.1", gpu=True)
    assert docker.path(tmp_path / "ckpt") == "/linpert/inputs/0"
    assert docker.path(tmp_path / "ckpt" / "model.pt") == "/linpert/inputs/0/model.pt"
    cmd = docker.command("/pkg/workers/scgpt_worker.py", "request-fit.json", run_dir=tmp_path / "run")
    assert cmd[:5] == ["docker", "run", "--rm", "--network", "none"]
    assert "--gpus" in cmd and cmd[cmd.index("--gpus") + 1] == "all"
    volumes = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-v"]
    assert volumes == [
        f"{(tmp_path / 'run').resolve()}:/linpert/run",
        "/pkg/workers:/linpert/workers:ro",
        f"{(tmp_path / 'ckpt').resolve()}:/linpert/inputs/0:ro",
    ]
    assert cmd[-4:] == ["linpert/scgpt:0.2.1", "python", "/linpert/workers/scgpt_worker.py",
                        "/linpert/run/request-fit.json"]
    podman = container_command("podman", "img", run_dir="/r", worker_dir="/w", gpu=True)
    assert ["--device", "nvidia.com/gpu=all"] == podman[podman.index("--device"):podman.index("--device") + 2]
    assert "--gpus" not in container_command("docker", "img", run_dir="/r", worker_dir="/w", gpu=False)
    with pytest.raises(ValueError, match="names no image"):
        GearsModel(cells=None, go_files=".", environment="docker:")._launcher()


def test_venv_path_depends_on_requirements_python_and_pip_args(tmp_path):
    a = venv_path(["six==1.16.0"], name="m", python="/usr/bin/python3", cache_dir=tmp_path)
    assert a == venv_path(["six==1.16.0"], name="m", python="/usr/bin/python3", cache_dir=tmp_path)
    assert a.parent == tmp_path / "envs" and a.name.startswith("m-")
    others = [
        venv_path(["six==1.17.0"], name="m", python="/usr/bin/python3", cache_dir=tmp_path),
        venv_path(["six==1.16.0"], name="m", python="/usr/bin/python3.10", cache_dir=tmp_path),
        venv_path(["six==1.16.0"], name="m", python="/usr/bin/python3", pip_args=["--pre"], cache_dir=tmp_path),
    ]
    assert len({a, *others}) == 4


@pytest.mark.slow
def test_venv_is_built_once_under_a_lock_and_reused(tmp_path):
    built: list[Path] = []
    errors: list[BaseException] = []

    def build():
        try:
            built.append(ensure_venv(["six>=1.16"], name="tiny", cache_dir=tmp_path))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(built)) == 1
    env = built[0]
    marker = json.loads((env / ".linpert-complete").read_text())
    assert marker["requirements"] == ["six>=1.16"]
    import subprocess

    out = subprocess.run([str(env / "bin" / "python"), "-c", "import six, sys; print(six.__version__, sys.prefix)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0].split(".")[:1] == ["1"] and out[1] == str(env)
    stamp = (env / ".linpert-complete").stat().st_mtime_ns
    assert ensure_venv(["six>=1.16"], name="tiny", cache_dir=tmp_path) == env  # reused, not rebuilt
    assert (env / ".linpert-complete").stat().st_mtime_ns == stamp


# -- cell data for the workers ----------------------------------------------------------------------------
def test_gears_cells_format_and_de_keys_match_welch_t(cells, bulk):
    adata = gears_cells(cells, ["ATP1+ctrl", "ctrl+FOX1"], genes=list(bulk.var_names[::-1]))
    assert sorted(set(adata.obs["condition"])) == ["ATP1+ctrl", "FOX1+ctrl", "ctrl"]
    assert list(adata.var["gene_name"]) == list(bulk.var_names[::-1])
    assert sparse.isspmatrix_csr(adata.X) and adata.X.dtype == np.float32
    row = adata.obs[adata.obs["condition"] == "FOX1+ctrl"].iloc[0]
    assert (row["dose_val"], row["control"]) == ("1+1", 0) and row["condition_name"] == "K562_FOX1+ctrl_1+1"

    keys = de_keys(adata)
    X = adata.X.toarray().astype(np.float64)
    pert, ctrl = X[adata.obs["condition"] == "ATP1+ctrl"], X[adata.obs["condition"] == "ctrl"]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.ttest_ind(pert, ctrl, equal_var=False).statistic
    t = np.nan_to_num(t, nan=0.0)
    expected = np.asarray(adata.var_names)[np.argsort(-np.abs(t), kind="stable")]
    ranked = keys["rank_genes_groups_cov_all"]["K562_ATP1+ctrl_1+1"]
    np.testing.assert_array_equal(np.abs(t)[adata.var_names.get_indexer(ranked)], np.abs(t)[
        adata.var_names.get_indexer(expected)])
    non_zero = np.flatnonzero(pert.mean(axis=0) != 0)
    np.testing.assert_array_equal(keys["non_zeros_gene_idx"]["K562_ATP1+ctrl_1+1"], non_zero)
    top = keys["top_non_zero_de_20"]["K562_ATP1+ctrl_1+1"]
    assert list(top) == [g for g in ranked if adata.var_names.get_loc(g) in set(non_zero)][:20]
    assert set(keys["rank_genes_groups_cov_all"]) == {"K562_ATP1+ctrl_1+1", "K562_FOX1+ctrl_1+1"}


def test_reconstructed_counts_equal_the_simulated_counts(cells):
    counts = reconstruct_counts(cells.X[:200])
    truth = cells.layers["counts"][:200].toarray()
    has_one = (truth == 1).any(axis=1)  # the reconstruction assumes a singleton count in the cell
    assert has_one.mean() > 0.9
    np.testing.assert_array_equal(counts.toarray()[has_one], truth[has_one])


def test_validation_conditions():
    train = ["ctrl", *[f"G{i}+ctrl" for i in range(20)]]
    val = validation_conditions(train, 0.1, seed=4)
    assert len(val) == 2 and set(val) < set(train) and "ctrl" not in val
    assert val == validation_conditions(train, 0.1, seed=4)
    assert validation_conditions(train, ["ctrl+X"], seed=0) == ["X+ctrl"]
    with pytest.raises(ValueError, match="also training conditions"):
        validation_conditions(train, ["G1+ctrl"], seed=0)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
        validation_conditions(train, 1.5, seed=0)


# -- linear decoders --------------------------------------------------------------------------------------
def test_ridge_fit_matches_sklearn_and_the_normal_equations():
    rng = np.random.default_rng(0)
    for n, p in ((30, 5), (8, 20)):  # primal and dual forms
        X, Y = rng.normal(size=(n, p)), rng.normal(size=(n, 7))
        W, b = ridge_fit(X, Y, alpha=1.0)
        from sklearn.linear_model import Ridge

        ref = Ridge(alpha=1.0, fit_intercept=True).fit(X, Y)
        np.testing.assert_allclose(W, ref.coef_.T, atol=1e-10)
        np.testing.assert_allclose(b, ref.intercept_, atol=1e-10)
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        np.testing.assert_allclose(W, np.linalg.solve(Xc.T @ Xc + np.eye(p), Xc.T @ Yc), atol=1e-10)


def test_decoder_from_obsm_and_from_a_file_agree(cells, bulk, tmp_path):
    rng = np.random.default_rng(1)
    cells = cells.copy()
    cells.obsm["X_geneformer"] = rng.normal(size=(cells.n_obs, 6))
    train, test = _split(bulk)
    model = GeneformerDecoder(cells=cells).fit(bulk[train].copy())
    pred = model.predict([*test, "ctrl"])

    condition = np.asarray(cells.obs["condition"], dtype=str)
    table = pd.DataFrame(cells.obsm["X_geneformer"]).groupby(condition).mean()
    E = table.loc[train].to_numpy()
    Y = bulk[train].X
    Ec, Yc = E - E.mean(0), Y - Y.mean(0)
    W = np.linalg.solve(Ec.T @ Ec + np.eye(6), Ec.T @ Yc)
    expected = (table.loc[[*test, "ctrl"]].to_numpy() - E.mean(0)) @ W + Y.mean(0)
    np.testing.assert_allclose(pred.X, expected, atol=1e-10)

    table.index = [c.replace("+ctrl", "").join(["ctrl+", ""]) if c.endswith("+ctrl") else c for c in table.index]
    table.columns = [f"d{i}" for i in range(6)]
    table.drop(index=test[0]).to_parquet(tmp_path / "emb.parquet")
    from_file = EmbeddingDecoder(embedding=tmp_path / "emb.parquet").fit(bulk[train].copy()).predict(test)
    np.testing.assert_allclose(from_file.X[1:], expected[1:3], atol=1e-10)
    assert np.isnan(from_file.X[0]).all() and "no embedding_decoder embedding" in from_file.obs["reason"].iloc[0]
    with pytest.raises(ValueError, match="either embedding="):
        EmbeddingDecoder().fit(bulk)


def test_adapter_registry():
    assert set(ADAPTERS) == {"gears", "scgpt", "scfoundation", "cpa", "geneformer", "uce", "scbert"}
    for name, cls in ADAPTERS.items():
        assert cls.name == name
    assert "torch" not in sys.modules  # importing the adapters never imports a model stack

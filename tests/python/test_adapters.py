"""Tests of linpert.adapters: GEARS end to end, the worker protocol, environments, the linear decoders."""

from __future__ import annotations

import json
import pickle
import shutil
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
    Runtime,
    ScBertDecoder,
    ScGptModel,
    Stack,
    StackInstallError,
    WorkerError,
    container_command,
    de_keys,
    ensure_venv,
    gears_cells,
    overwrite_targets,
    perturb_rank_encoding,
    rank_value_encoding,
    reconstruct_counts,
    ridge_fit,
    validation_conditions,
    venv_path,
    write_go_files,
)
from linpert.adapters._environment import Launcher
from linpert.adapters._scbert import scbert_embedding, scbert_preprocess
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
    assert json.loads((model.run_dir_ / "predict.json").read_text())["seconds"] > 0
    assert model.versions_["cell-gears"] == "0.1.2" and model.versions_["python"].startswith("3.")
    # the worker's raw output is keyed like GEARS (genes joined by '_')
    raw = anndata.read_h5ad(model.run_dir_ / "predictions.h5ad")
    assert list(raw.obs_names) == [test[2].replace("+", "_"), test[0].replace("+", "_"), test[1].replace("+", "_")]


def test_gears_needs_go_files_and_a_known_environment(cells, bulk):
    with pytest.raises(ValueError, match="go_files="):
        GearsModel(cells=cells, epochs=1).fit(bulk)
    with pytest.raises(ValueError, match="Unknown runtime 'conda'"):
        GearsModel(cells=cells, go_files=".", runtime="conda").fit(bulk)
    with pytest.raises(ValueError, match="needs cell-level data"):
        GearsModel(go_files=".").fit(bulk)


def test_missing_stack_names_an_extra_that_exists_or_the_stack(cells, bulk, monkeypatch):
    import importlib.util
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for name, cls in ADAPTERS.items():
        if getattr(cls, "extra", ""):
            assert cls.extra in extras, f"{name} names the extra {cls.extra!r}, which pyproject.toml lacks"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "gears" else real_find_spec(m, *a))
    with pytest.raises(ImportError, match=r"pip install 'linpert\[gears\]'.*runtime='venv'"):
        GearsModel(cells=cells, go_files=".", runtime="current")._launcher()
    hint = r"scgpt, gears cannot be imported here.*pip install -c constraints.txt scgpt==0\.2\.[14].*runtime='venv'"
    with pytest.raises(ImportError, match=hint):
        ScGptModel(cells=cells, checkpoint=".", runtime="current")._launcher()


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
        modules = ()

    return FakeScGpt


def _checkpoint_files(folder: Path, genes) -> Path:
    """A folder with scGPT's three checkpoint files (the weights a placeholder: the fake worker never reads them)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({g: i for i, g in enumerate(["<pad>", *genes])}))
    (folder / "args.json").write_text("{}")
    (folder / "best_model.pt").write_bytes(b"")
    return folder


def test_file_protocol_maps_worker_output_back(fake_scgpt, cells, bulk, tmp_path):
    train, test = _split(bulk)
    _checkpoint_files(tmp_path, bulk.var_names)
    model = fake_scgpt(cells=cells, checkpoint=tmp_path, runtime="current", validation=[test[1]])
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
    assert json.loads((model.run_dir_ / "predict.json").read_text())["peak_gpu_mib"] == 7.0
    sent = json.loads((model.run_dir_ / "request-predict.json").read_text())["perturbations"]
    assert sent == [list(parse.genes) for parse in map(linpert.parse_condition, [test[0], "NUP1+ctrl", test[2]])]


def test_worker_failure_shows_its_log(fake_scgpt, cells, bulk, tmp_path):
    _checkpoint_files(tmp_path, bulk.var_names)
    model = fake_scgpt(cells=cells, checkpoint=tmp_path, runtime="current")
    model._params = lambda: {"fail": True}
    with pytest.raises(WorkerError, match=r"(?s)failed to fit \(exit code 3.*boom: the fake model exploded"):
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
        GearsModel(cells=None, go_files=".", runtime="docker:")._launcher()


def test_venv_path_depends_on_requirements_python_and_pip_args(tmp_path):
    a = venv_path(["six==1.16.0"], name="m", python="/usr/bin/python3", cache_dir=tmp_path)
    assert a == venv_path(["six==1.16.0"], name="m", python="/usr/bin/python3", cache_dir=tmp_path)
    assert a.parent == tmp_path / "envs" and a.name.startswith("m-")
    others = [
        venv_path(["six==1.17.0"], name="m", python="/usr/bin/python3", cache_dir=tmp_path),
        venv_path(["six==1.16.0"], name="m", python="/usr/bin/python3.10", cache_dir=tmp_path),
        venv_path(Stack(("six==1.16.0",), pip_args=("--pre",)), name="m", python="/usr/bin/python3",
                  cache_dir=tmp_path),
        venv_path(Stack(("six==1.16.0",), constraints=("wheel<1",)), name="m", python="/usr/bin/python3",
                  cache_dir=tmp_path),
    ]
    assert len({a, *others}) == 5


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
    # with doubles in training, a double is held out: a held-out single would leave its gene untrained
    with_doubles = [*train, "G0+G1", "G2+G3", "G4+G5", "G6+G7"]
    for seed in range(5):
        assert all("ctrl" not in c for c in validation_conditions(with_doubles, 0.1, seed=seed))


# -- linear decoders --------------------------------------------------------------------------------------
def test_ridge_fit_matches_sklearn_and_the_normal_equations():
    rng = np.random.default_rng(0)
    for n, p in ((30, 5), (8, 20)):  # primal and dual forms
        X, Y = rng.normal(size=(n, p)), rng.normal(size=(n, 7))
        W, b = ridge_fit(X, Y, ridge=1.0)
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
    assert set(ADAPTERS) == {"gears", "scgpt", "scfoundation", "cpa", "state", "cellflow", "geneformer", "uce",
                             "scbert"}
    for name, cls in ADAPTERS.items():
        assert cls.name == name
    assert "torch" not in sys.modules  # importing the adapters never imports a model stack


# -- the foundation models' perturbed inputs ------------------------------------------------------------------
def _tiny_cells(X, conditions, genes, *, sparse_x=False):
    obs = pd.DataFrame({"condition": conditions}, index=[f"c{i}" for i in range(len(conditions))])
    X = np.asarray(X, dtype=np.float64)
    return anndata.AnnData(sparse.csr_matrix(X) if sparse_x else X, obs=obs, var=pd.DataFrame(index=genes))


@pytest.mark.parametrize("sparse_x", [False, True])
def test_overwrite_targets_by_hand(sparse_x):
    X = [[1, 2, 3], [4, 5, 6], [7, 8, 9],            # three control cells
         [10, 11, 12], [13, 14, 15],                  # A+ctrl
         [20, 21, 22]]                                # B+A (written in the other order)
    cells = _tiny_cells(X, ["ctrl", "ctrl", "ctrl", "ctrl+A", "A+ctrl", "B+A"], ["A", "B", "C"], sparse_x=sparse_x)
    out = overwrite_targets(cells)
    assert out.obs["condition"].tolist() == ["A+ctrl"] * 3 + ["B+A"] * 3
    assert out.obs["control_cell"].tolist() == ["c0", "c1", "c2"] * 2
    dense = out.X.toarray() if sparse_x else out.X
    np.testing.assert_array_equal(dense, [
        [10, 2, 3], [13, 5, 6], [10, 8, 9],          # A from perturbed cell i mod 2
        [20, 21, 3], [20, 21, 6], [20, 21, 9],      # both targets from the single B+A cell
    ])
    assert sparse.issparse(out.X) == sparse_x
    two = overwrite_targets(cells, ["A+ctrl"], n_control_cells=2, seed=0)
    assert two.n_obs == 2 and set(two.obs["control_cell"]) < {"c0", "c1", "c2"}
    first = two.X[:, 0].toarray().ravel() if sparse_x else two.X[:, 0]
    assert first.tolist() == [10, 13]
    with pytest.raises(ValueError, match="D not measured"):
        overwrite_targets(_tiny_cells(X, ["ctrl", "ctrl", "ctrl", "D+ctrl", "D+ctrl", "D+ctrl"], ["A", "B", "C"]))
    with pytest.raises(ValueError, match="no cells of C\\+ctrl"):
        overwrite_targets(cells, ["C+ctrl"])
    with pytest.raises(ValueError, match=r"n_control_cells must lie in \[1, 3\]"):
        overwrite_targets(cells, n_control_cells=4)


def test_rank_value_encoding_and_in_silico_perturbation_by_hand():
    medians = {"g1": 1.0, "g2": 2.0, "g3": 0.5, "g4": 1.0}
    tokens = {"g1": 101, "g2": 102, "g3": 103, "g4": 104}
    counts = np.array([
        [2, 4, 1, 0, 3],   # totals 10: g1 2000, g2 2000 (tie: gene order), g3 2000, ungenerated column 5 unknown
        [0, 0, 0, 5, 5],   # g4 only (the fifth gene has no token)
    ])
    genes = ["g1", "g2", "g3", "g4", "unknown"]
    encoded = rank_value_encoding(counts, genes, gene_medians=medians, token_ids=tokens)
    assert [e.tolist() for e in encoded] == [[101, 102, 103], [104]]
    short = rank_value_encoding(counts, genes, gene_medians=medians, token_ids=tokens, max_len=2)
    assert short[0].tolist() == [101, 102]
    shuffled = np.array([[1, 8, 1, 0, 0]])  # g2: 8/10*1e4/2 = 4000 > g3: 2000 > g1: 1000
    assert rank_value_encoding(shuffled, genes, gene_medians=medians, token_ids=tokens)[0].tolist() == [102, 103, 101]
    with pytest.raises(ValueError, match="Ensembl"):
        rank_value_encoding(counts, ["a", "b", "c", "d", "e"], gene_medians=medians, token_ids=tokens)
    with pytest.raises(ValueError, match="raw counts"):
        rank_value_encoding(-counts, genes, gene_medians=medians, token_ids=tokens)

    assert perturb_rank_encoding([101, 102, 103], [103], mode="overexpress").tolist() == [103, 101, 102]
    assert perturb_rank_encoding([101, 102, 103], [104, 101], mode="overexpress", max_len=3).tolist() == [104, 101, 102]
    assert perturb_rank_encoding([101, 102, 103], [102, 109], mode="delete").tolist() == [101, 103]
    with pytest.raises(ValueError, match="'overexpress' \\(CRISPRa\\) or 'delete'"):
        perturb_rank_encoding([1], [1], mode="knockdown")


# -- bad input: checkpoints, stacks, crashed workers ---------------------------------------------------------
def test_scgpt_checkpoint_problems_are_named_before_any_worker_starts(cells, bulk, tmp_path):
    model = ScGptModel(cells=cells, checkpoint=tmp_path / "ckpt", runtime="current")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        model.fit(bulk)
    folder = _checkpoint_files(tmp_path / "ckpt", bulk.var_names)
    (folder / "best_model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="lacks best_model.pt.*write_scgpt_checkpoint"):
        model.fit(bulk)
    _checkpoint_files(folder, ["OTHER1", "OTHER2"])
    with pytest.raises(ValueError, match=r"None of the data's 60 genes .* is in the scGPT vocabulary .*vocab.json"):
        model.fit(bulk)
    (folder / "vocab.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must map gene symbols to indices"):
        model.fit(bulk)


def test_scfoundation_names_the_gene_list_its_fork_needs(cells, bulk, tmp_path):
    model = linpert.adapters.ScFoundationModel(cells=cells, code=tmp_path, checkpoint=tmp_path, go_files=tmp_path,
                                               runtime="current")
    with pytest.raises(ValueError, match="exactly its 19,264 genes .*OS_scRNA_gene_index.19264.tsv; the data has 60"):
        model.fit(bulk)


def test_scbert_preprocesses_as_its_preprocess_script(cells):
    """Reference genes in the reference's order, zero where unmeasured; each cell scaled to 10,000; log2(1 + x)."""
    genes = list(cells.var_names)
    reference = ["NOT_MEASURED", *genes[::-1]]
    X = scbert_preprocess(cells.layers["counts"], genes, reference).toarray()
    counts = np.asarray(cells.layers["counts"].todense(), dtype=np.float64)[:, ::-1]
    expected = np.log2(1 + counts / counts.sum(axis=1, keepdims=True) * 1e4)
    np.testing.assert_allclose(X[:, 1:], expected, rtol=1e-6)
    assert X.dtype == np.float32 and not X[:, 0].any()
    with pytest.raises(ValueError, match="scBERT reads gene symbols"):
        scbert_preprocess(cells.layers["counts"], genes, ["ENSG01", "ENSG02"])


def test_scbert_names_what_its_model_folder_and_code_lack(cells, bulk, tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks panglao_pretrained.pth, data/gene2vec_16906.npy, data/panglao"):
        scbert_embedding(cells, tmp_path, code=tmp_path, train_conditions=list(bulk.obs_names))
    for name in ("panglao_pretrained.pth", "data/gene2vec_16906.npy", "data/panglao_10000.h5ad"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    with pytest.raises(FileNotFoundError, match="not scBERT's repository .* check out 262fd4b9"):
        scbert_embedding(cells, tmp_path, code=tmp_path, train_conditions=list(bulk.obs_names))
    with pytest.raises(ValueError, match="give all three, or embedding= a per-condition table"):
        ScBertDecoder(model=tmp_path).fit(bulk)


def test_scberts_defaults_are_those_of_its_finetune_script():
    import importlib.util

    from linpert.adapters._scbert import FINETUNE

    spec = json.loads((Path(__file__).parent / "paper_settings.json").read_text())["scbert"]
    assert FINETUNE == {k: v for k, v in spec["params"].items() if not k.startswith("_")}
    where = Path(linpert.adapters.__file__).parent / "workers" / "scbert_worker.py"
    loader = importlib.util.spec_from_file_location("scbert_worker", where)
    worker = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(worker)
    used = {"bin_num": worker.BIN_NUM, "dim": worker.DIM, "heads": worker.HEADS, "patience": worker.PATIENCE,
            "head_width": worker.HEAD_WIDTH}
    assert used == {k: v for k, v in spec["architecture"].items() if not k.startswith("_")}


def test_geneformers_paper_protocol_names_what_it_lacks(cells, bulk, tmp_path):
    from linpert.adapters._geneformer import geneformer_embedding

    for name in ("config.json", "token_dictionary.pkl", "gene_median_dictionary.pkl"):
        (tmp_path / name).write_bytes(pickle.dumps({"<pad>": 0}))
    with pytest.raises(FileNotFoundError, match="not Geneformer's repository .*in_silico_perturber.py"):
        geneformer_embedding(cells, tmp_path, code=tmp_path, train_conditions=list(bulk.obs_names))
    with pytest.raises(ValueError, match="give embedding= a per-condition table"):
        GeneformerDecoder(code=tmp_path).fit(bulk)
    (tmp_path / "geneformer").mkdir()
    (tmp_path / "geneformer" / "in_silico_perturber.py").touch()
    symbols = {"<pad>": 0, "<mask>": 1, "KLF1": 2}  # a dictionary keyed by symbols, not the cells' identifiers
    (tmp_path / "token_dictionary.pkl").write_bytes(pickle.dumps(symbols))
    for code in (tmp_path, None):  # the paper's protocol and the plain embedding
        with pytest.raises(ValueError, match="None of the cells' .* genes .* is in Geneformer's token dictionary, "
                                             "which keys genes by Ensembl ID \\(e.g. 'KLF1'\\)"):
            geneformer_embedding(cells, tmp_path, code=code, train_conditions=list(bulk.obs_names))


def test_geneformers_paper_protocol_leaves_its_training_to_geneformers_defaults(cells, bulk, tmp_path, monkeypatch):
    from linpert.adapters import _geneformer

    spec = json.loads((Path(__file__).parent / "paper_settings.json").read_text())["geneformer"]
    sent = {}
    monkeypatch.setattr(_geneformer, "embed_once", lambda runtime, **call: sent.update(call) or pd.DataFrame())
    folder = tmp_path / "model"  # Geneformer's dictionaries: what the adapter reads before the worker starts
    folder.mkdir()
    tokens = {"<pad>": 0, "<mask>": 1, **{g: i + 2 for i, g in enumerate(cells.var_names)}}
    (folder / "token_dictionary.pkl").write_bytes(pickle.dumps(tokens))
    (folder / "gene_median_dictionary.pkl").write_bytes(pickle.dumps(dict.fromkeys(cells.var_names, 1.0)))
    (folder / "config.json").write_text("{}")
    (tmp_path / "code" / "geneformer").mkdir(parents=True)
    (tmp_path / "code" / "geneformer" / "in_silico_perturber.py").touch()
    model = GeneformerDecoder(model=folder, code=tmp_path / "code", cells=cells)
    _geneformer.geneformer_embedding(cells, folder, code=tmp_path / "code", train_conditions=list(bulk.obs_names))
    params = sent["request"]["params"]
    assert params["training_args"] == spec["classifier"]["training_args"]
    assert params["mode"] == model.mode == spec["perturber"]["mode"] and sent["action"] == "finetune_embed"
    assert model.preset == "paper" and GeneformerDecoder(model=folder).preset == "linpert"
    assert set(params["perturbations"]) == set(bulk.obs_names) and params["perturbations"]["ctrl"] == []


def test_gears_runs_from_scfoundations_fork_with_the_same_settings_as_the_papers_norman_run(tmp_path):
    from linpert.adapters._gears import FORK_STACKS, FORK_VERSION, SCFOUNDATION_COMMIT

    spec = json.loads((Path(__file__).parent / "paper_settings.json").read_text())["gears"]
    fork = tmp_path / "GEARS"
    (fork / "gears").mkdir(parents=True)
    (fork / "gears" / "version.py").write_text(f"__version__ = '{spec['norman']['gears_version']}'\n")
    model = GearsModel(go_files=tmp_path, code=fork)
    assert model._params() == {**GearsModel()._params(), "fork_model": "gears"} and spec["norman"]["same_params"]
    norman = spec["norman"]
    assert (SCFOUNDATION_COMMIT, FORK_VERSION) == (norman["scfoundation_commit"], norman["gears_version"])
    assert model.stacks == FORK_STACKS and model.worker == "scfoundation_worker.py" and model.needs_counts
    assert model._inputs() == {"go_files": tmp_path, "code": fork} and model.default_runtime == "venv"
    assert GearsModel().default_runtime == "current" and GearsModel().worker == "gears_worker.py"
    with pytest.raises(FileNotFoundError, match="not scFoundation's GEARS fork .*gears/version.py"):
        GearsModel(go_files=tmp_path, code=tmp_path)._inputs()


def test_environments_share_identical_files_as_hard_links(tmp_path):
    from linpert.adapters._environment import _COMPLETE, share_files

    def env(name: str, files: dict[str, bytes], complete: bool = True) -> Path:
        for relative, content in files.items():
            (tmp_path / name / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / relative).write_bytes(content)
        if complete:
            (tmp_path / name / _COMPLETE).write_text("{}")
        return tmp_path / name

    big, other = b"t" * 70_000, b"u" * 70_000
    built = env("state-1", {"lib/torch/libtorch.so": big, "lib/numpy/core.so": other})
    env("unfinished-2", {"lib/torch/libtorch.so": big}, complete=False)  # a half-built one is never linked to
    new = env("embedding-3", {"lib/torch/libtorch.so": big, "lib/numpy/core.so": b"v" * 70_000,
                              "lib/small.py": b"x"})
    assert share_files(new) == len(big)
    assert (new / "lib/torch/libtorch.so").stat().st_ino == (built / "lib/torch/libtorch.so").stat().st_ino
    assert (new / "lib/numpy/core.so").stat().st_ino != (built / "lib/numpy/core.so").stat().st_ino  # differs
    assert (new / "lib/torch/libtorch.so").read_bytes() == big and share_files(new) == 0  # linked once


def test_a_stack_that_cannot_be_chosen_or_installed_is_named(tmp_path):
    old = Stack(("cpa-tools==0.8.8",), pythons=("3.10",))
    with pytest.raises(RuntimeError, match=r"No known cpa stack installs on Python 3.99 \(known: Python 3.10\)"):
        linpert.adapters._environment.choose_stack([old], "3.99", model="cpa")
    runtime = Runtime(requirements=["numpy"], constraints=["numpy<1"], python=sys.executable)
    assert runtime.stack([old], model="cpa") == Stack(("numpy",), constraints=("numpy<1",),
                                                      note="requirements given by the user")
    assert linpert.adapters._environment.failing_package(
        "ERROR: Could not find a version that satisfies the requirement torch<=2.0.1 (from cpa-tools)"
    ) == "torch<=2.0.1"


@pytest.mark.slow
def test_a_failing_install_names_the_package_and_leaves_no_environment(tmp_path):
    stack = Stack(("linpert-no-such-package==0.0.1",))
    with pytest.raises(StackInstallError, match=r"pip could not install linpert-no-such-package==0.0.1.*Runtime\("):
        ensure_venv(stack, name="broken", cache_dir=tmp_path)
    assert not (venv_path(stack, name="broken", cache_dir=tmp_path) / ".linpert-complete").exists()


KILLED_WORKER = """
import json, os, signal, sys
request = json.load(open(sys.argv[1]))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_worker_costs_its_cell_not_the_grid(cells, bulk, tmp_path):
    script = tmp_path / "killed_worker.py"
    script.write_text(KILLED_WORKER)

    class Killed(ScGptModel):
        worker = str(script)
        modules = ()

    _checkpoint_files(tmp_path / "ckpt", bulk.var_names)
    model = Killed(cells=cells, checkpoint=tmp_path / "ckpt", runtime="current")
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match=r"killed failed on seed 1 .*exit code -9"):
        result = linpert.benchmark.run(bulk, split="double", seeds=[1], models=["additive", ("killed", model)],
                                       out=out, progress=False, interactions=False)
    assert set(result.results["model"]) == {"additive"}
    assert list(result.failures) == [(1, "killed")] and "exit code -9" in result.failures[(1, "killed")]
    # nothing half-written: only the finished cell is stored, so a rerun retries the killed one
    stored = sorted(p.name for p in (out / "cells").iterdir())
    assert stored == ["seed1__additive.parquet", "seed1__additive.timing.json"]
    with pytest.raises(WorkerError, match="Every cell of the grid failed"), pytest.warns(RuntimeWarning):
        linpert.benchmark.run(bulk, split="double", seeds=[1], models=[("killed", model)], progress=False,
                              interactions=False)


def test_the_adapters_are_found_by_name_through_the_entry_points():
    """linpert.models never imports linpert.adapters: it finds them under the ``linpert.models`` entry points."""
    from importlib.metadata import entry_points

    from linpert.models import ENTRY_POINTS, make_model

    assert {point.name: point.load() for point in entry_points(group=ENTRY_POINTS)} == ADAPTERS
    assert isinstance(make_model("scbert"), ADAPTERS["scbert"])


# -- presets: the paper's validation, or linpert's ------------------------------------------------------------------
def test_the_paper_preset_validates_on_the_splits_validation_conditions_and_linperts_on_held_out_training():
    from linpert.adapters import CpaModel, ScFoundationModel

    train = linpert.as_pseudobulk(np.zeros((3, 2)), ["ctrl", "A+ctrl", "B+ctrl"], ["g1", "g2"])
    train.uns["linpert"] = {"split": {"seed": 1, "conditions": ["ctrl", "A+ctrl", "B+ctrl", "A+B"], "val": ["A+B"]}}
    bare = train.copy()
    bare.uns = {}
    for adapter in (GearsModel, ScGptModel, ScFoundationModel):
        assert adapter()._validation(train) == ["A+B"]  # the paper's scripts: set2conditions["val"]
        assert adapter()._validation(bare) == 0.1  # fitted outside a run: no split to take it from
        assert adapter(preset="linpert")._validation(train) == 0.1
        assert adapter(validation=["C+D"])._validation(train) == ["C+D"]
        with pytest.raises(ValueError, match="preset='tutorial'"):
            adapter(preset="tutorial")._validation(train)
    assert CpaModel()._validation(train) is None  # its tutorial validates on random cells
    assert CpaModel(preset="linpert")._validation(train) == 0.1
    assert CpaModel(validation=["A+B"])._validation(train) == ["A+B"]


def test_a_benchmark_run_tells_each_model_its_splits_validation_conditions():
    from linpert import benchmark
    from linpert.models import FunctionModel
    from linpert.splits import make_split

    seen = []
    bulk = simulate("norman", n_genes=40, n_singles=8, n_doubles=10, cells_per_condition=4, n_control_cells=20)
    bulk = linpert.pseudobulk(bulk)
    model = FunctionModel(fit=lambda train: seen.append(train.uns["linpert"]["split"]["val"]) or
                          np.asarray(train["ctrl"].X).ravel(),
                          predict=lambda ctrl, conditions: np.tile(ctrl, (len(conditions), 1)))
    benchmark.run(bulk, split="double", seeds=[1, 2], models=[("f", model)], progress=False, interactions=False)
    assert seen == [list(make_split("double", bulk.obs_names, seed=seed).val) for seed in (1, 2)]
    assert all(seen)


def test_each_adapters_paper_preset_asks_for_the_settings_of_the_papers_scripts():
    """tests/python/paper_settings.json holds the paper's settings with their sources; CPA's are checked against
    CPA itself in test_deep_models.py."""
    from linpert.adapters import ScFoundationModel

    spec = json.loads((Path(__file__).parent / "paper_settings.json").read_text())
    train = linpert.as_pseudobulk(np.zeros((2, 2)), ["ctrl", "A+ctrl"], ["g1", "g2"])
    train.uns["linpert"] = {"split": {"seed": 1, "conditions": ["ctrl", "A+ctrl", "A+B"], "val": ["A+B"]}}
    for name, adapter in (("gears", GearsModel), ("scgpt", ScGptModel), ("scfoundation", ScFoundationModel)):
        wanted = {k: v for k, v in spec[name]["params"].items() if not k.startswith("_")}
        assert adapter()._params() == wanted, name
        assert spec[name]["validation"]["split_val"] and adapter()._validation(train) == ["A+B"], name


def test_a_failed_one_off_worker_keeps_the_log_its_error_names(tmp_path, monkeypatch):
    from linpert.adapters import WorkerError, _base

    (tmp_path / "failing_worker.py").write_text("import sys\nprint('the worker says why')\nsys.exit(3)\n")
    monkeypatch.setattr(_base, "WORKERS", tmp_path)
    with pytest.raises(WorkerError, match=r"exit code 3; log (\S+)\)") as failed:
        _base.run_once("current", model="failing", worker="failing_worker.py", modules=(), stacks=(),
                       action="embed", inputs={}, output="out.npz", keep=tmp_path / "out.npz")
    log = Path(str(failed.value).split("; log ")[1].split(")")[0])
    assert "the worker says why" in log.read_text()
    shutil.rmtree(log.parent)

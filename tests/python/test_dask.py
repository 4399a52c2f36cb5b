"""Dask: pseudobulk of lazily read data and the benchmark grid on a local two-process cluster (linpert._dask)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
anndata = pytest.importorskip("anndata")

import linpert  # noqa: E402
from linpert import benchmark  # noqa: E402
from linpert.models import make_model  # noqa: E402

CONDITIONS = ["ctrl", "A+ctrl", "ctrl+B", "B+A", "A+B", "C+ctrl"]


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def _cells(kind: str, n: int = 403, n_genes: int = 23, seed: int = 0) -> anndata.AnnData:
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, n_genes)) < 0.3, rng.gamma(2.0, 1.0, (n, n_genes)), 0).astype(np.float32)
    X = sparse.csr_matrix(dense) if kind == "sparse" else dense
    obs = pd.DataFrame({"condition": pd.Categorical(rng.choice(CONDITIONS, n))}, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(
        {"gene_name": [f"G{g}" for g in range(n_genes)]}, index=[f"ENSG{g:011d}" for g in range(n_genes)]
    )
    return anndata.AnnData(X, obs=obs, var=var)


def _reference(cells: anndata.AnnData) -> pd.DataFrame:
    """Per-condition means straight from pandas, with the conditions merged by hand."""
    merged = {"ctrl+B": "B+ctrl", "B+A": "A+B"}
    dense = cells.X.toarray() if sparse.issparse(cells.X) else cells.X
    frame = pd.DataFrame(dense.astype(np.float64), columns=cells.var["gene_name"].to_numpy())
    keys = cells.obs["condition"].astype(str).replace(merged).to_numpy()
    return frame.groupby(keys).mean()


@pytest.mark.parametrize("kind", ["sparse", "dense"])
@pytest.mark.parametrize("suffix", [".zarr", ".h5ad"])
def test_dask_pseudobulk_equals_the_in_memory_path(client, tmp_path, kind, suffix):
    from anndata.experimental import read_elem_lazy

    cells = _cells(kind)
    path = tmp_path / f"cells{suffix}"
    cells.write_zarr(path) if suffix == ".zarr" else cells.write_h5ad(path)
    expected = linpert.pseudobulk(cells)
    reference = _reference(cells)

    if suffix == ".zarr":
        import zarr

        element = zarr.open_group(path, mode="r")["X"]
    else:
        import h5py

        element = h5py.File(path, "r")["X"]
    # blocks that cut both cells and genes, smaller than chunk_size: they are grouped into tasks
    lazy = anndata.AnnData(read_elem_lazy(element, chunks=(37, 23 if kind == "sparse" else 10)), obs=cells.obs,
                           var=cells.var)
    runs = {
        "path, cluster": linpert.pseudobulk(path, scheduler=client, chunk_size=50),
        "lazy AnnData, cluster": linpert.pseudobulk(lazy, scheduler=client, chunk_size=100),
        "lazy AnnData, local scheduler": linpert.pseudobulk(lazy, chunk_size=60),
        "address": linpert.pseudobulk(path, scheduler=client.scheduler.address, chunk_size=128),
        "in memory, cluster": linpert.pseudobulk(cells, scheduler=client, chunk_size=90),
    }
    if suffix == ".h5ad":  # a backed AnnData: the workers read the file themselves
        runs["backed, cluster"] = linpert.pseudobulk(anndata.read_h5ad(path, backed="r"), scheduler=client)
    for label, result in runs.items():
        np.testing.assert_allclose(result.X, expected.X, rtol=1e-12, atol=1e-12, err_msg=label)
        np.testing.assert_allclose(result.X, reference.loc[result.obs_names].to_numpy(), rtol=1e-6, err_msg=label)
        pd.testing.assert_frame_equal(result.obs, expected.obs)
        pd.testing.assert_frame_equal(result.var, expected.var)
        assert result.uns["linpert"]["backend"] == "dask"
    assert runs["path, cluster"].uns["linpert"]["source"] == str(path)


def test_read_lazy_anndata_is_pseudobulked_on_the_active_scheduler(tmp_path):
    pytest.importorskip("xarray")
    from anndata.experimental import read_lazy

    cells = _cells("sparse")
    cells.write_zarr(tmp_path / "cells.zarr")
    lazy = read_lazy(tmp_path / "cells.zarr")
    result = linpert.pseudobulk(lazy, chunk_size=64)
    np.testing.assert_allclose(result.X, linpert.pseudobulk(cells).X, rtol=1e-12, atol=1e-12)
    assert result.obs_names.tolist() == ["ctrl", "A+B", "A+ctrl", "B+ctrl", "C+ctrl"]


def test_dask_pseudobulk_reports_non_finite_values_and_raw_counts(tmp_path):
    import dask.array as da

    cells = _cells("dense")
    X = cells.X.copy()
    X[np.flatnonzero(cells.obs["condition"] == "C+ctrl")[2], 3] = np.nan
    bad = anndata.AnnData(da.from_array(X, chunks=(50, 23)), obs=cells.obs, var=cells.var)
    with pytest.raises(ValueError, match=r"1 non-finite values .* in 1 conditions: 'C\+ctrl' \(1\)"):
        linpert.pseudobulk(bad)
    counts = anndata.AnnData(da.from_array(np.round(cells.X * 40), chunks=(100, 23)), obs=cells.obs, var=cells.var)
    with pytest.warns(UserWarning, match="looks like raw counts"):
        linpert.pseudobulk(counts)


def _pseudobulk_data() -> anndata.AnnData:
    from linpert.datasets import simulate

    return linpert.pseudobulk(simulate("norman", seed=0, n_genes=300, n_singles=24, n_doubles=30))


def _on_worker() -> bool:
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


class DiesOnce:
    """The additive model, except that the first fit on a Dask worker kills that worker's process."""

    name = "dies_once"

    def __init__(self, *, marker: str):
        self.marker = marker

    def get_params(self) -> dict:
        return {"marker": self.marker}

    def fit(self, train):
        if _on_worker():
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)  # the worker dies mid-task; the nanny starts a new one and the scheduler retries
        self.model_ = make_model("additive").fit(train)
        return self

    def predict(self, conditions):
        return self.model_.predict(conditions)


def test_grid_on_the_cluster_gives_the_local_table_and_survives_a_killed_worker(client, tmp_path):
    data = _pseudobulk_data()
    marker = tmp_path / "killed"
    models = ["no_change", "additive", ("dies_once", DiesOnce(marker=str(marker)))]
    options = dict(split="double", seeds=(1, 2), models=models, progress=False, interactions=False)
    local = benchmark.run(data, out=tmp_path / "local", **options)
    assert not marker.exists()  # the local run never kills anything

    on_cluster = benchmark.run(data, out=tmp_path / "cluster", scheduler=client, **options)
    assert marker.exists(), "the test model did not kill its worker"
    pd.testing.assert_frame_equal(on_cluster.results, local.results)
    pd.testing.assert_frame_equal(on_cluster.summary.drop(columns=["fit_seconds", "predict_seconds", "peak_mib"]),
                                  local.summary.drop(columns=["fit_seconds", "predict_seconds", "peak_mib"]))
    keys = ["seed", "model", "perturbation"]
    assert not on_cluster.results.duplicated(keys).any()
    assert len(on_cluster.timings) == 2 * 3
    cells = sorted(p.name for p in (tmp_path / "cluster" / "cells").glob("*.parquet"))
    assert cells == sorted(f"seed{s}__{m}.parquet" for s in (1, 2) for m in ("no_change", "additive", "dies_once"))
    on_disk = pd.read_parquet(tmp_path / "cluster" / "results.parquet")
    pd.testing.assert_frame_equal(on_disk, local.results)

    # without a store the cells come back to the driver; a finished store is resumed without new tasks
    in_memory = benchmark.run(data, scheduler=client.scheduler.address, **options)
    pd.testing.assert_frame_equal(in_memory.results, local.results)
    again = benchmark.run(data, out=tmp_path / "cluster", scheduler=client, **options)
    pd.testing.assert_frame_equal(again.timings, on_cluster.timings)


class FailsToFit:
    """A model whose worker environment fails, as an adapter's does: WorkerError from fit."""

    def get_params(self) -> dict:
        return {}

    def fit(self, train):
        from linpert._errors import WorkerError

        raise WorkerError("the worker exited with code 3")

    def predict(self, conditions):  # pragma: no cover - never fitted
        raise AssertionError


def test_a_failed_worker_on_the_cluster_costs_its_own_cell_as_it_does_locally(client):
    data = _pseudobulk_data()
    options = dict(split="double", seeds=(1,), models=["additive", ("fails", FailsToFit())], progress=False,
                   interactions=False)
    with pytest.warns(RuntimeWarning, match="fails failed on seed 1"):
        local = benchmark.run(data, **options)
    with pytest.warns(RuntimeWarning, match="fails failed on seed 1"):
        on_cluster = benchmark.run(data, scheduler=client, **options)
    assert on_cluster.failures == local.failures == {(1, "fails"): "the worker exited with code 3"}
    pd.testing.assert_frame_equal(on_cluster.results, local.results)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_fails_fast_with_a_clear_message(tmp_path, monkeypatch, capsys):
    from linpert.cli import main

    address = f"tcp://127.0.0.1:{_closed_port()}"
    message = rf"Cannot reach the Dask scheduler at '{address}' within 5 s.*dask scheduler.*optional"
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match=message):
        linpert.pseudobulk(_cells("sparse"), scheduler=address)
    assert time.perf_counter() - t0 < 15

    cells = tmp_path / "cells.h5ad"
    _cells("sparse").write_h5ad(cells)
    monkeypatch.setenv("LINPERT_SCHEDULER", address)
    assert main(["pseudobulk", str(cells), str(tmp_path / "pb.h5ad")]) == 2
    err = capsys.readouterr().err
    assert f"Cannot reach the Dask scheduler at '{address}'" in err and "--scheduler" in err
    assert not (tmp_path / "pb.h5ad").exists()

    with pytest.raises(TypeError, match="scheduler must be the address of a Dask scheduler"):
        linpert.pseudobulk(_cells("sparse"), scheduler=8786)


def test_without_dask_input_nothing_of_dask_is_needed():
    # anndata itself imports dask when it is installed, so block it: the in-memory paths must not need it.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["dask"] = sys.modules["distributed"] = None
        import anndata, numpy as np, pandas as pd, pytest
        import linpert
        cells = anndata.AnnData(np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 2.0]]),
                                obs=pd.DataFrame({"condition": ["ctrl", "ctrl", "A+ctrl"]}, index=list("abc")))
        assert linpert.pseudobulk(cells).X.tolist() == [[2.0, 1.0], [2.0, 2.0]]
        import linpert.benchmark, linpert.cli
        with pytest.raises(ImportError, match=r"pip install 'linpert\\[dask\\]'"):
            linpert.pseudobulk(cells, scheduler="tcp://127.0.0.1:1")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)
    # and with Dask installed, nothing of distributed is loaded
    code = "import sys, numpy as np, anndata, linpert; "
    code += "linpert.pseudobulk(anndata.AnnData(np.ones((2, 2)), obs={'condition': ['ctrl', 'A+ctrl']})); "
    code += "assert 'distributed' not in sys.modules, 'distributed was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)

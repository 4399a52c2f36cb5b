"""Round trips AnnData -> SingleCellExperiment -> AnnData through anndata2ri (needs R with SingleCellExperiment)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import linpert
from linpert import _r

pytestmark = pytest.mark.skipif(
    not (_r.r_available("SingleCellExperiment") and _r.r_available("Matrix")),
    reason="R with SingleCellExperiment is not available",
)


@pytest.fixture(scope="module")
def cells():
    adata = linpert.datasets.simulate(
        "norman", n_genes=40, n_singles=4, n_doubles=2, cells_per_condition=5, n_control_cells=10, seed=3
    )
    del adata.uns["linpert_truth"]  # holds DataFrames inside a dict: Python-only
    return adata


def test_round_trip_keeps_values_annotations_and_sparse_layout(cells):
    from linpert.convert import from_sce, to_sce

    sce = to_sce(cells)
    ro = _r._robjects()
    assert list(ro.r["class"](sce)) == ["SingleCellExperiment"]
    assert list(ro.r["assayNames"](sce)) == ["X", "counts"]
    assert list(ro.r["class"](ro.r["assay"](sce, "X"))) == ["dgCMatrix"]
    assert tuple(ro.r["dim"](sce)) == (cells.n_vars, cells.n_obs)  # genes x cells in R

    back = from_sce(sce)
    assert sparse.isspmatrix_csr(back.X) or isinstance(back.X, sparse.csr_array)
    np.testing.assert_array_equal(back.X.toarray(), cells.X.toarray().astype(np.float64))
    np.testing.assert_array_equal(back.layers["counts"].toarray(), cells.layers["counts"].toarray())
    assert list(back.obs_names) == list(cells.obs_names)
    assert list(back.var_names) == list(cells.var_names)
    assert list(back.obs.columns) == list(cells.obs.columns)
    assert list(back.obs["condition"].astype(str)) == list(cells.obs["condition"].astype(str))
    assert back.obs["control"].dtype == np.int64
    np.testing.assert_array_equal(back.obs["control"], cells.obs["control"])
    np.testing.assert_allclose(back.obs["total_count"], cells.obs["total_count"])
    assert list(back.var["gene_name"].astype(str)) == list(cells.var["gene_name"])
    assert all(isinstance(k, str) for k in back.uns)
    assert "linpert_simulation" in back.uns


def test_dense_pseudobulk_stays_dense(cells):
    from linpert.convert import from_sce, to_sce

    pb = linpert.pseudobulk(cells)
    back = from_sce(to_sce(pb))
    assert isinstance(back.X, np.ndarray)
    np.testing.assert_allclose(back.X, pb.X, rtol=0, atol=0)
    assert list(back.obs["kind"].astype(str)) == list(pb.obs["kind"])
    np.testing.assert_array_equal(back.obs["n_cells"].to_numpy(), pb.obs["n_cells"].to_numpy())


def test_python_only_uns_is_left_out_with_a_warning(cells):
    from linpert.convert import to_sce

    adata = cells.copy()
    adata.uns["table"] = {"frame": pd.DataFrame({"a": [1]})}
    with pytest.warns(UserWarning, match=r"uns entries \['table'\] cannot be stored"):
        to_sce(adata)


def test_bad_input_says_what_to_pass():
    from linpert.convert import from_sce, to_sce

    with pytest.raises(TypeError, match="to_sce\\(\\) takes an AnnData"):
        to_sce(np.zeros((2, 2)))
    ro = _r._robjects()
    with pytest.raises(TypeError, match="from_sce\\(\\) takes an R SingleCellExperiment"):
        from_sce(ro.r("1:3"))

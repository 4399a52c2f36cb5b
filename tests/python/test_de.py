"""Differential expression from cells and the DE-gene overlap: the compiled kernel, its NumPy twin, and cell-eval."""

from __future__ import annotations

import subprocess

import anndata
import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from scipy import sparse

from linpert import _compiled
from linpert.metrics import de_overlap, differential_expression

KEY, CONTROL = "target_gene", "non-targeting"


def cells(seed=0, n_control=200, per=30, n_groups=12, n_genes=150, shared=8):
    """log1p-normalised counts; group k raises or lowers 20 genes, the first ``shared`` of them fixed by k."""
    rng = np.random.default_rng(seed)
    labels = [CONTROL] * n_control + [f"G{k}" for k in range(n_groups) for _ in range(per)]
    mu = np.tile(rng.gamma(0.6, 1.0, n_genes), (len(labels), 1))
    for k in range(n_groups):
        genes = np.random.default_rng(k).choice(n_genes, 20, replace=False)
        genes[shared:] = rng.choice(n_genes, 20 - shared, replace=False)
        mu[n_control + k * per: n_control + (k + 1) * per, genes] *= np.exp(rng.normal(0, 1.2, 20))
    X = np.log1p(rng.poisson(mu).astype(float))
    var = pd.DataFrame(index=[f"G{i}" if i < n_groups else f"g{i}" for i in range(n_genes)])
    obs = pd.DataFrame({KEY: labels}, index=[f"c{i}" for i in range(len(labels))])
    return anndata.AnnData(sparse.csr_matrix(X), obs=obs, var=var)


def de(data, **kwargs):
    return differential_expression(data, condition_key=KEY, control=CONTROL, **kwargs)


@pytest.fixture
def numpy_only(monkeypatch):
    """The NumPy fallback, as on a machine without numba."""
    monkeypatch.setenv("LINPERT_NUMBA", "0")
    _compiled.numba.cache_clear()
    yield
    _compiled.numba.cache_clear()


def awkward():
    """Negative values, stored zeros, a gene where every value ties, an all-zero gene, a one-cell group, dense,
    float32 (sorted in its own type)."""
    data = cells(n_control=60, per=9, n_groups=5, n_genes=40)
    X = data.X.toarray()
    X[:, 3] *= -1
    X[:, 4] = 0.5
    X[:, 5] = 0.0
    X[:, 6] = np.round(X[:, 6])  # many ties beyond zero
    data.obs.loc[data.obs_names[-1], KEY] = "lonely"
    stored_zeros = sparse.csr_matrix(X)
    stored_zeros.data[::7] = 0.0  # explicit zeros: the same numbers, stored differently
    return [anndata.AnnData(sparse.csr_matrix(X), obs=data.obs, var=data.var), anndata.AnnData(X, obs=data.obs, var=data.var),
            anndata.AnnData(stored_zeros, obs=data.obs, var=data.var),
            anndata.AnnData(sparse.csr_matrix(X.astype(np.float32)), obs=data.obs, var=data.var)]


def test_the_compiled_kernel_and_the_numpy_fallback_give_the_same_tests(monkeypatch):
    pytest.importorskip("numba", reason="the compiled kernel is what this compares; CI installs linpert[fast]")
    compiled = [de(one) for one in awkward()]
    monkeypatch.setenv("LINPERT_NUMBA", "0")
    _compiled.numba.cache_clear()
    try:
        fallback = [de(one) for one in awkward()]
    finally:
        _compiled.numba.cache_clear()
    for ours, theirs in zip(compiled, fallback):
        for name in ("statistic", "p_value", "fdr", "log2_fold_change"):
            pd.testing.assert_frame_equal(getattr(ours, name), getattr(theirs, name), rtol=0, atol=1e-12)
    p = compiled[0].p_value
    assert (p["G4"] == 1).all() and (p["g5"] == 1).all()  # every value tied: no evidence, p = 1 (as pdex)
    assert (compiled[0].log2_fold_change["g5"] == 0).all()  # 0 / 0 is no change
    assert compiled[0].significant().sum() > 10  # the test finds the planted changes


def test_cells_left_out_of_every_group_are_as_if_absent(monkeypatch):
    """The replicate ceiling tests half of each condition's cells, the rest coded -1: the compiled kernel (which
    counts them in a slot of their own) and the fallback must both test as if those cells were not there."""
    from linpert.metrics._de import grouped_de

    pytest.importorskip("numba", reason="the compiled kernel is what this compares; CI installs linpert[fast]")
    data = awkward()[0]
    labels = data.obs[KEY].astype(str).to_numpy()
    groups = sorted(set(labels) - {CONTROL})
    codes = pd.Categorical(labels, categories=[CONTROL, *groups]).codes.astype(np.int64)
    codes[np.random.default_rng(1).random(len(codes)) < 0.4] = -1
    kept = codes >= 0
    genes = data.var_names.astype(str)
    left_out = grouped_de(data.X, codes, groups, genes)
    absent = grouped_de(data.X[kept], codes[kept], groups, genes)
    monkeypatch.setenv("LINPERT_NUMBA", "0")
    _compiled.numba.cache_clear()
    try:
        fallback = grouped_de(data.X, codes, groups, genes)
    finally:
        _compiled.numba.cache_clear()
    for name in ("statistic", "p_value", "fdr", "log2_fold_change"):
        pd.testing.assert_frame_equal(getattr(left_out, name), getattr(absent, name), rtol=0, atol=0)
        pd.testing.assert_frame_equal(getattr(left_out, name), getattr(fallback, name), rtol=0, atol=1e-12)


def test_hundreds_of_groups_give_the_fallbacks_tests(monkeypatch):
    """Past 254 groups a cell's group no longer fits a byte, and the kernel's slots take two."""
    pytest.importorskip("numba", reason="the compiled kernel is what this compares; CI installs linpert[fast]")
    data = cells(n_control=40, per=2, n_groups=300, n_genes=30)
    compiled = de(data)
    monkeypatch.setenv("LINPERT_NUMBA", "0")
    _compiled.numba.cache_clear()
    try:
        fallback = de(data)
    finally:
        _compiled.numba.cache_clear()
    for name in ("statistic", "p_value", "fdr", "log2_fold_change"):
        pd.testing.assert_frame_equal(getattr(compiled, name), getattr(fallback, name), rtol=0, atol=1e-12)


def test_rounds_tested_together_equal_rounds_tested_one_by_one():
    """The replicate ceiling tests all its rounds in one walk over the sorted values: each round's tests must be
    exactly those of the round alone, on negative values, ties, stored zeros and all-tied genes."""
    from linpert.metrics._calibration import _halves
    from linpert.metrics._de import by_gene, grouped_de, grouped_de_rounds

    for data in awkward():
        labels = data.obs[KEY].astype(str).to_numpy()
        groups = sorted(set(labels) - {CONTROL})
        rng = np.random.default_rng(3)
        codes = np.array([_halves(labels, [CONTROL, *groups], rng)[1] for _ in range(4)])
        genes = data.var_names.astype(str)
        sorted_values = by_gene(data.X)
        together = grouped_de_rounds(data.X, codes, groups, genes, sorted_values=sorted_values)
        for row, test in zip(codes, together):
            alone = grouped_de(data.X, row, groups, genes)
            for name in ("statistic", "p_value", "fdr", "log2_fold_change"):
                pd.testing.assert_frame_equal(getattr(test, name), getattr(alone, name), rtol=0, atol=0)


def test_sorting_csr_cells_gene_by_gene_equals_scipys_transpose():
    """by_gene transposes CSR cells with its own parallel kernel: the same values and rows as scipy's CSC without
    stored zeros, for int32 and int64 indices, empty rows (also last), unsorted columns, float32 and float64 values."""
    pytest.importorskip("numba", reason="by_gene is the compiled kernel's input; CI installs linpert[fast]")
    from linpert.metrics._de import by_gene

    rng = np.random.default_rng(4)
    X = sparse.random(500, 70, density=0.3, random_state=5, format="csr", dtype=np.float32)
    X.data = np.round(X.data * 4) - 1  # ties, negatives and stored zeros
    X = X.tolil()
    X[-3:] = 0
    X[100:110] = 0
    X = X.tocsr()
    shuffled = X.copy()
    for row in range(shuffled.shape[0]):  # columns in no order within each row
        lo, hi = shuffled.indptr[row], shuffled.indptr[row + 1]
        order = lo + rng.permutation(hi - lo)
        shuffled.indices[lo:hi], shuffled.data[lo:hi] = shuffled.indices[order], shuffled.data[order]
    shuffled.has_sorted_indices = False
    wide = X.copy()
    wide.indices, wide.indptr = wide.indices.astype(np.int64), wide.indptr.astype(np.int64)
    expected = by_gene(X.toarray())  # through scipy, in float64
    for one in (X, shuffled, wide, X.astype(np.float64)):
        got = by_gene(one)
        np.testing.assert_array_equal(got.indptr, expected.indptr)
        np.testing.assert_array_equal(got.rows, expected.rows)
        np.testing.assert_array_equal(got.values, expected.values)
        assert got.values.dtype == one.dtype and (got.values != 0).all()  # float32 sorted as float32


def test_benjamini_hochberg_is_statsmodels_to_the_bit():
    from statsmodels.stats.multitest import multipletests

    from linpert.metrics._de import _benjamini_hochberg

    rng = np.random.default_rng(0)
    p = rng.uniform(size=(7, 300)) ** 3
    p[0, :50] = 1.0  # ties, and values the running minimum must carry
    p[1] = np.round(p[1], 2)
    p[2, ::3] = 0.0
    theirs = np.vstack([multipletests(row, method="fdr_bh")[1] for row in p])
    np.testing.assert_array_equal(_benjamini_hochberg(p), theirs)
    assert _benjamini_hochberg(np.empty((0, 5))).shape == (0, 5)


@pytest.mark.slow
def test_de_genes_and_their_overlap_equal_cell_evals_on_the_same_cells(tmp_path):
    from linpert.adapters._environment import ensure_venv

    real, pred = cells(seed=1), cells(seed=2)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    python = ensure_venv(["cell-eval==0.8.2"], name="cell-eval") / "bin" / "python"
    subprocess.run([str(python), str(REPO / "benchmarks" / "peers" / "cell_eval_de_peer.py"), str(tmp_path / "real.h5ad"),
                    str(tmp_path / "pred.h5ad"), str(tmp_path / "out.npz")], check=True, capture_output=True)
    theirs = np.load(tmp_path / "out.npz")
    perturbations = list(theirs["perturbations"])
    ours = de(real).rows(perturbations)
    for name in ("statistic", "p_value", "fdr", "log2_fold_change"):
        np.testing.assert_allclose(getattr(ours, name).to_numpy(), theirs[name], rtol=1e-12, atol=1e-12)
    overlap = de_overlap(de(pred).rows(perturbations), ours).to_numpy()
    np.testing.assert_allclose(overlap, theirs["overlap"], rtol=0, atol=1e-12)
    assert 0 < overlap.mean() < 1 and len(set(overlap)) > 2  # a real spread, not all 0 or all 1


def test_the_true_profile_recovers_nearly_every_de_gene_and_no_change_none():
    data = cells()
    observed = de(data)
    labels = data.obs[KEY].to_numpy()
    means = pd.DataFrame([np.asarray(data.X[labels == p].mean(axis=0)).ravel() for p in observed.fdr.index],
                         index=observed.fdr.index, columns=data.var_names)
    control = np.asarray(data.X[labels == CONTROL].mean(axis=0)).ravel()
    true = de_overlap(means, observed, control=control)
    shuffled = de_overlap(means.iloc[::-1].set_axis(means.index), observed, control=control)
    assert true.min() > 0.7 and true.mean() > 0.9 and shuffled.mean() < 0.4
    no_change = pd.DataFrame(np.tile(control, (len(means), 1)), means.index, means.columns)
    assert (de_overlap(no_change, observed, control=control) == 0).all()
    # the top 5 only (cell-eval's overlap_at_k); a perturbation without DE genes has no overlap to report
    assert de_overlap(means, observed, control=control, k=5).between(0.4, 1).all()
    quiet = observed.rows(observed.fdr.index)
    quiet.fdr.iloc[0] = 1.0
    assert np.isnan(de_overlap(means, quiet, control=control).iloc[0])


def test_bad_input_gets_a_clear_error():
    data = cells(n_groups=3)
    observed = de(data)
    with pytest.raises(ValueError, match="no control cells \\('ctrl' in obs\\['target_gene'\\]\\)"):
        differential_expression(data, condition_key=KEY)
    with pytest.raises(ValueError, match="needs control= \\(the control profile\\)"):
        de_overlap(observed.log2_fold_change, observed)
    with pytest.raises(ValueError, match="The predictions' perturbations differ .* misses 1"):
        de_overlap(observed.log2_fold_change.iloc[1:], observed, control=np.zeros(data.n_vars))


def test_compiled_kernels_take_turns():
    """One compiled kernel runs at a time in the process: each uses every core, and numba's workqueue threading
    layer aborts when two threads start parallel kernels at once (a Dask worker's threads, say)."""
    pytest.importorskip("numba", reason="the compiled kernels are what this checks; CI installs linpert[fast]")
    import threading

    from linpert.metrics._de import by_gene

    X = sparse.random(50, 20, density=0.3, format="csr", random_state=0)
    by_gene(X)  # compiled before the clock starts
    done = threading.Event()
    with _compiled._RUNNING:  # another kernel is running
        worker = threading.Thread(target=lambda: (by_gene(X), done.set()))
        worker.start()
        assert not done.wait(0.5)
    worker.join(60)
    assert done.is_set()


@pytest.mark.parametrize("setting, layer", [(None, "workqueue"), ("omp", "omp")])
def test_kernels_use_the_workqueue_layer_unless_told_otherwise(setting, layer):
    """numba's OpenMP layer would be one more OpenMP runtime beside torch's and scikit-learn's; linpert picks
    workqueue, which needs none, and leaves a layer the user chose alone."""
    pytest.importorskip("numba", reason="the compiled kernels are what this checks; CI installs linpert[fast]")
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    if setting:
        env["NUMBA_THREADING_LAYER"] = setting
    code = ("import numba; from scipy import sparse; from linpert.metrics._de import by_gene; "
            "by_gene(sparse.random(50, 20, density=0.3, format='csr', random_state=0)); "
            "print(numba.threading_layer() if numba.config.THREADING_LAYER == 'workqueue' "
            "else numba.config.THREADING_LAYER)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == layer

"""linpert.pseudobulk against a direct pandas groupby mean, for every storage of the cell matrix."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import warnings

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from linpert import pseudobulk

# Raw names as datasets write them, and the canonical names they must map to (written out by hand, not computed).
RAW = ["ctrl", "A+ctrl", "ctrl+A", "B+A", "A+B", "C+ctrl", "D+E", "ctrl"]
CANONICAL = {"ctrl": "ctrl", "A+ctrl": "A+ctrl", "ctrl+A": "A+ctrl", "B+A": "A+B", "A+B": "A+B",
             "C+ctrl": "C+ctrl", "D+E": "D+E"}  # fmt: skip
ORDER = ["ctrl", "A+B", "A+ctrl", "C+ctrl", "D+E"]


def make_cells(n_cells=61, n_genes=9, *, fmt="csr", seed=0, density=0.4):
    """A small log-normalised cell-level AnnData: Ensembl-like var_names, symbols in var['gene_name']."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n_cells, n_genes)) * (rng.random((n_cells, n_genes)) < density)
    dense = np.log1p(dense * 20).astype(np.float32)
    labels = np.array(RAW)[rng.integers(0, len(RAW), n_cells)]
    labels[:2] = ["ctrl", "D+E"]  # every condition present at least once
    X = {"dense": dense, "csr": sparse.csr_matrix(dense), "csc": sparse.csc_matrix(dense)}[fmt.removesuffix("64")]
    if fmt.endswith("64"):  # int64 index arrays, as anndata may read them
        X.indices, X.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    obs = pd.DataFrame({"condition": pd.Categorical(labels)}, index=[f"cell{i}" for i in range(n_cells)])
    var = pd.DataFrame(
        {"gene_name": [f"GENE{i}" for i in range(n_genes)]},
        index=[f"ENSG{i:011d}" for i in range(n_genes)],
    )
    return anndata.AnnData(X=X, obs=obs, var=var)


def groupby_mean(adata, matrix=None):
    """The reference: pandas groupby mean over the canonical labels, rows ctrl first then sorted."""
    matrix = adata.X if matrix is None else matrix
    dense = matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)
    labels = adata.obs["condition"].astype(str).map(CANONICAL).to_numpy()
    frame = pd.DataFrame(dense.astype(np.float64)).groupby(labels).mean()
    return frame.loc[[c for c in ORDER if c in frame.index]]


def assert_matches(result, adata, matrix=None):
    expected = groupby_mean(adata, matrix)
    assert result.obs_names.tolist() == expected.index.tolist()
    assert isinstance(result.X, np.ndarray) and result.X.dtype == np.float64
    np.testing.assert_allclose(result.X, expected.to_numpy(), rtol=1e-12, atol=1e-12)


def write(adata, path):
    adata.write_h5ad(path)
    return path


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc", "csr64", "csc64"])
@pytest.mark.parametrize("chunk_size", [7, 1, 20_000])
def test_in_memory_matches_groupby_mean(fmt, chunk_size):
    cells = make_cells(fmt=fmt)
    assert_matches(pseudobulk(cells, chunk_size=chunk_size), cells)


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_thread_count_does_not_change_the_result(tmp_path, monkeypatch, fmt):
    from linpert._pseudobulk import _local

    cells = make_cells(n_cells=200, fmt=fmt)
    path = write(cells, tmp_path / "cells.h5ad")
    results = []
    for threads in (1, 3):
        monkeypatch.setattr(_local, "_n_threads", lambda threads=threads: threads)
        results.append([pseudobulk(cells, chunk_size=50).X, pseudobulk(path, chunk_size=50).X])
    assert_matches(pseudobulk(cells, chunk_size=50), cells)
    for one, three in zip(*results):  # each condition is summed by one thread, in the same order
        np.testing.assert_array_equal(one, three)


def test_layer_is_averaged_instead_of_x():
    cells = make_cells()
    other = make_cells(seed=1).X
    cells.layers["lognorm"] = other
    assert_matches(pseudobulk(cells, layer="lognorm", chunk_size=7), cells, other)


@pytest.mark.parametrize("layout", ["contiguous", "chunks of 7", "one partial chunk", "int64 chunks of 5"])
def test_raw_reads_equal_h5pys_across_chunk_boundaries(tmp_path, layout):
    """An array stored raw is read with os.preadv from where HDF5 says it lies: the same values as h5py's read."""
    from linpert._pseudobulk._raw import RawArray

    values = np.random.default_rng(2).random(103).astype(np.float32)
    if layout.startswith("int64"):
        values = np.arange(103, dtype=np.int64) * 7919
    chunks = {"contiguous": None, "chunks of 7": (7,), "one partial chunk": (1000,), "int64 chunks of 5": (5,)}
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("x", data=values, chunks=chunks[layout], maxshape=(None,) if chunks[layout] else None)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        raw = RawArray.of(f["x"])
        assert raw is not None
        for lo, hi in [(0, 103), (0, 1), (6, 8), (13, 90), (102, 103), (50, 50)]:
            out = np.full(hi - lo + 2, -1, dtype=values.dtype)  # a buffer longer than asked keeps its tail
            raw.read(lo, hi, out)
            np.testing.assert_array_equal(out[: hi - lo], f["x"][lo:hi])
            assert (out[hi - lo :] == -1).all()
        with pytest.raises(IndexError, match="outside the 103 values"):
            raw.read(100, 104, np.empty(4, values.dtype))


def test_arrays_not_stored_raw_are_left_to_h5py(tmp_path):
    from linpert._pseudobulk._raw import RawArray

    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("gzip", data=np.ones(50, np.float32), chunks=(10,), compression="gzip")
        f.create_dataset("big_endian", data=np.ones(50, ">f4"))
        f.create_dataset("empty", data=np.ones(0, np.float32))
        f.create_dataset("strings", data=np.array([b"a", b"b"]))
        half = f.create_dataset("half_written", shape=(50,), dtype=np.float32, chunks=(10,), fillvalue=7.0)
        half[:20] = 1.0  # chunks 3-5 never written: their fill values are nowhere in the file
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert [RawArray.of(f[name]) for name in ("gzip", "big_endian", "empty", "strings", "half_written")] == \
            [None] * 5


def test_a_compressed_file_and_a_raw_one_give_the_same_numbers(tmp_path):
    """The same cells written raw (os.preadv reads them) and gzip-compressed (h5py does): pseudobulk and read_genes
    agree to the last bit."""
    from linpert._pseudobulk import read_genes
    from linpert._pseudobulk._raw import RawArray

    cells = make_cells(n_cells=211, n_genes=40, density=0.3)
    raw, packed = tmp_path / "raw.h5ad", tmp_path / "gzip.h5ad"
    cells.write_h5ad(raw)
    cells.write_h5ad(packed, compression="gzip")
    with h5py.File(raw, "r") as f, h5py.File(packed, "r") as g:
        assert RawArray.of(f["X/data"]) is not None and RawArray.of(g["X/data"]) is None
    a, b = pseudobulk(raw, chunk_size=13), pseudobulk(packed, chunk_size=13)
    np.testing.assert_array_equal(a.X, b.X)
    assert_matches(a, cells)
    genes = list(cells.var_names[[3, 0, 31]])
    x, y = read_genes(raw, genes, chunk_size=13).X, read_genes(packed, genes, chunk_size=13).X
    assert (x != y).nnz == 0 and x.nnz == y.nnz


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc", "csr64"])
def test_backed_file_and_path_match_groupby_mean(tmp_path, fmt):
    cells = make_cells(n_cells=103, fmt=fmt)
    path = write(cells, tmp_path / "cells.h5ad")
    backed = anndata.read_h5ad(path, backed="r")
    try:
        assert_matches(pseudobulk(backed, chunk_size=7), cells)
    finally:
        backed.file.close()
    from_path = pseudobulk(path, chunk_size=7)
    assert_matches(from_path, cells)
    assert from_path.uns["linpert"]["source"] == str(path)


def test_backed_layer_and_view(tmp_path):
    cells = make_cells(n_cells=80)
    cells.layers["lognorm"] = make_cells(n_cells=80, seed=2).X
    path = write(cells, tmp_path / "cells.h5ad")
    assert_matches(pseudobulk(path, layer="lognorm", chunk_size=7), cells, cells.layers["lognorm"])
    backed = anndata.read_h5ad(path, backed="r")
    try:
        rows = np.flatnonzero(np.arange(80) % 3 != 1)
        view = backed[rows, [1, 4, 5]]
        expected = cells[rows, [1, 4, 5]]
        result = pseudobulk(view, chunk_size=7)
        assert_matches(result, expected, expected.X)
        assert result.var_names.tolist() == ["GENE1", "GENE4", "GENE5"]
    finally:
        backed.file.close()


def test_merges_gene_orders_and_builds_obs():
    cells = make_cells()
    result = pseudobulk(cells)
    raw = cells.obs["condition"].astype(str)
    counts = raw.map(CANONICAL).value_counts()
    assert result.obs_names.tolist() == ORDER
    assert result.obs.index.name == "condition"
    assert result.obs.columns.tolist() == ["genes", "kind", "n_cells"]
    assert result.obs["genes"].tolist() == ["", "A+B", "A", "C", "D+E"]
    assert result.obs["kind"].tolist() == ["control", "double", "single", "single", "double"]
    assert result.obs["n_cells"].dtype == np.int64
    assert result.obs["n_cells"].tolist() == [counts[c] for c in ORDER]
    # both written orders contributed cells to the merged rows
    assert {"B+A", "A+B"} <= set(raw) and {"ctrl+A", "A+ctrl"} <= set(raw)


def test_gene_symbols_from_gene_name_column():
    cells = make_cells()
    result = pseudobulk(cells)
    assert result.var_names.tolist() == cells.var["gene_name"].tolist()
    assert result.var["gene_id"].tolist() == cells.var_names.tolist()
    kept = pseudobulk(cells, gene_key=None)
    assert kept.var_names.tolist() == cells.var_names.tolist()
    assert "gene_id" not in kept.var.columns
    cells.var.index = cells.var.pop("gene_name").to_numpy()  # symbols as var_names, no column
    assert pseudobulk(cells).var_names.tolist() == [f"GENE{i}" for i in range(cells.n_vars)]


def test_provenance_survives_h5ad_round_trip(tmp_path):
    cells = make_cells()
    result = pseudobulk(cells, layer=None)
    # the conditions in the order they first appear among the cells (the order of the paper's R pseudobulk)
    appearance = list(dict.fromkeys(cells.obs["condition"].astype(str).map(CANONICAL)))
    assert result.uns["linpert"] == {
        "source": "in-memory", "condition_key": "condition", "layer": None, "gene_key": "gene_name", "n_cells": 61,
        "condition_order": appearance,
    }  # fmt: skip
    assert appearance[:2] == ["ctrl", "D+E"] and sorted(appearance) == sorted(result.obs_names)
    back = anndata.read_h5ad(write(result, tmp_path / "pb.h5ad"))
    np.testing.assert_array_equal(back.X, result.X)
    pd.testing.assert_frame_equal(back.obs, result.obs)
    assert back.uns["linpert"]["n_cells"] == 61 and back.uns["linpert"]["source"] == "in-memory"
    assert list(back.uns["linpert"]["condition_order"]) == appearance


def test_progress_bar(capsys):
    pseudobulk(make_cells(), chunk_size=7, progress=True)
    assert "pseudobulk" in capsys.readouterr().err


def test_raw_counts_warn_and_log_values_do_not():
    cells = make_cells()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pseudobulk(cells)
    cells.X = sparse.csr_matrix(np.rint(cells.X.toarray() * 40))
    with pytest.warns(UserWarning, match="looks like raw counts.*normalize_total"):
        pseudobulk(cells)


def test_backed_memory_is_bounded(tmp_path):
    n_cells, n_genes = 40_000, 400
    rng = np.random.default_rng(3)
    X = sparse.random(n_cells, n_genes, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    obs = pd.DataFrame({"condition": np.array(["ctrl", "A+ctrl", "B+ctrl", "A+B"])[rng.integers(0, 4, n_cells)]})
    obs.index = obs.index.astype(str)
    cells = anndata.AnnData(X=X, obs=obs)
    path = write(cells, tmp_path / "big.h5ad")
    dense_bytes = n_cells * n_genes * 8
    # measured in a fresh interpreter: tracemalloc sees every thread, and other tests may leave some running
    code = (
        "import sys, tracemalloc, linpert; "
        "linpert.pseudobulk(sys.argv[1], chunk_size=2_000, gene_key=None); "  # warm-up: imports are not the data
        "tracemalloc.start(); linpert.pseudobulk(sys.argv[1], chunk_size=2_000, gene_key=None); "
        "print(tracemalloc.get_traced_memory()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    peak = int(out.stdout.split()[-1])
    assert peak < dense_bytes / 10, f"peak {peak / 2**20:.1f} MiB vs dense X {dense_bytes / 2**20:.0f} MiB"
    result = pseudobulk(path, chunk_size=2_000, gene_key=None)
    expected = pd.DataFrame(X.toarray().astype(np.float64)).groupby(obs["condition"].to_numpy()).mean()
    np.testing.assert_allclose(result.X, expected.loc[result.obs_names].to_numpy(), rtol=1e-10)


# --- errors ----------------------------------------------------------------------------------------------------------


def test_missing_condition_column_lists_columns():
    with pytest.raises(KeyError, match=r"no column 'perturbation'.*\['condition'\].*condition_key="):
        pseudobulk(make_cells(), condition_key="perturbation")


def test_missing_condition_values():
    cells = make_cells()
    cells.obs["condition"] = cells.obs["condition"].astype(object)
    cells.obs.iloc[[3, 5], 0] = np.nan
    with pytest.raises(ValueError, match=r"missing for 2 cells \(e\.g\. \['cell3', 'cell5'\]\).*notna"):
        pseudobulk(cells)


def test_no_control_cells():
    cells = make_cells()
    cells = cells[cells.obs["condition"] != "ctrl"].copy()
    with pytest.raises(ValueError, match="No control cells.*'ctrl'"):
        pseudobulk(cells)


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_non_finite_values_are_counted_per_condition(tmp_path, fmt):
    cells = make_cells(fmt="dense")
    dense = cells.X.copy()
    where = np.flatnonzero(cells.obs["condition"].astype(str) == "C+ctrl")
    dense[where[0], [0, 2]] = [np.nan, np.inf]
    dense[where[-1], 1] = -np.inf
    cells.X = {"dense": dense, "csr": sparse.csr_matrix(dense), "csc": sparse.csc_matrix(dense)}[fmt]
    with pytest.raises(ValueError, match=r"3 non-finite values \(NaN or inf.*\) in 1 conditions: 'C\+ctrl' \(3\)"):
        pseudobulk(cells, chunk_size=7)
    with pytest.raises(ValueError, match=r"3 non-finite values.*'C\+ctrl' \(3\)"):
        pseudobulk(write(cells, tmp_path / "bad.h5ad"), chunk_size=7)


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_sums_that_overflow_are_refused_not_averaged_to_inf(tmp_path, fmt):
    cells = make_cells(fmt="dense")
    dense = cells.X.copy()
    dense[np.flatnonzero(cells.obs["condition"].astype(str) == "C+ctrl"), 0] = 1e308
    cells.X = sparse.csr_matrix(dense) if fmt == "csr" else dense
    # in memory and from the file, one cell a chunk or many: never an inf mean, always an error naming C+ctrl
    for chunk_size in (1, 7):
        with pytest.raises(ValueError, match=r"(?s)overflows.*'C\+ctrl'|'C\+ctrl'.*overflows"):
            pseudobulk(cells, chunk_size=chunk_size)
        with pytest.raises(ValueError, match=r"(?s)overflows.*'C\+ctrl'|'C\+ctrl'.*overflows"):
            pseudobulk(write(cells, tmp_path / f"big{chunk_size}.h5ad"), chunk_size=chunk_size)


def test_duplicate_gene_symbols():
    cells = make_cells()
    cells.var["gene_name"] = ["GENE0", "GENE1", "GENE0", "GENE3", "GENE1", "GENE5", "GENE6", "GENE7", "GENE8"]
    with pytest.raises(ValueError, match=r"2 gene symbols in var\['gene_name'\].*\['GENE0', 'GENE1'\].*"
                       r"var_names_make_unique.*gene_key=None"):  # fmt: skip
        pseudobulk(cells)
    assert pseudobulk(cells, gene_key=None).n_vars == cells.n_vars


def test_ensembl_var_names_without_symbols():
    cells = make_cells()
    del cells.var["gene_name"]
    with pytest.raises(KeyError, match=r"no gene-symbol column 'gene_name'.*Ensembl.*pass gene_key="):
        pseudobulk(cells)
    cells.var_names = [f"ENSMUSG{i:011d}" for i in range(cells.n_vars)]
    with pytest.raises(KeyError, match="Ensembl"):
        pseudobulk(cells)
    assert pseudobulk(cells, gene_key=None).var_names[0] == "ENSMUSG00000000000"
    with pytest.raises(KeyError, match=r"no column 'symbol'.*gene_key=None"):
        pseudobulk(cells, gene_key="symbol")


def test_missing_layer(tmp_path):
    cells = make_cells()
    cells.layers["counts"] = cells.X.copy()
    with pytest.raises(KeyError, match=r"No layer 'lognorm'.*\['counts'\]"):
        pseudobulk(cells, layer="lognorm")
    with pytest.raises(KeyError, match=r"No layer 'lognorm' in .*cells\.h5ad.*\['counts'\]"):
        pseudobulk(write(cells, tmp_path / "cells.h5ad"), layer="lognorm")


def test_paths_that_are_not_h5ad(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No such file: .*missing\.h5ad"):
        pseudobulk(tmp_path / "missing.h5ad")
    csv = tmp_path / "cells.csv"
    csv.write_text("cell,condition\nc1,ctrl\n")
    with pytest.raises(ValueError, match=r"not an \.h5ad file.*HDF5 signature.*text file .*starting 'cell,cond"):
        pseudobulk(csv)
    gz = tmp_path / "cells.h5ad.gz"
    gz.write_bytes(gzip.compress(b"\x89HDF\r\n\x1a\n rest"))
    with pytest.raises(ValueError, match="gzip-compressed.*gunzip"):
        pseudobulk(gz)
    (tmp_path / "empty.h5ad").touch()
    with pytest.raises(ValueError, match="an empty file"):
        pseudobulk(tmp_path / "empty.h5ad")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["matrix"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"HDF5 file but not an \.h5ad.*no 'obs' group.*\['matrix'\]"):
        pseudobulk(tmp_path / "other.h5")
    with pytest.raises(ValueError, match="is a folder"):
        pseudobulk(tmp_path)


def test_bad_arguments():
    with pytest.raises(TypeError, match="takes an AnnData or the path"):
        pseudobulk(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="chunk_size must be a positive"):
        pseudobulk(make_cells(), chunk_size=0)


@pytest.mark.parametrize("fmt", ["csr", "dense"])
def test_add_rows_counts_the_non_finite_values_of_each_block_alone(fmt):
    """The compiled kernel does not test each value: it counts them only where the sums show a NaN or inf. The
    count must still be this block's alone, per condition, whether the sums or the values are looked at first."""
    pytest.importorskip("numba", reason="the compiled kernel's way of counting is what this checks")
    from linpert._pseudobulk._reduce import add_rows

    rng = np.random.default_rng(5)
    dense = rng.gamma(1.5, 1.0, (60, 8))
    dense[[2, 2, 7, 30], [0, 5, 1, 3]] = [np.nan, np.inf, -np.inf, np.nan]
    as_block = (lambda rows: sparse.csr_matrix(dense[rows])) if fmt == "csr" else (lambda rows: dense[rows])
    codes = np.arange(60) % 3
    codes[30] = -1  # a cell outside the view: its NaN counts for no condition
    sums = np.zeros((3, 8))
    # few conditions, many values: the sums are looked at first
    np.testing.assert_array_equal(add_rows(as_block(np.arange(20)), codes[:20], sums), [0, 1, 2])
    # the sums of condition 1 stay NaN; the next block adds no NaN of its own to it
    np.testing.assert_array_equal(add_rows(as_block(np.arange(20, 40)), codes[20:40], sums), [0, 0, 0])
    # as many conditions as cells, with few values each: the values are counted straight away
    many = np.zeros((20, 8))
    np.testing.assert_array_equal(add_rows(as_block(np.arange(20)), np.arange(20), many),
                                  np.bincount([2, 2, 7], minlength=20))


@pytest.mark.parametrize("layout", ["csr float32", "csr int64 indptr", "dense float64", "csr float64 with nan"])
def test_the_compiled_reducer_and_its_numpy_twin_add_the_same_sums(layout, monkeypatch):
    """Every pseudobulk path (in memory, from a file, on Dask) adds blocks with linpert._reduce.add_rows."""
    pytest.importorskip("numba", reason="the compiled kernel is what this compares; CI installs linpert[fast]")
    from linpert import _compiled
    from linpert._pseudobulk._reduce import add_rows

    rng = np.random.default_rng(3)
    dense = np.where(rng.random((500, 40)) < 0.3, rng.gamma(1.5, 1.0, (500, 40)), 0.0)
    if "nan" in layout:
        dense[[4, 9, 9], [1, 2, 3]] = [np.nan, np.inf, np.nan]
    block = dense if layout.startswith("dense") else sparse.csr_matrix(dense.astype(np.float32 if "32" in layout else
                                                                                    np.float64))
    if "int64" in layout:
        block.indptr, block.indices = block.indptr.astype(np.int64), block.indices.astype(np.int64)
    codes = rng.integers(-1, 7, 500)  # -1: a cell outside the view
    compiled = np.zeros((7, 40))
    bad_compiled = add_rows(block, codes, compiled)
    monkeypatch.setenv("LINPERT_NUMBA", "0")
    _compiled.numba.cache_clear()
    try:
        twin = np.zeros((7, 40))
        bad_twin = add_rows(block, codes, twin)
    finally:
        _compiled.numba.cache_clear()
    np.testing.assert_array_equal(bad_compiled, bad_twin)
    np.testing.assert_allclose(compiled, twin, rtol=1e-13, atol=0, equal_nan=True)
    expected = np.zeros((7, 40))
    np.add.at(expected, codes[codes >= 0], np.asarray(block.todense() if sparse.issparse(block) else block,
                                                         dtype=np.float64)[codes >= 0])
    np.testing.assert_allclose(compiled, expected, rtol=1e-13, atol=0, equal_nan=True)
    assert bad_compiled.sum() == ("nan" in layout) * np.isin(codes[[4, 9]], np.arange(7)).dot([1, 2])


@pytest.mark.parametrize("layout", ["csr float32", "csr int64 indptr", "dense float64"])
def test_rounds_added_together_are_add_rows_of_each_round_to_the_bit(layout):
    """The replicate ceiling adds all its rounds of random halves at once; each round's sums must be add_rows' own."""
    from linpert._pseudobulk._reduce import add_rows, add_rows_rounds

    rng = np.random.default_rng(5)
    dense = np.where(rng.random((600, 30)) < 0.4, rng.gamma(1.5, 1.0, (600, 30)), 0.0)
    block = dense if layout.startswith("dense") else sparse.csr_matrix(dense.astype(np.float32 if "32" in layout else
                                                                                    np.float64))
    if "int64" in layout:
        block.indptr, block.indices = block.indptr.astype(np.int64), block.indices.astype(np.int64)
    codes = rng.integers(-1, 9, (5, 600))  # -1: a cell in neither half
    together = np.zeros((5, 9, 30))
    add_rows_rounds(block, codes, together)
    for r in range(5):
        alone = np.zeros((9, 30))
        add_rows(block, codes[r], alone)
        np.testing.assert_array_equal(together[r], alone)


@pytest.mark.slow
def test_every_pseudobulk_path_also_runs_without_numba():
    """The NumPy twins (a machine without linpert[fast]) pass the same tests: in memory, files, views and Dask."""
    from conftest import REPO

    env = {**os.environ, "LINPERT_NUMBA": "0"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not twin and not without_numba",
                           str(REPO / "tests/python/test_pseudobulk.py"), str(REPO / "tests/python/test_dask.py")],
                          env=env, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "anndata"])
@pytest.mark.parametrize("fmt", ["csr", "csr64", "csc", "dense"])
def test_read_genes_gives_the_backed_slice_in_the_order_asked(tmp_path, fmt, compiled, monkeypatch):
    """The read-out genes' cells, read chunk by chunk: the matrix anndata's backed slicing gives, stored zeros kept."""
    from linpert._pseudobulk import _genes, read_genes

    if compiled:
        pytest.importorskip("numba", reason="the compiled kernel is what this compares; CI installs linpert[fast]")
    else:
        monkeypatch.setattr(_genes, "numba", lambda: None)
    cells = make_cells(n_cells=61, fmt=fmt)
    if fmt != "dense":
        cells.X.data[:3] = 0.0  # stored zeros stay stored
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    genes = list(cells.var_names[[5, 0, 7, 3]])
    got = read_genes(path, genes, chunk_size=7)  # chunks that end mid-condition and a last short one
    backed = anndata.read_h5ad(path, backed="r")
    want = backed[:, genes].to_memory()
    backed.file.close()
    assert list(got.var_names) == genes
    pd.testing.assert_frame_equal(got.obs, want.obs)
    pd.testing.assert_frame_equal(got.var, want.var)
    assert sparse.issparse(got.X) == sparse.issparse(want.X)
    if sparse.issparse(want.X):
        assert got.X.nnz == want.X.nnz and got.X.dtype == want.X.dtype
        np.testing.assert_array_equal(got.X.toarray(), want.X.toarray())
    else:
        np.testing.assert_array_equal(got.X, want.X)
    with pytest.raises(KeyError, match=r"\['nope'\] are not among the var_names"):
        read_genes(path, ["nope", genes[0]])

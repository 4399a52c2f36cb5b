"""Readers: GEARS folders, scFoundation's Norman file, any h5ad/zarr, and the errors on files that are not data."""

from __future__ import annotations

import re
import zipfile

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import linpert
from linpert.datasets import describe_file, read_anndata, read_gears, read_scfoundation_norman
from linpert.datasets._readers import SCFOUNDATION_NORMAN_FILE


def gears_cells(conditions: list[str], *, n_per: int = 3, n_genes: int = 6, seed: int = 0) -> ad.AnnData:
    """A tiny AnnData in GEARS' format: CSR float32 log-normalised X, symbols in var['gene_name']."""
    rng = np.random.default_rng(seed)
    cond = np.repeat(conditions, n_per)
    counts = rng.poisson(3.0, size=(len(cond), n_genes)).astype(np.float64)
    lognorm = np.log1p(counts / counts.sum(1, keepdims=True).clip(1) * 1e4).astype(np.float32)
    dose = np.where(cond == "ctrl", "1", "1+1")
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(cond),
            "cell_type": "K562",
            "dose_val": dose,
            "control": (cond == "ctrl").astype(np.int64),
            "condition_name": [f"K562_{c}_{d}" for c, d in zip(cond, dose)],
        },
        index=[f"cell{i}" for i in range(len(cond))],
    )
    var = pd.DataFrame(
        {"gene_name": [f"G{j}" for j in range(n_genes)]}, index=[f"ENSG{j:011d}" for j in range(n_genes)]
    )
    return ad.AnnData(sparse.csr_matrix(lognorm), obs=obs, var=var)


def norman_cells(*, gene_name: bool = False) -> ad.AnnData:
    """A tiny file shaped like scFoundation's Norman: symbols as var_names, total_count in obs."""
    conditions = ["ctrl", "A+ctrl", "B+ctrl", "A+B", "IER5L+ctrl", "LYL1+IER5L"]
    cells = gears_cells(conditions, n_per=2, n_genes=5, seed=1)
    cells.var_names = [f"SYM{j}" for j in range(5)]
    cells.var = cells.var.drop(columns="gene_name") if not gene_name else cells.var.assign(gene_name=cells.var_names)
    cells.obs = cells.obs[["condition", "cell_type"]].assign(total_count=np.arange(cells.n_obs, dtype=np.float32))
    return cells


def write_go_files(folder, genes, *, without_go=("NOGO",)) -> None:
    """GEARS' two GO files: ``genes`` can be perturbed; ``without_go`` are essential genes that have no GO terms."""
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    gene2go = {gene: {f"GO:{i:07d}"} for i, gene in enumerate(genes)} | {"ONLYGO": {"GO:9999999"}}
    (folder / "gene2go_all.pkl").write_bytes(pickle.dumps(gene2go))
    (folder / "essential_all_data_pert_genes.pkl").write_bytes(pickle.dumps([*genes, *without_go]))


@pytest.fixture
def gears_folder(tmp_path):
    folder = tmp_path / "adamson"
    folder.mkdir()
    cells = gears_cells(["ctrl", "A+ctrl", "B+ctrl"])
    cells.write_h5ad(folder / "perturb_processed.h5ad")
    write_go_files(tmp_path, ["A", "B"])
    return folder, cells


def test_read_gears_folder_file_and_backed(gears_folder):
    folder, cells = gears_folder
    for path in (folder, folder / "perturb_processed.h5ad"):
        got = read_gears(path)
        np.testing.assert_array_equal(got.X.toarray(), cells.X.toarray())
        assert got.obs["condition"].tolist() == cells.obs["condition"].tolist()
        assert got.var["gene_name"].tolist() == ["G0", "G1", "G2", "G3", "G4", "G5"]
    backed = read_gears(folder, backed=True)
    try:
        assert backed.isbacked
        np.testing.assert_array_equal(backed.X[2:5].toarray(), cells.X[2:5].toarray())
    finally:
        backed.file.close()


GEARS_CONDITIONS = ["ctrl", "A+ctrl", "ctrl+B", "A+B", "B+C", "NOGO+ctrl", "ONLYGO+ctrl", "A+NOGO", "Z+ctrl"]
GEARS_KEEPS = ["ctrl", "A+ctrl", "ctrl+B", "A+B", "B+C"]  # by GEARS 0.1.2's filter_pert_in_go, worked by hand


def test_read_gears_keeps_what_gears_keeps_and_says_what_it_dropped(tmp_path):
    folder = tmp_path / "data" / "screen"
    folder.mkdir(parents=True)
    cells = gears_cells(GEARS_CONDITIONS, n_per=2)
    cells.write_h5ad(folder / "perturb_processed.h5ad")
    write_go_files(tmp_path / "data", ["A", "B", "C"])
    dropped = ["NOGO+ctrl", "ONLYGO+ctrl", "A+NOGO", "Z+ctrl"]
    with pytest.warns(UserWarning, match=r"screen: dropped 4 conditions not in GEARS' GO graph.*NOGO\+ctrl"):
        got = read_gears(folder)
    assert got.obs["condition"].unique().tolist() == GEARS_KEEPS
    assert got.uns["linpert"]["dropped_conditions"] == dropped
    assert "essential_all_data_pert_genes.pkl" in got.uns["linpert"]["dropped_reason"]
    kept = cells.obs["condition"].isin(GEARS_KEEPS).to_numpy()
    np.testing.assert_array_equal(got.X.toarray(), cells.X[kept].toarray())
    with pytest.warns(UserWarning, match="dropped 4"):
        backed = read_gears(folder, backed=True)
    try:
        assert backed.isbacked and backed.n_obs == 2 * len(GEARS_KEEPS)
    finally:
        backed.file.close()
    assert read_gears(folder, gears_filter=False).n_obs == cells.n_obs  # every condition, on request

    elsewhere = tmp_path / "go"
    write_go_files(elsewhere, ["A", "B", "C", "Z"])
    with pytest.warns(UserWarning, match="dropped 3"):
        assert "Z+ctrl" in set(read_gears(folder, go_files=elsewhere).obs["condition"])
    with pytest.raises(FileNotFoundError, match=r"GO files .* are not in '.*nowhere'.*fetch\('gene2go_all'\)"):
        read_gears(folder, go_files=tmp_path / "nowhere")
    # a reader of local files downloads nothing: without the files beside the data or in the cache, it says so
    alone = tmp_path / "alone" / "screen"
    alone.mkdir(parents=True)
    gears_cells(GEARS_CONDITIONS).write_h5ad(alone / "perturb_processed.h5ad")
    with pytest.raises(FileNotFoundError, match=r"are not in '.*alone' or '.*empty-cache'.*gears_filter=False"):
        read_gears(alone, cache_dir=tmp_path / "empty-cache")
    write_go_files(tmp_path / "cache", ["A", "B", "C"])
    with pytest.warns(UserWarning, match="dropped 4"):
        read_gears(alone, cache_dir=tmp_path / "cache")  # found in linpert's cache


def test_read_gears_requires_gene_name(tmp_path):
    cells = gears_cells(["ctrl", "A+ctrl"])
    cells.var = cells.var.drop(columns="gene_name")
    cells.write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(KeyError, match="no var column 'gene_name'.*GEARS' files carry gene symbols"):
        read_gears(tmp_path / "x.h5ad")


def test_read_gears_folder_without_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match="no 'perturb_processed.h5ad'.*notes.txt"):
        read_gears(tmp_path)


def test_read_anndata_lists_columns_when_condition_missing(tmp_path):
    cells = gears_cells(["ctrl", "A+ctrl"])
    cells.write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(KeyError, match="no obs column 'perturbation'.*'condition', 'cell_type'"):
        read_anndata(tmp_path / "x.h5ad", condition_key="perturbation")
    got = read_anndata(tmp_path / "x.h5ad", condition_key="dose_val")
    assert got.n_obs == 6


@pytest.mark.filterwarnings("ignore:Writing zarr v2")
def test_read_anndata_zarr(tmp_path):
    cells = gears_cells(["ctrl", "A+ctrl"])
    cells.write_zarr(tmp_path / "x.zarr")
    got = read_anndata(tmp_path / "x.zarr")
    np.testing.assert_array_equal(got.X.toarray(), cells.X.toarray())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"<!DOCTYPE html>\n<html><head><title>Error 403</title></head></html>", "an HTML page.*'Error 403'"),
        (b"PK\x03\x04rest of a zip", "a zip archive"),
        (b"", "an empty file"),
        (b'{"status":"ERROR","message":"File not found"}', "JSON text"),
        (b"gene,value\nA,1\n", "a text file.*'gene,value'"),
    ],
)
def test_not_an_h5ad_says_what_the_file_is(tmp_path, content, expected):
    path = tmp_path / "perturb_processed.h5ad"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"is not an h5ad file: it is {expected}"):
        read_gears(path)
    assert re.match(expected, describe_file(path))


def test_truncated_h5ad_is_reported_as_damaged(tmp_path):
    gears_cells(["ctrl", "A+ctrl"]).write_h5ad(tmp_path / "x.h5ad")
    data = (tmp_path / "x.h5ad").read_bytes()
    (tmp_path / "x.h5ad").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged, most likely a truncated download"):
        read_anndata(tmp_path / "x.h5ad")


def test_read_anndata_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        read_anndata(tmp_path / "nope.h5ad")


def test_norman_reader_drops_the_two_unmapped_conditions(tmp_path):
    cells = norman_cells()
    cells.write_h5ad(tmp_path / SCFOUNDATION_NORMAN_FILE)
    got = read_scfoundation_norman(tmp_path / SCFOUNDATION_NORMAN_FILE)
    assert sorted(got.obs["condition"].cat.categories) == ["A+B", "A+ctrl", "B+ctrl", "ctrl"]
    assert got.n_obs == 8  # 6 conditions x 2 cells, minus 2 x 2
    keep = ~cells.obs["condition"].isin(["IER5L+ctrl", "LYL1+IER5L"]).to_numpy()
    np.testing.assert_array_equal(got.X.toarray(), cells.X[keep].toarray())
    # symbols are the var_names; the reader exposes them as var['gene_name'] too
    assert got.var["gene_name"].tolist() == list(cells.var_names)
    assert got.obs["total_count"].tolist() == cells.obs["total_count"][keep].tolist()

    kept = read_scfoundation_norman(tmp_path / SCFOUNDATION_NORMAN_FILE, drop_unmapped=False)
    assert kept.n_obs == 12 and "LYL1+IER5L" in set(kept.obs["condition"])


def test_norman_reader_keeps_an_existing_gene_name_column(tmp_path):
    cells = norman_cells(gene_name=True)
    cells.var["gene_name"] = [f"OTHER{j}" for j in range(cells.n_vars)]
    cells.write_h5ad(tmp_path / "n.h5ad")
    assert read_scfoundation_norman(tmp_path / "n.h5ad").var["gene_name"].tolist()[0] == "OTHER0"


def test_norman_reader_backed_view_and_drop_in_any_gene_order(tmp_path):
    cells = norman_cells()
    cells.obs["condition"] = cells.obs["condition"].astype(str).replace({"IER5L+ctrl": "ctrl+IER5L"})
    cells.write_h5ad(tmp_path / "n.h5ad")
    got = read_scfoundation_norman(tmp_path / "n.h5ad", backed=True)
    try:
        assert got.isbacked and got.is_view
        assert set(got.obs["condition"]) == {"ctrl", "A+ctrl", "B+ctrl", "A+B"}
        keep = ~cells.obs["condition"].isin(["ctrl+IER5L", "LYL1+IER5L"]).to_numpy()
        np.testing.assert_array_equal(got.X.toarray(), cells.X[keep].toarray())
        # pseudobulk reads the view from disk; its means match numpy's over the kept cells
        pb = linpert.pseudobulk(got)
        dense = cells.X.toarray().astype(np.float64)
        for name, raw in [("ctrl", "ctrl"), ("A+B", "A+B"), ("B+ctrl", "B+ctrl")]:
            rows = (cells.obs["condition"] == raw).to_numpy()
            np.testing.assert_allclose(pb[name].X[0], dense[rows].mean(0), rtol=1e-12)
        assert pb.obs_names.tolist() == ["ctrl", "A+B", "A+ctrl", "B+ctrl"]
    finally:
        got.file.close()


def test_norman_reader_from_the_downloaded_zip(tmp_path):
    cells = norman_cells()
    cells.write_h5ad(tmp_path / "inner.h5ad")
    archive = tmp_path / "norman.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "inner.h5ad", f"scFoundation/GEARS/data/{SCFOUNDATION_NORMAN_FILE}")
        zf.writestr("scFoundation/README.txt", "not data")
    (tmp_path / "inner.h5ad").unlink()
    got = read_scfoundation_norman(archive)
    assert got.n_obs == 8
    unpacked = tmp_path / SCFOUNDATION_NORMAN_FILE
    assert unpacked.exists()
    first = unpacked.stat().st_mtime_ns
    assert read_scfoundation_norman(archive).n_obs == 8
    assert unpacked.stat().st_mtime_ns == first  # unpacked once, then reused
    assert read_scfoundation_norman(tmp_path).n_obs == 8  # a folder holding the file


def test_norman_reader_zip_without_the_file(tmp_path):
    archive = tmp_path / "wrong.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("something/else.h5ad", "x")
    with pytest.raises(Exception, match=f"no member named '{SCFOUNDATION_NORMAN_FILE}'.*something/else.h5ad"):
        read_scfoundation_norman(archive)

"""Readers for cell-level perturbation data: GEARS folders, scFoundation's Norman file, any h5ad or zarr store.

Every reader checks what it opens before trusting it: that the file is HDF5 at all (a download that went wrong
often leaves an HTML error page or a zip under the ``.h5ad`` name), that the condition column exists, and that gene
symbols can be found. ``backed=True`` opens an h5ad read-only on disk (``backed="r"``) so that a file larger than
memory can be pseudobulked in chunks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .._io import damaged_h5ad, describe_file, is_hdf5
from ._gears import DROP_REASON, dropped_by_gears, find_go_files, perturbable_genes

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = ["read_anndata", "read_gears", "read_scfoundation_norman", "describe_file"]

GEARS_FILE = "perturb_processed.h5ad"
SCFOUNDATION_NORMAN_FILE = "gse133344_k562gi_oe_pert227_84986_19264_withtotalcount.h5ad"
# Conditions of scFoundation's Norman file whose genes are not in GEARS' GO graph; the paper drops them (spec §1).
NORMAN_UNMAPPED = ("LYL1+IER5L", "IER5L+ctrl")


def is_zip(path: str | os.PathLike) -> bool:
    """Whether the file starts with a zip signature."""
    with open(path, "rb") as handle:
        return handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


def _check_h5ad(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"No such file: {str(path)!r}. Check the path, or download the data first.")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder, not an .h5ad file (a zarr store's name ends in .zarr).")
    if not is_hdf5(path):
        raise ValueError(
            f"{str(path)!r} is not an h5ad file: it is {describe_file(path)}. An h5ad is an HDF5 file. If it was "
            "downloaded, the download went wrong: delete it and download it again (or unpack it, if it is an archive)."
        )
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            groups = sorted(handle.keys())
    except OSError as err:
        raise damaged_h5ad(path, err) from err
    missing = [key for key in ("obs", "var") if key not in groups]
    if missing:
        raise ValueError(
            f"{str(path)!r} is an HDF5 file but not an AnnData .h5ad: it has no {' or '.join(missing)} (it holds "
            f"{', '.join(groups[:8]) or 'nothing'}). Give an .h5ad written by anndata (adata.write_h5ad)."
        )


def _open(path: str | os.PathLike, *, backed: bool) -> AnnData:
    import anndata

    path = Path(path)
    if path.is_dir() and (path.suffix == ".zarr" or (path / ".zgroup").exists() or (path / "zarr.json").exists()):
        # zarr stores have no backed mode in anndata's reader; they are read into memory
        return anndata.read_zarr(path)
    _check_h5ad(path)
    try:
        return anndata.read_h5ad(path, backed="r" if backed else None)
    except OSError as err:
        raise damaged_h5ad(path, err) from err


def _require_condition(adata: AnnData, condition_key: str, path: Path) -> None:
    if condition_key not in adata.obs.columns:
        columns = ", ".join(map(repr, adata.obs.columns)) or "none"
        raise KeyError(
            f"{str(path)!r} has no obs column {condition_key!r}; its obs columns are: {columns}. Pass the column that "
            "names each cell's perturbation as condition_key=..."
        )


def read_anndata(path: str | os.PathLike, *, condition_key: str = "condition", backed: bool = False) -> AnnData:
    """Read any ``.h5ad`` file (or ``.zarr`` store) whose cells carry a perturbation condition.

    Parameters
    ----------
    path
        An ``.h5ad`` file or a ``.zarr`` folder.
    condition_key
        The obs column naming each cell's condition (``ctrl``, ``A+ctrl``, ``A+B``).
    backed
        Open an h5ad read-only on disk (``backed="r"``) instead of loading it; zarr stores are always loaded.

    Returns
    -------
    The AnnData as stored; condition names are not rewritten here (:func:`linpert.pseudobulk` does that).

    Examples
    --------
    >>> adata = read_anndata("cells.h5ad", condition_key="perturbation")  # doctest: +SKIP
    """
    path = Path(path)
    adata = _open(path, backed=backed)
    _require_condition(adata, condition_key, path)
    return adata


def _gears_file(path: Path) -> Path:
    if path.is_dir():
        candidate = path / GEARS_FILE
        if not candidate.exists():
            found = sorted(p.name for p in path.iterdir())[:10]
            raise FileNotFoundError(
                f"{str(path)!r} is not a GEARS dataset folder: it has no {GEARS_FILE!r} (it holds: "
                f"{', '.join(found) or 'nothing'}). Pass '<data_path>/<name>/' or the .h5ad itself."
            )
        return candidate
    return path


def read_gears(
    path: str | os.PathLike,
    *,
    backed: bool = False,
    gears_filter: bool = True,
    go_files: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> AnnData:
    """Read a dataset in GEARS' format (its folder ``<data_path>/<name>/`` or its ``perturb_processed.h5ad``), keeping
    the conditions GEARS' ``PertData`` keeps, as the paper did.

    GEARS' files hold log-normalised expression in ``X``, the condition (``ctrl``, ``A+ctrl``, ``A+B``) in
    ``obs['condition']``, gene symbols in ``var['gene_name']`` and Ensembl IDs as ``var_names``.

    Parameters
    ----------
    path
        A GEARS dataset folder holding ``perturb_processed.h5ad``, or that file.
    backed
        Open the file read-only on disk instead of loading it (with conditions dropped, a view of the backed file).
    gears_filter
        Keep only the conditions GEARS 0.1.2's ``PertData.load`` keeps: ``ctrl`` and perturbations of genes in its
        GO graph (see :mod:`linpert.datasets._gears`). The dropped ones are named in a warning and in
        ``uns['linpert']['dropped_conditions']``. ``False`` keeps every condition of the file.
    go_files
        The folder with GEARS' ``gene2go_all.pkl`` and ``essential_all_data_pert_genes.pkl``. Default: the dataset
        folder's parent (GEARS' ``data_path``) when it holds them, else linpert's cache; the error says how to
        download them (``linpert.datasets.fetch``) where neither has them.
    cache_dir
        linpert's cache folder; default ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``.

    Examples
    --------
    >>> adata = read_gears("data/adamson")  # doctest: +SKIP
    >>> adata.obs["condition"].nunique(), len(adata.uns["linpert"]["dropped_conditions"])  # doctest: +SKIP
    (82, 6)
    """
    file = _gears_file(Path(path))
    adata = _open(file, backed=backed)
    _require_condition(adata, "condition", file)
    if "gene_name" not in adata.var.columns:
        columns = ", ".join(map(repr, adata.var.columns)) or "none"
        raise KeyError(
            f"{str(file)!r} has no var column 'gene_name' (its var columns are: {columns}). GEARS' files carry gene "
            "symbols there; for a file that keeps symbols elsewhere use linpert.datasets.read_anndata() and pass "
            "gene_key=... to linpert.pseudobulk()."
        )
    if not gears_filter:
        return adata
    genes = perturbable_genes(find_go_files(file, go_files, cache_dir))
    dropped = dropped_by_gears(adata.obs["condition"].astype(str).unique(), genes)
    return _drop_conditions(adata, dropped, backed=backed, what=file.parent.name)


def _drop_conditions(adata: AnnData, dropped: list[str], *, backed: bool, what: str) -> AnnData:
    """Drop the cells of ``dropped``, say so in a warning and record the names and the reason in ``uns['linpert']``."""
    import warnings

    if dropped:
        keep = ~adata.obs["condition"].astype(str).isin(dropped).to_numpy()
        adata = adata[keep] if backed else adata[keep].copy()
        if not backed and hasattr(adata.obs["condition"], "cat"):
            adata.obs["condition"] = adata.obs["condition"].cat.remove_unused_categories()
        shown = ", ".join(dropped[:10]) + (f" and {len(dropped) - 10} more" if len(dropped) > 10 else "")
        warnings.warn(
            f"{what}: dropped {len(dropped)} condition{'s' * (len(dropped) != 1)} {DROP_REASON}: {shown}. "
            "Pass gears_filter=False to keep them.",
            UserWarning,
            stacklevel=3,
        )
    if not adata.is_view:  # a view of a backed file would be loaded to record it: the warning says it there
        info = dict(adata.uns.get("linpert", {}))
        info.update(dropped_conditions=list(dropped), dropped_reason=DROP_REASON)
        adata.uns["linpert"] = info
    return adata


def _scfoundation_file(path: Path) -> Path:
    if path.is_dir():
        hits = sorted(path.rglob(SCFOUNDATION_NORMAN_FILE))
        if not hits:
            raise FileNotFoundError(
                f"No {SCFOUNDATION_NORMAN_FILE!r} under {str(path)!r}. Pass the .h5ad, or the zip downloaded from "
                "https://figshare.com/ndownloader/files/44477939 (linpert.datasets.norman() fetches it)."
            )
        return hits[0]
    if path.exists() and not path.is_dir() and is_zip(path):
        from ._download import extract_member

        # unpacked once beside the zip; later calls reuse the unpacked file
        return extract_member(path, SCFOUNDATION_NORMAN_FILE, path.parent / SCFOUNDATION_NORMAN_FILE)
    return path


def _is_unmapped(condition: str) -> bool:
    from .._conditions import parse_condition

    unmapped = {frozenset(parse_condition(c).genes) for c in NORMAN_UNMAPPED}
    return frozenset(parse_condition(condition).genes) in unmapped


def unmapped_norman_conditions(conditions) -> list[str]:
    """The raw names among ``conditions`` that are one of :data:`NORMAN_UNMAPPED`, in any gene order."""
    return [c for c in dict.fromkeys(map(str, conditions)) if _is_unmapped(c)]


def read_scfoundation_norman(
    path: str | os.PathLike, *, drop_unmapped: bool = True, backed: bool = False
) -> AnnData:
    """Read scFoundation's processed Norman et al. (2019) file, the one the paper's double-perturbation benchmark used.

    The file (figshare file 44477939, a zip holding ``gse133344_k562gi_oe_pert227_84986_19264_withtotalcount.h5ad``)
    has 19,264 genes and obs columns ``condition``, ``cell_type`` and ``total_count``. Gene symbols are its
    ``var_names``. When ``var`` has no ``gene_name`` column, this reader adds one equal to the ``var_names`` so that
    every reader hands :func:`linpert.pseudobulk` symbols in the same place (``gene_key="gene_name"``).

    Parameters
    ----------
    path
        The ``.h5ad``, the downloaded zip (the h5ad is unpacked beside it once), or a folder holding the h5ad.
    drop_unmapped
        Drop the cells of ``LYL1+IER5L`` and ``IER5L+ctrl``, whose genes are not in GEARS' GO graph; the paper
        drops them, leaving 225 conditions (ctrl, 100 singles, 124 doubles).
    backed
        Open the file read-only on disk. With ``drop_unmapped`` the result is then a view of the backed file:
        :func:`linpert.pseudobulk` reads it from disk in chunks, but ``adata.X`` loads every kept cell at once
        and anndata cannot take a view of it again (``adata.to_memory()`` first, if it fits).

    Examples
    --------
    >>> adata = read_scfoundation_norman("norman_scfoundation.zip")  # doctest: +SKIP
    >>> adata.n_vars, adata.obs["condition"].nunique()  # doctest: +SKIP
    (19264, 225)
    """
    file = _scfoundation_file(Path(path))
    adata = _open(file, backed=backed)
    _require_condition(adata, "condition", file)
    if "gene_name" not in adata.var.columns:
        # symbols are the var_names in this file; expose them where GEARS-format readers put them
        adata.var["gene_name"] = adata.var_names.astype(str)
    if drop_unmapped:
        conditions = adata.obs["condition"].astype(str)
        drop = set(unmapped_norman_conditions(conditions.unique()))
        if drop:
            keep = ~conditions.isin(drop).to_numpy()
            adata = adata[keep] if backed else adata[keep].copy()
            if not backed and hasattr(adata.obs["condition"], "cat"):
                adata.obs["condition"] = adata.obs["condition"].cat.remove_unused_categories()
    return adata

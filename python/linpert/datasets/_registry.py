"""The published datasets and resources of the benchmark, by name: where they live and how to load them.

Each resource is one downloadable file. Its usable file lands at ``<cache>/<path>``, where ``<cache>`` is
``cache_dir=``, else ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``. The layout matches GEARS' ``data_path``
(``<cache>/adamson/perturb_processed.h5ad``, ``<cache>/gene2go_all.pkl``, ...), so the cache folder can be handed
to GEARS as is.

Where the bytes come from, first match wins: the ``url=`` argument of :func:`fetch`; ``$LINPERT_MIRROR``, meaning
"fetch ``<mirror>/<download name>``" (the download names are the ``filename`` column of :func:`list_resources`);
the publisher's address. Offline, put the finished file at its ``path`` by hand: it is adopted (hashed once and
recorded) instead of downloaded.

The remote files' checksums are not published, so the registry stores none (``sha256=None``); the sha256 computed
at download goes into ``<file>.manifest.json`` and later loads are checked against it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .._conditions import canonical_names
from .._config import ENV_MIRROR
from ._download import DownloadError, data_dir, download, verify_cached, write_manifest
from ._readers import (
    GEARS_FILE,
    SCFOUNDATION_NORMAN_FILE,
    read_gears,
    read_scfoundation_norman,
    unmapped_norman_conditions,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from anndata import AnnData

__all__ = [
    "Resource",
    "RESOURCES",
    "fetch",
    "list_resources",
    "load",
    "norman",
    "norman_gears",
    "adamson",
    "replogle_k562",
    "replogle_rpe1",
]

_DATAVERSE = "https://dataverse.harvard.edu/api/access/datafile/"
LEVELS = ("pseudobulk", "cells")


@dataclass(frozen=True)
class Resource:
    """One downloadable file of the registry.

    Attributes
    ----------
    name
        The registry key (``fetch(name)``).
    url
        The publisher's address.
    filename
        The download's file name; under ``$LINPERT_MIRROR`` it is fetched as ``<mirror>/<filename>``.
    path
        Where the usable file lands, relative to the cache folder.
    member
        The archive member to unpack to ``path`` (matched by path suffix), or None when the download is the file.
    kind
        What the download must look like: ``zip``, ``tar.gz``, ``h5ad`` or ``other`` (only HTML/empty rejected).
    size, sha256, md5
        What the download must be, where known; None skips the check.
    reader
        ``gears`` or ``scfoundation_norman`` for datasets; None for other resources.
    description
        One line for :func:`list_resources`.
    """

    name: str
    url: str
    filename: str
    path: str
    member: str | None = None
    kind: str = "other"
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    reader: str | None = None
    description: str = ""


def _gears_dataset(name: str, folder: str, datafile: int, description: str) -> Resource:
    return Resource(
        name=name,
        url=f"{_DATAVERSE}{datafile}",
        filename=f"{folder}.zip",
        path=f"{folder}/{GEARS_FILE}",
        member=f"{folder}/{GEARS_FILE}",
        kind="zip",
        reader="gears",
        description=description,
    )


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            name="norman",
            url="https://figshare.com/ndownloader/files/44477939",
            filename="norman_scfoundation.zip",
            path=f"norman_scfoundation/{SCFOUNDATION_NORMAN_FILE}",
            member=SCFOUNDATION_NORMAN_FILE,
            kind="zip",
            reader="scfoundation_norman",
            description="Norman et al. 2019 K562 CRISPRa, scFoundation's processing (19,264 genes); the paper's "
            "double-perturbation data",
        ),
        _gears_dataset("norman_gears", "norman", 6154020, "Norman et al. 2019 as GEARS processed it"),
        _gears_dataset("adamson", "adamson", 6154417, "Adamson et al. 2016 K562 CRISPRi, GEARS' processing"),
        _gears_dataset(
            "replogle_k562", "replogle_k562_essential", 7458695, "Replogle et al. 2022 K562 essential, GEARS' subset"
        ),
        _gears_dataset(
            "replogle_rpe1", "replogle_rpe1_essential", 7458694, "Replogle et al. 2022 RPE1 essential, GEARS' subset"
        ),
        Resource(
            name="gene2go_all",
            url=f"{_DATAVERSE}6153417",
            filename="gene2go_all.pkl",
            path="gene2go_all.pkl",
            description="GEARS: gene -> GO terms (pickled dict)",
        ),
        Resource(
            name="essential_all_data_pert_genes",
            url=f"{_DATAVERSE}6934320",
            filename="essential_all_data_pert_genes.pkl",
            path="essential_all_data_pert_genes.pkl",
            description="GEARS: the perturbation genes of its GO graph (pickled list)",
        ),
        Resource(
            name="go_essential_all",
            url=f"{_DATAVERSE}6934319",
            filename="go_essential_all.tar.gz",
            path="go_essential_all/go_essential_all.csv",
            member="go_essential_all/go_essential_all.csv",
            kind="tar.gz",
            description="GEARS: gene-gene GO similarity edges (source, target, importance)",
        ),
    )
}


def _resource(name: str) -> Resource:
    try:
        return RESOURCES[name]
    except KeyError:
        raise KeyError(f"Unknown resource {name!r}; choose one of: {', '.join(RESOURCES)}.") from None


def list_resources(*, cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """A table of the registry: name, description, url, download filename, cache path and whether it is cached.

    Examples
    --------
    >>> "adamson" in list_resources().index
    True
    """
    import pandas as pd

    root = data_dir(cache_dir)
    rows = [
        {
            "description": r.description,
            "url": r.url,
            "filename": r.filename,
            "path": str(root / r.path),
            "cached": (root / r.path).exists(),
        }
        for r in RESOURCES.values()
    ]
    return pd.DataFrame(rows, index=pd.Index(list(RESOURCES), name="name"))


def _source_url(resource: Resource, url: str | None) -> str:
    if url is not None:
        return url
    mirror = os.environ.get(ENV_MIRROR)
    if mirror:
        return f"{mirror.rstrip('/')}/{resource.filename}"
    return resource.url


def fetch(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    url: str | None = None,
    progress: bool = True,
    verify: bool = False,
    keep_archive: bool = False,
    timeout: float = 60.0,
    retries: int = 2,
) -> Path:
    """Make sure resource ``name`` is in the cache and return the path of its usable file.

    The first call downloads (and unpacks) it; later calls make no network request and only check the cached
    file against its manifest (size and modification time; the full sha256 when those changed or ``verify=True``).

    Parameters
    ----------
    name
        A key of :data:`RESOURCES` (see :func:`list_resources`).
    cache_dir
        The cache folder; default ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``.
    url
        Fetch from this address instead of the publisher's (or ``$LINPERT_MIRROR``).
    progress
        Show a progress bar, in bytes.
    verify
        Re-hash a cached file even when its size and modification time match the manifest.
    keep_archive
        Keep the downloaded zip / tar.gz after unpacking (by default it is deleted to save disk).
    timeout, retries
        Seconds to wait for the server; resumptions after a dropped connection within this call.

    Examples
    --------
    >>> path = fetch("gene2go_all")  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'gene2go_all.pkl'
    """
    from .._config import __version__

    resource = _resource(name)
    target = data_dir(cache_dir) / resource.path
    if target.exists():
        verify_cached(target, full=verify)
        return target
    source = _source_url(resource, url)
    archive = target.with_name(resource.filename) if resource.member else target
    got = download(
        source,
        archive,
        size=resource.size,
        sha256=resource.sha256,
        md5=resource.md5,
        kind=resource.kind,
        progress=progress,
        timeout=timeout,
        retries=retries,
    )
    record = {
        "resource": name,
        "url": source,
        "download": {"filename": resource.filename, **{k: v for k, v in got.items() if v is not None}},
        "linpert": __version__,
        "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if resource.member:
        record["sha256"] = _unpack(resource, archive, target)
        if not keep_archive:
            os.remove(archive)
    else:
        _check_or_delete(target, [target])
        record["sha256"] = got["sha256"]
    write_manifest(target, record)
    return target


def _unpack(resource: Resource, archive: Path, target: Path) -> str:
    """Unpack the resource's member to ``target``; on failure delete the download, so the next call fetches it anew."""
    from ._download import _extract

    try:
        digest = _extract(archive, resource.member, target)
    except DownloadError as err:
        _delete_and_explain(err, target, [target, archive])
    _check_or_delete(target, [target, archive])
    return digest


def _check_or_delete(target: Path, downloaded: list[Path]) -> None:
    """Open the usable file as what it claims to be before it is cached; a damaged one is deleted, never trusted."""
    from .._io import check_pickle
    from ._readers import _check_h5ad

    check = {".h5ad": _check_h5ad, ".pkl": check_pickle}.get(target.suffix)
    try:
        if check is not None:
            check(target)
    except ValueError as err:
        _delete_and_explain(err, target, downloaded)


def _delete_and_explain(err: Exception, target: Path, downloaded: list[Path]) -> NoReturn:
    for path in downloaded:
        if path.exists():
            os.remove(path)
    raise DownloadError(
        f"{err} The download was deleted; call again to fetch it afresh. If this happens again, the server sends "
        f"another file than linpert expects: set {ENV_MIRROR} to a mirror, or put the usable file at "
        f"{str(target)!r} by hand."
    ) from err


# --- datasets ----------------------------------------------------------------------------------------------


def _pseudobulk_version() -> str:
    from .. import _pseudobulk

    return str(_pseudobulk.PSEUDOBULK_VERSION)


def _read_cells(
    resource: Resource, path: Path, *, backed: bool, cache_dir=None, drop_unmapped: bool = True
) -> AnnData:
    if resource.reader == "scfoundation_norman":
        return read_scfoundation_norman(path, backed=backed, drop_unmapped=drop_unmapped)
    go_files = _fetch_go_files(cache_dir) if drop_unmapped else None
    return read_gears(path, backed=backed, gears_filter=drop_unmapped, go_files=go_files)


def _fetch_go_files(cache_dir) -> Path:
    """GEARS' two GO files in the cache (downloaded once, as GEARS' PertData downloads them); their folder."""
    from ._gears import GO_FILES

    for name in GO_FILES:
        fetch(name.removesuffix(".pkl"), cache_dir=cache_dir, progress=False)
    return data_dir(cache_dir)


def _condition_filter(resource: Resource, cache_dir) -> tuple[Callable[[Iterable[str]], list[str]], str, dict]:
    """What the paper's loading drops (a function of the condition names), why, and the sha256 of the files that
    decide it (for the cache key); GEARS' GO graph is read only when the function is called."""
    if resource.reader == "scfoundation_norman":
        # the paper ran scFoundation's GEARS 0.0.2 fork on this file, whose GO graph lacks IER5L
        return unmapped_norman_conditions, "not in the GO graph of scFoundation's GEARS fork", {}
    from ._gears import DROP_REASON, GO_FILES, dropped_by_gears, perturbable_genes

    folder = _fetch_go_files(cache_dir)
    files = {name: verify_cached(folder / name) for name in GO_FILES}
    return lambda names: dropped_by_gears(names, perturbable_genes(folder)), DROP_REASON, files


def _close(adata: AnnData) -> None:
    if getattr(adata, "isbacked", False):
        adata.file.close()


def _cached_pseudobulk(path: Path, key: dict) -> AnnData | None:
    import anndata

    if not path.exists():
        return None
    try:
        pb = anndata.read_h5ad(path)
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache is rebuilt
    stored = pb.uns.get("linpert", {}).get("cache", {})
    return pb if {k: str(v) for k, v in dict(stored).items()} == key else None


def _pseudobulk(resource: Resource, raw: Path, *, progress: bool, cache_dir=None) -> AnnData:
    import warnings

    from .. import _pseudobulk
    from .._io import atomic_write

    drops, reason, go_files = _condition_filter(resource, cache_dir)
    key = {"raw_sha256": verify_cached(raw), "pseudobulk_version": _pseudobulk_version(),
           **{f"{name}_sha256": digest for name, digest in go_files.items()}}
    cache = raw.with_name(f"{resource.name}.pseudobulk.h5ad")
    pb = _cached_pseudobulk(cache, key)
    if pb is None:
        # the conditions are dropped after averaging: a condition's mean does not depend on the others, and the raw
        # file can then be read in chunks without a subsetting view
        cells = _read_cells(resource, raw, backed=True, drop_unmapped=False)
        try:
            names = cells.obs["condition"].astype(str).unique()
            pb = _pseudobulk.pseudobulk(cells, condition_key="condition", gene_key="gene_name", progress=progress)
        finally:
            _close(cells)
        dropped = drops(names)
        gone = set(canonical_names(names)[dropped]) if dropped else set()
        pb = pb[~pb.obs_names.isin(gone)].copy()
        info = dict(pb.uns.get("linpert", {}))
        info.update(dataset=resource.name, source_url=resource.url, raw_file=raw.name, cache=key,
                    dropped_conditions=list(dropped), dropped_reason=reason)
        pb.uns["linpert"] = info
        atomic_write(cache, pb, kind="h5ad")
    dropped = [str(name) for name in pb.uns["linpert"].get("dropped_conditions", [])]
    if dropped:
        warnings.warn(f"{resource.name}: dropped {len(dropped)} condition{'s' * (len(dropped) != 1)} as the paper "
                      f"did ({reason}): {', '.join(dropped[:10])}{' ...' if len(dropped) > 10 else ''}.",
                      UserWarning, stacklevel=4)
    return pb


def load(
    name: str,
    *,
    level: str = "pseudobulk",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    backed: bool = True,
) -> AnnData:
    """Load a published dataset by name: downloaded once, then read from the cache.

    Parameters
    ----------
    name
        ``norman``, ``norman_gears``, ``adamson``, ``replogle_k562`` or ``replogle_rpe1``.
    level
        ``"pseudobulk"``: the mean log expression per condition (see :func:`linpert.pseudobulk`), cached beside the
        raw file as ``<name>.pseudobulk.h5ad`` and rebuilt when the raw file or linpert's pseudobulk changes.
        ``"cells"``: the cell-level data in GEARS' format.
    cache_dir
        The cache folder; default ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``.
    progress
        Show progress bars for the download and the pseudobulk.
    backed
        With ``level="cells"``, open the file read-only on disk instead of loading it.

    Examples
    --------
    >>> pb = load("adamson")  # doctest: +SKIP
    >>> pb.shape  # doctest: +SKIP
    (88, 5060)
    """
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is not one of {LEVELS}; use 'pseudobulk' or 'cells'.")
    resource = _resource(name)
    if resource.reader is None:
        raise ValueError(f"{name!r} is a resource, not a dataset; get its file with linpert.datasets.fetch({name!r}).")
    raw = fetch(name, cache_dir=cache_dir, progress=progress)
    if level == "cells":
        return _read_cells(resource, raw, backed=backed, cache_dir=cache_dir)
    return _pseudobulk(resource, raw, progress=progress, cache_dir=cache_dir)


def norman(
    *, level: str = "pseudobulk", cache_dir: str | os.PathLike | None = None, progress: bool = True, backed: bool = True
) -> AnnData:
    """Norman et al. (2019), K562 CRISPRa single and double perturbations, as the paper used it.

    scFoundation's processed file (figshare file 44477939): 19,264 genes; the conditions ``LYL1+IER5L`` and
    ``IER5L+ctrl`` are dropped (not in GEARS' GO graph), leaving ctrl, 100 singles and 124 doubles.
    See :func:`load` for the parameters.

    Examples
    --------
    >>> pb = linpert.datasets.norman()  # doctest: +SKIP
    >>> pb.obs["kind"].value_counts().to_dict()  # doctest: +SKIP
    {'double': 124, 'single': 100, 'control': 1}
    """
    return load("norman", level=level, cache_dir=cache_dir, progress=progress, backed=backed)


def norman_gears(
    *, level: str = "pseudobulk", cache_dir: str | os.PathLike | None = None, progress: bool = True, backed: bool = True
) -> AnnData:
    """Norman et al. (2019) as GEARS processed it (Harvard Dataverse datafile 6154020). See :func:`load`."""
    return load("norman_gears", level=level, cache_dir=cache_dir, progress=progress, backed=backed)


def adamson(
    *, level: str = "pseudobulk", cache_dir: str | os.PathLike | None = None, progress: bool = True, backed: bool = True
) -> AnnData:
    """Adamson et al. (2016), K562 CRISPRi, 81 single perturbations, 5,060 genes (GEARS' datafile 6154417).

    See :func:`load` for the parameters.

    Examples
    --------
    >>> cells = linpert.datasets.adamson(level="cells")  # doctest: +SKIP
    >>> cells.isbacked  # doctest: +SKIP
    True
    """
    return load("adamson", level=level, cache_dir=cache_dir, progress=progress, backed=backed)


def replogle_k562(
    *, level: str = "pseudobulk", cache_dir: str | os.PathLike | None = None, progress: bool = True, backed: bool = True
) -> AnnData:
    """Replogle et al. (2022), K562 essential-gene CRISPRi, 1,087 singles, 5,000 genes (GEARS' datafile 7458695).

    See :func:`load` for the parameters.
    """
    return load("replogle_k562", level=level, cache_dir=cache_dir, progress=progress, backed=backed)


def replogle_rpe1(
    *, level: str = "pseudobulk", cache_dir: str | os.PathLike | None = None, progress: bool = True, backed: bool = True
) -> AnnData:
    """Replogle et al. (2022), RPE1 essential-gene CRISPRi, 1,534 singles, 5,000 genes (GEARS' datafile 7458694).

    See :func:`load` for the parameters.
    """
    return load("replogle_rpe1", level=level, cache_dir=cache_dir, progress=progress, backed=backed)

"""Download published data into a local cache: streamed, resumable, verified, and moved into place atomically.

The life of a download:

1. Stream the URL into ``<file>.part`` with a progress bar. When a ``.part`` is already there, ask for the rest
   with an HTTP ``Range`` request; a server that answers ``200`` instead of ``206`` sends the whole file, so the
   download starts over.
2. Check what arrived: the byte count against ``Content-Length`` (and the registry's size, when it knows one), the
   checksum against the registry (sha256 or md5, when it knows one) and the first bytes against the expected kind
   of file, so that an HTML error page saved instead of a zip is caught here and not deep inside a reader.
3. ``os.replace`` the ``.part`` onto its final name; unpack the archive member the same way (``.part``, then
   ``os.replace``). A failure never leaves a half file under a final name. A connection that closes early keeps
   the ``.part`` so that the next call resumes; a size or checksum mismatch deletes it.
4. Record the sha256 of the final file in ``<file>.manifest.json``. Later loads compare the file's size and
   modification time with the manifest, and re-hash it when they changed, so a damaged cache is reported instead
   of being read.

Only the standard library speaks HTTP here (``urllib.request``), with a timeout and a User-Agent.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .._config import ENV_MIRROR, data_dir
from .._io import atomic_write
from ._readers import describe_file, is_hdf5, is_zip

__all__ = ["DownloadError", "data_dir", "download", "extract_member", "file_sha256"]

CHUNK = 1 << 20
TIMEOUT = 60.0


def _user_agent() -> str:
    from .._config import __version__

    # Dataverse refuses some default client names (it answers 403 with an HTML page); name ourselves plainly
    return f"linpert/{__version__} Python-urllib/{sys.version_info.major}.{sys.version_info.minor}"


class DownloadError(RuntimeError):
    """A download failed or arrived damaged; the message names the file, what was expected and what to do."""


class _Interrupted(Exception):
    """The connection closed before the whole file arrived; the ``.part`` file is kept for resuming."""

    def __init__(self, received: int, total: int | None, cause: BaseException | None) -> None:
        super().__init__(received, total, cause)
        self.received, self.total, self.cause = received, total, cause


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def _progress_bar(*, total: int | None, initial: int, desc: str, enabled: bool) -> Iterator:
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled
    )
    try:
        yield bar
    finally:
        bar.close()


def _open_url(url: str, *, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": _user_agent(), "Accept": "*/*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _http_failure(url: str, err: Exception, dest: Path) -> DownloadError:
    if isinstance(err, urllib.error.HTTPError):
        why = f"the server answered {err.code} {err.reason}"
        if err.code in (401, 403, 429):
            why += " (some servers refuse or rate-limit automated downloads; try again later)"
    else:
        why = f"it could not be reached ({getattr(err, 'reason', err)})"
    return DownloadError(
        f"Cannot download {url}: {why}. Check the network, set {ENV_MIRROR} to a mirror holding the file, or "
        f"download it by hand and put the finished file at {str(dest)!r}."
    )


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """Parse ``bytes start-end/total`` into (start, total); None when absent or malformed."""
    match = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    if not match:
        return None
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _hashers(part: Path, offset: int, md5: bool) -> list:
    found = [hashlib.sha256()] + ([hashlib.md5()] if md5 else [])
    if offset:
        # resuming: the digest must cover the bytes that arrived last time too
        with open(part, "rb") as handle:
            while chunk := handle.read(CHUNK):
                for h in found:
                    h.update(chunk)
    return found


def _stream(
    url: str, part: Path, *, size: int | None, want_md5: bool, progress: bool, timeout: float, dest: Path
) -> tuple[int, list]:
    """One attempt: fetch the missing bytes of ``url`` into ``part``; return (bytes in part, hashers)."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open_url(url, offset=offset, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the .part is not a prefix of what the server has now: start over
            _remove(part)
            return _stream(url, part, size=size, want_md5=want_md5, progress=progress, timeout=timeout, dest=dest)
        raise _http_failure(url, err, dest) from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise _http_failure(url, err, dest) from err

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        resumed = _content_range(response.headers.get("Content-Range")) if response.status == 206 else None
        if offset and (resumed is None or resumed[0] != offset):
            # the server ignored Range (200) or answered another range: it sends the file from byte 0
            offset = 0
        total = offset + length if length is not None else (resumed[1] if resumed else None)
        if size is not None and total is not None and total != size:
            _remove(part)
            raise DownloadError(
                f"The server offers {url} with {total:,} bytes, but {size:,} bytes were expected; the file on the "
                f"server is not the one linpert knows. Nothing was kept. Report this, or set {ENV_MIRROR} to a "
                "mirror of the expected file."
            )
        hashers = _hashers(part, offset, want_md5)
        received = offset
        with open(part, "ab" if offset else "wb") as out, _progress_bar(
            total=total if total is not None else size, initial=offset, desc=dest.name, enabled=progress
        ) as bar:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    for h in hashers:
                        h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (http.client.HTTPException, ConnectionError, TimeoutError, ssl.SSLError) as err:
                raise _Interrupted(received, total, err) from err
    if total is not None and received < total:
        raise _Interrupted(received, total, None)
    return received, hashers


def _looks_like(path: Path, kind: str | None) -> bool:
    if kind in ("zip",):
        return is_zip(path)
    if kind == "tar.gz":
        with open(path, "rb") as handle:
            return handle.read(2) == b"\x1f\x8b"
    if kind == "h5ad":
        return is_hdf5(path)
    what = describe_file(path)
    return not what.startswith(("an HTML page", "JSON text", "an empty file"))


_KIND_WORDS = {"zip": "a zip archive", "tar.gz": "a gzip-compressed tar archive", "h5ad": "an h5ad (HDF5) file"}


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    kind: str | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT,
    retries: int = 2,
) -> dict:
    """Download ``url`` to ``dest``: streamed into ``dest.part``, resumed when possible, verified, then moved.

    Parameters
    ----------
    url
        What to fetch (``http``, ``https`` or ``file``).
    dest
        The final file. It appears only once everything arrived and passed the checks.
    size, sha256, md5
        What the file must be, where known; ``None`` skips that check. The sha256 is always computed and returned.
    kind
        ``"zip"``, ``"tar.gz"`` or ``"h5ad"`` to check the first bytes (an HTML error page instead of a zip is the
        usual failure); any other value only rejects HTML, JSON and empty files.
    progress
        Show a tqdm progress bar, in bytes.
    timeout
        Seconds to wait for the server at each step.
    retries
        How many times to resume after a connection that closed early, within this call.

    Returns
    -------
    ``{"size": int, "sha256": str, "md5": str | None}`` of the downloaded file.

    Raises
    ------
    DownloadError
        With the file, what was expected and what arrived. After a connection that closed early the ``.part`` is
        kept and the next call resumes from it; after a size or checksum mismatch it is deleted.

    Examples
    --------
    >>> download("https://example.org/data.zip", "/tmp/data.zip", kind="zip")  # doctest: +SKIP
    {'size': 1234, 'sha256': '...', 'md5': None}
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            received, hashers = _stream(
                url, part, size=size, want_md5=md5 is not None, progress=progress, timeout=timeout, dest=dest
            )
            break
        except _Interrupted as stop:
            attempt += 1
            if attempt <= retries:
                time.sleep(min(2.0 ** (attempt - 1), 10.0) * 0.1)
                continue
            expected = f"of {stop.total:,} bytes" if stop.total is not None else "(size unknown)"
            cause = f" ({stop.cause})" if stop.cause else " (the connection closed early)"
            raise DownloadError(
                f"The download of {url} stopped after {stop.received:,} bytes {expected}{cause}. The partial file is "
                f"kept at {str(part)!r}; call again to resume from it, or delete it to start over."
            ) from stop.cause
    problem = None
    if size is not None and received != size:
        problem = f"{received:,} bytes arrived but {size:,} were expected"
    elif sha256 is not None and hashers[0].hexdigest() != sha256.lower():
        problem = f"its sha256 is {hashers[0].hexdigest()} but {sha256.lower()} was expected"
    elif md5 is not None and hashers[1].hexdigest() != md5.lower():
        problem = f"its md5 is {hashers[1].hexdigest()} but {md5.lower()} was expected"
    elif not _looks_like(part, kind):
        problem = f"it is {describe_file(part)}, not {_KIND_WORDS.get(kind, 'the data file')}"
    if problem:
        _remove(part)
        raise DownloadError(
            f"The download of {url} for {str(dest)!r} is damaged: {problem}. The damaged file was deleted. Call "
            f"again to retry; if it fails again, the server sends something else (set {ENV_MIRROR} to a mirror, or "
            "download the file by hand)."
        )
    os.replace(part, dest)
    return {"size": received, "sha256": hashers[0].hexdigest(), "md5": hashers[1].hexdigest() if md5 else None}


def _zip_member(archive: zipfile.ZipFile, member: str) -> zipfile.ZipInfo:
    names = [i.filename for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    return archive.getinfo(_pick_member(names, member))


def _tar_member(archive: tarfile.TarFile, member: str) -> tarfile.TarInfo:
    return archive.getmember(_pick_member([i.name for i in archive.getmembers() if i.isfile()], member))


def _pick_member(names: list[str], member: str) -> str:
    """The one archive entry named ``member``, at the top or in a folder; a clear error when there is not one."""
    hits = [n for n in names if n == member or n.endswith("/" + member)]
    if len(hits) != 1:
        listing = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        what = "no member" if not hits else f"{len(hits)} members"
        raise DownloadError(f"The archive has {what} named {member!r}; it holds: {listing or 'nothing'}.")
    return hits[0]


def _copy(source: BinaryIO, target: Path) -> str:
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        while chunk := source.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def _extract(archive: Path, member: str, dest: Path) -> str:
    """Unpack one member to ``dest`` (via ``dest.part`` and ``os.replace``); return its sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        if is_zip(archive):
            with zipfile.ZipFile(archive) as zf, zf.open(_zip_member(zf, member)) as source:
                digest = _copy(source, part)  # zipfile checks each member's CRC as it reads
        else:
            with tarfile.open(archive, "r:*") as tf:
                source = tf.extractfile(_tar_member(tf, member))
                digest = _copy(source, part)
    except DownloadError as err:
        _remove(part)
        raise DownloadError(f"Cannot unpack {str(archive)!r}: {err}") from err
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as err:
        _remove(part)
        raise DownloadError(
            f"Cannot unpack {member!r} from {str(archive)!r}: the archive is damaged ({err}); it is "
            f"{describe_file(archive)}."
        ) from err
    os.replace(part, dest)
    return digest


def extract_folder(archive: Path, name: str, dest: Path) -> None:
    """Unpack the folder ``name`` at the top of a GitHub archive (``<repo>-<commit>/<name>/``) to ``dest``, whole or
    not at all (through ``dest.part``); tarfile's ``data`` filter refuses links and paths that leave it."""
    part = dest.with_name(dest.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    with tarfile.open(archive, "r:*") as tf:
        members = []
        for member in tf.getmembers():
            top, _, rest = member.name.partition("/")
            inside = rest.partition("/")
            if top and inside[0] == name and inside[2]:
                member.name = inside[2]
                members.append(member)
        if not members:
            raise DownloadError(f"{archive} has no folder {name!r} under its top folder.")
        tf.extractall(part, members=members, filter="data")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(part, dest)


def extract_member(archive: str | os.PathLike, member: str, dest: str | os.PathLike) -> Path:
    """Unpack the archive member whose path is ``member`` or ends in ``/member`` to ``dest``, atomically.

    Works for zip and tar(.gz) archives. An existing ``dest`` of the member's size is reused.

    Examples
    --------
    >>> extract_member("adamson.zip", "adamson/perturb_processed.h5ad", "out.h5ad")  # doctest: +SKIP
    PosixPath('out.h5ad')
    """
    archive, dest = Path(archive), Path(dest)
    try:
        if dest.exists() and is_zip(archive):
            with zipfile.ZipFile(archive) as zf:
                if _zip_member(zf, member).file_size == dest.stat().st_size:
                    return dest
        _extract(archive, member, dest)
    except zipfile.BadZipFile as err:
        message = f"Cannot unpack {str(archive)!r}: the archive is damaged ({err}). Download it again."
        raise DownloadError(message) from err
    except DownloadError as err:
        raise DownloadError(f"{err} Check that this is the right archive, or download it again.") from err
    return dest


# --- the manifest beside each cached file --------------------------------------------------------------------


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def write_manifest(path: Path, record: dict) -> None:
    """Record ``path``'s size, mtime and sha256 (plus ``record``) in its sidecar manifest, atomically."""
    stat = path.stat()
    record = {**record, "file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    atomic_write(manifest_path(path), json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(manifest_path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def verify_cached(path: Path, *, full: bool = False) -> str:
    """Check a cached file against its manifest and return its sha256.

    A file whose size and modification time match the manifest is trusted without re-reading it, unless ``full``;
    otherwise it is hashed and must match the sha256 recorded at download. A file with no manifest (put there by
    hand) is hashed once and a manifest is written for it.
    """
    record = read_manifest(path)
    stat = path.stat()
    if record is None:
        sha = file_sha256(path)
        write_manifest(path, {"sha256": sha, "source": "found in the cache (no download record)"})
        return sha
    if not full and record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns:
        return record["sha256"]
    sha = file_sha256(path) if record.get("size") == stat.st_size else None
    if sha != record["sha256"]:
        found = f"sha256 {sha}" if sha else f"{stat.st_size:,} bytes"
        expected = f"sha256 {record['sha256']}" if sha else f"{record.get('size', 0):,} bytes"
        raise DownloadError(
            f"The cached file {str(path)!r} changed since it was downloaded: expected {expected}, found {found}. "
            f"Delete it (and {manifest_path(path).name}) and load the data again to download a fresh copy."
        )
    write_manifest(path, record)  # same content, new mtime (touched or copied)
    return sha

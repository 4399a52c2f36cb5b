"""Downloads and the published datasets, end to end against a local HTTP server on 127.0.0.1.

The server serves tiny GEARS-format files built here; it can cut a connection mid-file, ignore Range requests,
answer with an HTML error page, and it counts every request so that cache hits can be shown to make none.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pytest

import linpert._pseudobulk
from linpert import datasets
from linpert.datasets import DownloadError, data_dir, fetch
from linpert.datasets import _registry
from linpert.datasets._download import download, verify_cached
from linpert.datasets._readers import SCFOUNDATION_NORMAN_FILE

from test_readers import gears_cells, norman_cells, write_go_files


@dataclass
class Route:
    body: bytes
    mode: str = "normal"  # normal | ignore_range | cut_once | cut_always | html | status
    cut_at: int = 0
    status: int = 200
    hits: int = 0


@dataclass
class FakeServer:
    url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def serve(self, path: str, body: bytes, **kwargs) -> str:
        self.routes[path] = Route(body, **kwargs)
        return self.url + path


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state: FakeServer = self.server.state
        state.requests.append((self.path, self.headers.get("Range")))
        route = state.routes.get(self.path)
        if route is None or route.mode == "status":
            self.send_error(route.status if route else 404)
            return
        route.hits += 1
        if route.mode == "html":
            page = b"<!DOCTYPE html><html><head><title>Access denied</title></head><body>no</body></html>"
            self._send(200, page, {"Content-Type": "text/html"})
            return
        start = 0
        match = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and route.mode != "ignore_range":
            start = int(match.group(1))
            if start >= len(route.body):
                self.send_error(416)
                return
        payload = route.body[start:]
        headers = {"Content-Type": "application/octet-stream"}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(route.body) - 1}/{len(route.body)}"
        cut = route.mode == "cut_always" or (route.mode == "cut_once" and route.hits == 1)
        self._send(206 if start else 200, payload, headers, send=route.cut_at if cut else None)

    def _send(self, status: int, payload: bytes, headers: dict, send: int | None = None) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))  # the full length, even when cutting
        self.end_headers()
        self.wfile.write(payload if send is None else payload[:send])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = FakeServer(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    # never touch the user's cache or a real mirror
    monkeypatch.delenv("LINPERT_MIRROR", raising=False)
    monkeypatch.setenv("LINPERT_DATA_DIR", str(tmp_path / "env-cache"))


def _payload(n: int = 300_000) -> bytes:
    return np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8).tobytes()


def _h5ad_bytes(adata: ad.AnnData, tmp_path) -> bytes:
    path = tmp_path / "build.h5ad"
    adata.write_h5ad(path)
    data = path.read_bytes()
    path.unlink()
    return data


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


# --- the cache folder ------------------------------------------------------------------------------------------


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("LINPERT_DATA_DIR", str(tmp_path / "env"))
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("LINPERT_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "linpert"


# --- download: resume, restart, verification ---------------------------------------------------------------


def test_download_streams_verifies_and_shows_progress(server, tmp_path, capsys):
    body = _payload()
    url = server.serve("/blob.bin", body)
    sha, md5 = hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest()
    got = download(url, tmp_path / "blob.bin", sha256=sha, md5=md5)
    assert (tmp_path / "blob.bin").read_bytes() == body
    assert got == {"size": len(body), "sha256": sha, "md5": md5}
    assert _leftovers(tmp_path) == ["blob.bin"]
    assert "blob.bin" in capsys.readouterr().err  # the tqdm bar names the file
    assert server.requests == [("/blob.bin", None)]


def test_download_resumes_after_a_cut_connection(server, tmp_path):
    body = _payload()
    url = server.serve("/blob.bin", body, mode="cut_once", cut_at=100_000)
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match=r"stopped after 100,000 bytes of 300,000 bytes.*call again to resume"):
        download(url, dest, retries=0, progress=False)
    assert not dest.exists()
    assert (tmp_path / "blob.bin.part").stat().st_size == 100_000
    got = download(url, dest, progress=False)
    assert server.requests[-1] == ("/blob.bin", "bytes=100000-")
    assert dest.read_bytes() == body
    assert got["sha256"] == hashlib.sha256(body).hexdigest()  # the digest covers the bytes of both calls
    assert _leftovers(tmp_path) == ["blob.bin"]


def test_download_retries_within_one_call(server, tmp_path):
    body = _payload()
    url = server.serve("/blob.bin", body, mode="cut_once", cut_at=12_345)
    download(url, tmp_path / "blob.bin", retries=2, progress=False)
    assert (tmp_path / "blob.bin").read_bytes() == body
    assert server.requests == [("/blob.bin", None), ("/blob.bin", "bytes=12345-")]


def test_download_gives_up_on_a_server_that_always_cuts(server, tmp_path):
    url = server.serve("/blob.bin", _payload(), mode="cut_always", cut_at=1000)
    with pytest.raises(DownloadError, match="stopped after 3,000 bytes of 300,000"):
        download(url, tmp_path / "blob.bin", retries=2, progress=False)
    # the first try and two retries, each resuming where the last one was cut
    assert [r for _, r in server.requests] == [None, "bytes=1000-", "bytes=2000-"]
    assert not (tmp_path / "blob.bin").exists()


def test_download_restarts_when_the_server_ignores_range(server, tmp_path):
    body = _payload()
    url = server.serve("/blob.bin", body, mode="ignore_range")
    (tmp_path / "blob.bin.part").write_bytes(b"garbage that must not stay in front" * 100)
    got = download(url, tmp_path / "blob.bin", progress=False)
    assert server.requests == [("/blob.bin", "bytes=3500-")]  # asked to resume; got the whole file with 200
    assert (tmp_path / "blob.bin").read_bytes() == body
    assert got["sha256"] == hashlib.sha256(body).hexdigest()


def test_download_restarts_when_the_part_is_longer_than_the_file(server, tmp_path):
    body = _payload(1000)
    url = server.serve("/blob.bin", body)
    (tmp_path / "blob.bin.part").write_bytes(b"x" * 5000)
    download(url, tmp_path / "blob.bin", progress=False)  # 416 Range Not Satisfiable -> start over
    assert (tmp_path / "blob.bin").read_bytes() == body


def test_download_size_mismatch_leaves_nothing(server, tmp_path):
    url = server.serve("/blob.bin", _payload(1000))
    with pytest.raises(DownloadError, match=r"offers .* with 1,000 bytes, but 1,010 bytes were expected"):
        download(url, tmp_path / "blob.bin", size=1010, progress=False)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("which", ["sha256", "md5"])
def test_download_checksum_mismatch_leaves_nothing(server, tmp_path, which):
    body = _payload(5000)
    url = server.serve("/blob.bin", body)
    wrong = "0" * (64 if which == "sha256" else 32)
    actual = getattr(hashlib, which)(body).hexdigest()
    with pytest.raises(DownloadError, match=f"its {which} is {actual} but {wrong} was expected.*deleted"):
        download(url, tmp_path / "blob.bin", **{which: wrong}, progress=False)
    assert _leftovers(tmp_path) == []


def test_download_html_error_page_instead_of_a_zip(server, tmp_path):
    url = server.serve("/data.zip", b"", mode="html")
    with pytest.raises(DownloadError, match=r"it is an HTML page .*'Access denied', not a zip archive"):
        download(url, tmp_path / "data.zip", kind="zip", progress=False)
    assert _leftovers(tmp_path) == []


def test_download_http_error_names_the_fix(server, tmp_path):
    url = server.serve("/gone.zip", b"", mode="status", status=403)
    with pytest.raises(DownloadError, match=r"answered 403 .*LINPERT_MIRROR.*by hand"):
        download(url, tmp_path / "gone.zip", progress=False)
    with pytest.raises(DownloadError, match="answered 404"):
        download(server.url + "/missing.zip", tmp_path / "missing.zip", progress=False)
    assert _leftovers(tmp_path) == []


# --- fetch: resources, archives, mirrors, the manifest -----------------------------------------------------


def test_fetch_pickle_and_tar_resources_with_url_and_mirror(server, tmp_path, monkeypatch):
    import pickle

    gene2go = pickle.dumps({"A": {"GO:1"}, "B": {"GO:2"}})
    url = server.serve("/g2g", gene2go)
    path = fetch("gene2go_all", cache_dir=tmp_path, url=url, progress=False)
    assert path == tmp_path / "gene2go_all.pkl"
    assert pickle.loads(path.read_bytes()) == {"A": {"GO:1"}, "B": {"GO:2"}}
    manifest = json.loads((tmp_path / "gene2go_all.pkl.manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(gene2go).hexdigest() and manifest["url"] == url

    csv = b"source,target,importance\nA,B,0.5\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        info = tarfile.TarInfo("go_essential_all/go_essential_all.csv")
        info.size = len(csv)
        tf.addfile(info, io.BytesIO(csv))
    server.serve("/mirror/go_essential_all.tar.gz", buffer.getvalue())
    monkeypatch.setenv("LINPERT_MIRROR", server.url + "/mirror/")
    path = fetch("go_essential_all", cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == csv
    assert server.requests[-1] == ("/mirror/go_essential_all.tar.gz", None)
    assert not (tmp_path / "go_essential_all" / "go_essential_all.tar.gz").exists()  # archive removed


def test_fetch_uses_the_env_cache_dir(server, tmp_path):
    url = server.serve("/g2g", b"\x80\x04N.")
    path = fetch("gene2go_all", url=url, progress=False)
    assert path == tmp_path / "env-cache" / "gene2go_all.pkl"


def test_fetch_corrupt_zip(server, tmp_path):
    good = _zip({"adamson/perturb_processed.h5ad": _payload(50_000)})
    url = server.serve("/adamson.zip", good[:-3000] + b"\0" * 3000)  # starts like a zip, damaged inside
    with pytest.raises(DownloadError, match=r"Cannot unpack .*adamson.zip.*damaged.*deleted; call again"):
        fetch("adamson", cache_dir=tmp_path, url=url, progress=False)
    assert _leftovers(tmp_path) == []  # neither the damaged zip nor a half-unpacked h5ad stays


def test_fetch_zip_whose_member_is_not_an_h5ad(server, tmp_path):
    url = server.serve("/adamson.zip", _zip({"adamson/perturb_processed.h5ad": b"<html>oops</html>"}))
    with pytest.raises(DownloadError, match="is not an h5ad file: it is an HTML page.*deleted; call again"):
        fetch("adamson", cache_dir=tmp_path, url=url, progress=False)
    assert _leftovers(tmp_path) == []


def test_cached_file_that_changed_is_reported(server, tmp_path):
    import pickle

    body = pickle.dumps({f"G{i}": f"GO:{i:07d}" for i in range(120)})
    path = fetch("gene2go_all", cache_dir=tmp_path, url=server.serve("/g", body), progress=False)
    assert verify_cached(path, full=True) == hashlib.sha256(body).hexdigest()
    path.write_bytes(body[:-1] + b"\xff" if body[-1:] != b"\xff" else body[:-1] + b"\x00")
    with pytest.raises(DownloadError, match="changed since it was downloaded: expected sha256"):
        fetch("gene2go_all", cache_dir=tmp_path, progress=False)
    path.write_bytes(body[:100])
    with pytest.raises(DownloadError, match=f"expected {len(body):,} bytes, found 100 bytes"):
        fetch("gene2go_all", cache_dir=tmp_path, progress=False)
    assert len(server.requests) == 1


def test_unknown_names_and_levels():
    with pytest.raises(KeyError, match="Unknown resource 'adamsen'; choose one of: norman, norman_gears, adamson"):
        fetch("adamsen")
    with pytest.raises(ValueError, match="level='genes' is not one of"):
        datasets.adamson(level="genes")
    with pytest.raises(ValueError, match="is a resource, not a dataset.*fetch"):
        datasets.load("gene2go_all")


# --- datasets end to end ---------------------------------------------------------------------------------


@pytest.fixture
def count_pseudobulk(monkeypatch):
    calls = []
    real = linpert._pseudobulk.pseudobulk

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(linpert._pseudobulk, "pseudobulk", counting)
    return calls


def _means(cells: ad.AnnData, condition: str) -> np.ndarray:
    rows = (cells.obs["condition"].astype(str) == condition).to_numpy()
    return cells.X[rows].toarray().astype(np.float64).mean(0)


def _serve_go_files(server, tmp_path, genes) -> None:
    write_go_files(tmp_path / "go", genes)
    for name in ("gene2go_all.pkl", "essential_all_data_pert_genes.pkl"):
        server.serve(f"/{name}", (tmp_path / "go" / name).read_bytes())


def test_adamson_download_pseudobulk_and_cache_hit(server, tmp_path, monkeypatch, count_pseudobulk):
    cells = gears_cells(["ctrl", "B+ctrl", "A+ctrl", "NOGO+ctrl"], n_per=4, seed=3)
    server.serve("/adamson.zip", _zip({"adamson/perturb_processed.h5ad": _h5ad_bytes(cells, tmp_path)}))
    _serve_go_files(server, tmp_path, ["A", "B"])
    monkeypatch.setenv("LINPERT_MIRROR", server.url)
    cache = tmp_path / "cache"

    with pytest.warns(UserWarning, match=r"adamson: dropped 1 condition as the paper did \(not in GEARS' GO graph"):
        pb = datasets.adamson(cache_dir=cache, progress=False)
    assert pb.obs_names.tolist() == ["ctrl", "A+ctrl", "B+ctrl"]
    assert pb.uns["linpert"]["dropped_conditions"] == ["NOGO+ctrl"]
    assert pb.var_names.tolist() == [f"G{j}" for j in range(6)]
    for name in pb.obs_names:
        np.testing.assert_allclose(pb[name].X[0], _means(cells, name), rtol=1e-12)
    assert pb.obs["n_cells"].tolist() == [4, 4, 4]
    assert pb.uns["linpert"]["dataset"] == "adamson"
    raw = cache / "adamson" / "perturb_processed.h5ad"
    assert pb.uns["linpert"]["cache"]["raw_sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert _leftovers(cache) == [
        "adamson.pseudobulk.h5ad",
        "essential_all_data_pert_genes.pkl",
        "essential_all_data_pert_genes.pkl.manifest.json",
        "gene2go_all.pkl",
        "gene2go_all.pkl.manifest.json",
        "perturb_processed.h5ad",
        "perturb_processed.h5ad.manifest.json",
    ]
    assert len(server.requests) == 3 and len(count_pseudobulk) == 1

    with pytest.warns(UserWarning, match="dropped 1"):
        again = datasets.adamson(cache_dir=cache, progress=False)  # no request, no pseudobulk: read from the cache
    assert len(server.requests) == 3 and len(count_pseudobulk) == 1
    np.testing.assert_array_equal(again.X, pb.X)

    monkeypatch.setattr(_registry, "_pseudobulk_version", lambda: "a newer pseudobulk")
    with pytest.warns(UserWarning, match="dropped 1"):
        datasets.adamson(cache_dir=cache, progress=False)  # a new pseudobulk version invalidates the cache
    assert len(server.requests) == 3 and len(count_pseudobulk) == 2

    with pytest.warns(UserWarning, match="dropped 1"):
        backed = datasets.adamson(level="cells", cache_dir=cache)
    try:
        assert backed.isbacked and backed.n_obs == 12
    finally:
        backed.file.close()
    with pytest.warns(UserWarning, match="dropped 1"):
        loaded = datasets.adamson(level="cells", cache_dir=cache, backed=False)
    np.testing.assert_array_equal(loaded.X.toarray(), cells.X[:12].toarray())
    assert len(server.requests) == 3


def test_a_changed_raw_file_invalidates_the_pseudobulk(server, tmp_path, monkeypatch, count_pseudobulk):
    monkeypatch.setenv("LINPERT_MIRROR", server.url)
    cache = tmp_path / "cache"
    first = gears_cells(["ctrl", "A+ctrl"], seed=1)
    (cache / "replogle_k562_essential").mkdir(parents=True)
    first.write_h5ad(cache / "replogle_k562_essential" / "perturb_processed.h5ad")  # put there by hand
    write_go_files(cache, ["A"])
    pb = datasets.replogle_k562(cache_dir=cache, progress=False)
    np.testing.assert_allclose(pb["A+ctrl"].X[0], _means(first, "A+ctrl"), rtol=1e-12)
    assert server.requests == []  # adopted, not downloaded

    # a deliberate replacement: delete the file and its manifest, put a new one there
    second = gears_cells(["ctrl", "A+ctrl"], seed=2)
    raw = cache / "replogle_k562_essential" / "perturb_processed.h5ad"
    raw.unlink()
    (raw.parent / (raw.name + ".manifest.json")).unlink()
    second.write_h5ad(raw)
    pb = datasets.replogle_k562(cache_dir=cache, progress=False)
    np.testing.assert_allclose(pb["A+ctrl"].X[0], _means(second, "A+ctrl"), rtol=1e-12)
    assert len(count_pseudobulk) == 2


def test_norman_downloads_scfoundation_zip_and_drops_two_conditions(server, tmp_path, monkeypatch):
    cells = norman_cells()
    member = f"scFoundation/GEARS/data/{SCFOUNDATION_NORMAN_FILE}"
    server.serve("/norman_scfoundation.zip", _zip({member: _h5ad_bytes(cells, tmp_path)}))
    monkeypatch.setenv("LINPERT_MIRROR", server.url)
    cache = tmp_path / "cache"

    pb = datasets.norman(cache_dir=cache, progress=False)
    assert pb.obs_names.tolist() == ["ctrl", "A+B", "A+ctrl", "B+ctrl"]
    assert pb.obs["kind"].tolist() == ["control", "double", "single", "single"]
    assert pb.var_names.tolist() == [f"SYM{j}" for j in range(5)]
    for name in pb.obs_names:
        np.testing.assert_allclose(pb[name].X[0], _means(cells, name), rtol=1e-12)
    assert sorted(pb.uns["linpert"]["dropped_conditions"]) == ["IER5L+ctrl", "LYL1+IER5L"]
    assert (cache / "norman_scfoundation" / SCFOUNDATION_NORMAN_FILE).exists()
    assert (cache / "norman_scfoundation" / "norman.pseudobulk.h5ad").exists()

    # the cached pseudobulk keeps its provenance through the h5ad round trip
    again = datasets.norman(cache_dir=cache, progress=False)
    assert sorted(again.uns["linpert"]["dropped_conditions"]) == ["IER5L+ctrl", "LYL1+IER5L"]
    assert again.obs_names.tolist() == pb.obs_names.tolist()

    full = datasets.norman(level="cells", cache_dir=cache, backed=False)
    assert full.n_obs == 8 and "IER5L+ctrl" not in set(full.obs["condition"])
    assert len(server.requests) == 1


def test_list_resources_reports_the_cache(tmp_path):
    table = datasets.list_resources(cache_dir=tmp_path)
    assert table.loc["replogle_rpe1", "url"] == "https://dataverse.harvard.edu/api/access/datafile/7458694"
    assert table.loc["norman", "url"] == "https://figshare.com/ndownloader/files/44477939"
    assert table.loc["adamson", "path"] == str(tmp_path / "adamson" / "perturb_processed.h5ad")
    assert not table["cached"].any()
    # no checksum is invented for a remote file linpert has not verified
    assert all(r.sha256 is None and r.md5 is None for r in datasets.RESOURCES.values())


def test_namespace_exports_readers_datasets_and_simulate():
    from linpert.datasets import simulate

    assert callable(simulate)
    for name in datasets.__all__:
        assert getattr(datasets, name) is not None, name
    assert {"norman", "adamson", "replogle_k562", "replogle_rpe1", "fetch", "read_gears", "simulate"} <= set(
        datasets.__all__
    )


def test_a_damaged_pseudobulk_cache_is_rebuilt(tmp_path, count_pseudobulk):
    cells = gears_cells(["ctrl", "A+ctrl"], seed=4)
    (tmp_path / "adamson").mkdir()
    cells.write_h5ad(tmp_path / "adamson" / "perturb_processed.h5ad")
    write_go_files(tmp_path, ["A"])
    datasets.adamson(cache_dir=tmp_path, progress=False)
    (tmp_path / "adamson" / "adamson.pseudobulk.h5ad").write_bytes(b"half a file")
    pb = datasets.adamson(cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(pb["A+ctrl"].X[0], _means(cells, "A+ctrl"), rtol=1e-12)
    assert len(count_pseudobulk) == 2


def test_a_truncated_pickle_is_never_cached_and_a_fixed_server_is_used_next_time(server, tmp_path):
    import pickle

    whole = pickle.dumps({f"G{i}": {f"GO:{i}"} for i in range(500)})
    route = "/g2g"
    url = server.serve(route, whole[: len(whole) // 2])  # the server itself holds a cut file
    with pytest.raises(DownloadError, match=r"is not a whole Python pickle.*cut short.*deleted; call again"):
        fetch("gene2go_all", cache_dir=tmp_path, url=url, progress=False)
    assert _leftovers(tmp_path) == []  # no file, no manifest: nothing is trusted
    server.serve(route, whole)  # the server is fixed
    path = fetch("gene2go_all", cache_dir=tmp_path, url=url, progress=False)
    assert path.read_bytes() == whole


def test_an_unpacked_hdf5_that_is_not_anndata_is_never_cached(server, tmp_path):
    import h5py

    plain = tmp_path / "build.h5"
    with h5py.File(plain, "w") as handle:
        handle["matrix"] = np.arange(6.0)
    url = server.serve("/adamson.zip", _zip({"adamson/perturb_processed.h5ad": plain.read_bytes()}))
    plain.unlink()
    with pytest.raises(DownloadError, match="is an HDF5 file but not an AnnData .h5ad: it has no obs or var"):
        fetch("adamson", cache_dir=tmp_path, url=url, progress=False)
    assert _leftovers(tmp_path) == []


def _github_archive(files: dict[str, str], top: str) -> bytes:
    """A repository archive as GitHub serves it: every path under one ``<repo>-<commit>/`` folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_gears_fork_is_scfoundations_gears_folder_downloaded_once(server, tmp_path):
    from linpert.adapters import gears_fork
    from linpert.adapters._gears import SCFOUNDATION_COMMIT

    top = f"scFoundation-{SCFOUNDATION_COMMIT}"
    url = server.serve("/fork.tar.gz", _github_archive({
        "README.md": "scFoundation",
        "GEARS/gears/version.py": "__version__ = '0.0.2'  # pragma: no cover",
        "GEARS/gears/gears.py": "class GEARS: pass\n",
        "GEARS/modules/encoders.py": "",
    }, top))
    folder = gears_fork(url=url, progress=False)
    assert folder == data_dir() / "code" / f"scFoundation-{SCFOUNDATION_COMMIT[:7]}" / "GEARS"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["gears/gears.py", "gears/version.py", "modules/encoders.py"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["GEARS"]  # the archive is gone
    assert gears_fork(url=url, progress=False) == folder and server.routes["/fork.tar.gz"].hits == 1

    other = server.serve("/release.tar.gz", _github_archive({"GEARS/gears/version.py": "__version__ = '0.1.2'"}, top))
    with pytest.raises(DownloadError, match="no GEARS 0.0.2 fork.*version: 0.1.2"):
        gears_fork(url=other, progress=False, cache_dir=tmp_path / "other")
    assert not (tmp_path / "other" / "code" / f"scFoundation-{SCFOUNDATION_COMMIT[:7]}" / "GEARS").exists()
    with pytest.raises(DownloadError, match="clone .*scFoundation at 69b0710 .*gears\\(code=...\\).*--preset linpert"):
        gears_fork(url=server.url + "/missing.tar.gz", progress=False, cache_dir=tmp_path / "third")

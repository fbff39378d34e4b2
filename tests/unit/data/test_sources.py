"""Tests for molddl.data.sources: local lookup, checksums and download from a loopback server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from molddl import io
from molddl.data import sources
from molddl.data.sources import (
    REGISTRY,
    ChecksumError,
    DataFile,
    DataUnavailableError,
    content_sha256,
    default_cache_dir,
    fetch,
)

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"shared data directory {SHARED_DATA} is absent"
)

GOOD_CSV = b"smiles,y1,y2\nCCO,1,\nc1ccccc1,,0\nCC(=O)O,0,1\n"
GOOD_SHA = hashlib.sha256(GOOD_CSV).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the cache at a fresh directory and clear any user data directory."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MOLDDL_CACHE_DIR", str(cache))
    monkeypatch.delenv("MOLDDL_DATA_DIR", raising=False)
    return cache


class _Server:
    """A loopback HTTP server with fixed routes that counts the requests it receives."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.delay: dict[str, float] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                time.sleep(server.delay.get(self.path, 0.0))
                status, body = server.routes.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    srv.routes["/good.csv"] = (200, GOOD_CSV)
    srv.routes["/corrupt.csv"] = (200, GOOD_CSV.replace(b"CCO", b"CCN"))
    yield srv
    srv.stop()


def _entry(url: str, sha: str = GOOD_SHA, filename: str = "toy.csv.gz") -> DataFile:
    return DataFile(key="toy", filename=filename, url=url, sha256=sha)


# --------------------------------------------------------------------------- registry / real data


def test_registry_has_the_pinned_entries() -> None:
    assert set(REGISTRY) == {
        "tox21",
        "higgs",
        "higgs_h2o_train",
        "higgs_h2o_test",
        "mof",
        "mof_conditions",
    }
    for key, entry in REGISTRY.items():
        assert entry.key == key
        assert entry.filename.endswith(".csv.gz")
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/", entry.url)
        assert " " not in entry.url
    assert REGISTRY["mof_conditions"].url.endswith(
        "/b5bd5071f4b48dbaddc8c7a830a8c8417f5b5832/Literature%20Extraction/Databases/SynMOF_A.csv"
    )
    assert REGISTRY["tox21"].url == (
        "https://raw.githubusercontent.com/chemprop/chemprop/"
        "b83635bcddaddcdb91d453128edec9f2be0d25cf/data/tox21.csv"
    )


@needs_shared
@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_registry_file_found_and_verified_in_shared_data(key: str) -> None:
    path = fetch(key, SHARED_DATA, download=False)
    assert path == SHARED_DATA / REGISTRY[key].filename
    assert content_sha256(path) == REGISTRY[key].sha256


@needs_shared
def test_data_dir_taken_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLDDL_DATA_DIR", str(SHARED_DATA))
    assert fetch("tox21", download=False) == SHARED_DATA / "tox21.csv.gz"


def test_unknown_key_lists_known_keys() -> None:
    with pytest.raises(KeyError, match="tox21"):
        fetch("no_such_dataset", download=False)


# --------------------------------------------------------------------------- local files


def test_content_sha256_hashes_decompressed_gzip_and_raw_plain_files(tmp_path: Path) -> None:
    gz = tmp_path / "a.csv.gz"
    gz.write_bytes(gzip.compress(GOOD_CSV))
    plain = tmp_path / "a.csv"
    plain.write_bytes(GOOD_CSV)
    assert content_sha256(gz) == GOOD_SHA
    assert content_sha256(plain) == GOOD_SHA
    assert _sha(gz.read_bytes()) != GOOD_SHA


def test_plain_csv_accepted_and_gz_preferred(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "toy.csv").write_bytes(GOOD_CSV)
    entry = _entry("http://127.0.0.1:9/unused")
    assert fetch(entry, data, download=False) == data / "toy.csv"
    (data / "toy.csv.gz").write_bytes(gzip.compress(GOOD_CSV))
    assert fetch(entry, data, download=False) == data / "toy.csv.gz"


def test_tampered_gz_in_data_dir_raises_naming_path_and_is_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    tampered = GOOD_CSV.replace(b"CCO,1,", b"CCO,0,")
    bad = data / "toy.csv.gz"
    bad.write_bytes(gzip.compress(tampered))
    before = bad.read_bytes()
    # download=True with an unreachable URL: trying to re-download would give
    # DataUnavailableError instead of ChecksumError.
    entry = _entry("http://127.0.0.1:9/never")
    with pytest.raises(ChecksumError) as info:
        fetch(entry, data, download=True)
    message = str(info.value)
    assert str(bad) in message
    assert GOOD_SHA in message
    assert _sha(tampered) in message
    assert bad.read_bytes() == before
    assert not default_cache_dir().exists()


def test_corrupt_gzip_stream_is_a_checksum_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bad = data / "toy.csv.gz"
    bad.write_bytes(gzip.compress(GOOD_CSV)[:-12])  # truncated stream
    with pytest.raises(ChecksumError, match=re.escape(str(bad))):
        fetch(_entry("http://127.0.0.1:9/never"), data, download=False)


def test_verified_file_is_hashed_once_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    good = data / "toy.csv"
    good.write_bytes(GOOD_CSV)
    entry = _entry("http://127.0.0.1:9/never")
    assert fetch(entry, data, download=False) == good

    def no_rehash(path: Path) -> str:
        raise AssertionError(f"{path} hashed twice")

    with monkeypatch.context() as patch:
        patch.setattr(sources, "content_sha256", no_rehash)
        assert fetch(entry, data, download=False) == good

    good.write_bytes(GOOD_CSV + b"CCCC,1,1\n")  # new size: the memo no longer applies
    with pytest.raises(ChecksumError, match=re.escape(str(good))):
        fetch(entry, data, download=False)


def test_missing_data_dir_argument_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataUnavailableError, match=re.escape(str(missing))):
        fetch("tox21", missing, download=False)


def test_missing_data_dir_from_environment_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("MOLDDL_DATA_DIR", str(missing))
    with pytest.raises(DataUnavailableError, match=re.escape(str(missing))) as info:
        fetch("tox21", download=False)
    assert "MOLDDL_DATA_DIR" in str(info.value)


def test_not_found_without_download_names_file_dirs_and_url(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(DataUnavailableError) as info:
        fetch("tox21", data, download=False)
    message = str(info.value)
    for part in ("tox21.csv.gz", str(data), str(default_cache_dir()), REGISTRY["tox21"].url):
        assert part in message
    assert "MOLDDL_DATA_DIR" in message
    assert isinstance(info.value, FileNotFoundError)


def test_default_cache_dir_env_and_platform_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLDDL_CACHE_DIR", "/some/where")
    assert default_cache_dir() == Path("/some/where/data")
    monkeypatch.delenv("MOLDDL_CACHE_DIR")
    assert default_cache_dir() == Path(platformdirs.user_cache_dir("molddl")) / "data"


@pytest.mark.parametrize("env", ["/some/where", None])
def test_sources_and_io_agree_on_the_cache_folder(
    env: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Downloads go to molddl's ``data`` cache, beside ``features`` and ``numba``."""
    if env is None:
        monkeypatch.delenv("MOLDDL_CACHE_DIR")
    else:
        monkeypatch.setenv("MOLDDL_CACHE_DIR", env)
    assert default_cache_dir() == io.user_cache("data")
    assert default_cache_dir().parent == io.user_cache("features").parent


def test_file_in_the_old_cache_folder_is_still_read(isolated_env: Path) -> None:
    """Earlier versions downloaded into ``$MOLDDL_CACHE_DIR`` itself: no second download."""
    isolated_env.mkdir()
    old = isolated_env / "toy.csv"
    old.write_bytes(GOOD_CSV)
    assert fetch(_entry("http://127.0.0.1:9/never"), download=False) == old
    assert not default_cache_dir().exists()  # read, never copied or moved


# --------------------------------------------------------------------------- downloads


@pytest.mark.network
def test_download_verifies_and_second_fetch_uses_cache(server: _Server) -> None:
    entry = _entry(server.url("/good.csv"))
    cache = default_cache_dir()
    path = fetch(entry, timeout=5)
    assert path == cache / "toy.csv" == io.user_cache("data") / "toy.csv"
    assert path.read_bytes() == GOOD_CSV
    assert sorted(p.name for p in cache.iterdir()) == ["toy.csv"]
    assert server.requests == ["/good.csv"]

    again = fetch(entry, timeout=5)
    assert again == path
    assert server.requests == ["/good.csv"]


@pytest.mark.network
def test_url_argument_overrides_entry_url(server: _Server) -> None:
    entry = _entry(server.url("/missing.csv"))
    path = fetch(entry, url=server.url("/good.csv"), timeout=5)
    assert path.read_bytes() == GOOD_CSV
    assert server.requests == ["/good.csv"]


@pytest.mark.network
def test_corrupt_download_raises_and_leaves_nothing(server: _Server) -> None:
    url = server.url("/corrupt.csv")
    with pytest.raises(ChecksumError) as info:
        fetch(_entry(url), timeout=5)
    message = str(info.value)
    assert url in message
    assert GOOD_SHA in message
    assert _sha(GOOD_CSV.replace(b"CCO", b"CCN")) in message
    cache = default_cache_dir()
    assert list(cache.iterdir()) == []


@pytest.mark.network
def test_server_down_names_file_dirs_and_url(server: _Server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = server.url("/good.csv")
    server.stop()
    with pytest.raises(DataUnavailableError) as info:
        fetch(_entry(url), data, timeout=5)
    message = str(info.value)
    for part in ("toy.csv.gz", str(data), str(default_cache_dir()), url, "MOLDDL_DATA_DIR"):
        assert part in message
    assert "refused" in message.lower()
    assert not (default_cache_dir() / "toy.csv").exists()
    assert [p.name for p in default_cache_dir().iterdir()] == []


@pytest.mark.network
def test_http_404_is_data_unavailable(server: _Server) -> None:
    url = server.url("/missing.csv")
    with pytest.raises(DataUnavailableError, match="404") as info:
        fetch(_entry(url), timeout=5)
    assert url in str(info.value)
    assert server.requests == ["/missing.csv"]
    assert list(default_cache_dir().iterdir()) == []


@pytest.mark.network
def test_timeout_is_data_unavailable(server: _Server) -> None:
    server.routes["/slow.csv"] = (200, GOOD_CSV)
    server.delay["/slow.csv"] = 2.0
    url = server.url("/slow.csv")
    with pytest.raises(DataUnavailableError, match="timed out"):
        fetch(_entry(url), timeout=0.3)
    assert list(default_cache_dir().iterdir()) == []


@pytest.mark.network
def test_corrupt_cache_file_is_replaced_by_fresh_download(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    cache = default_cache_dir()
    cache.mkdir(parents=True)
    stale = cache / "toy.csv.gz"
    stale.write_bytes(gzip.compress(b"smiles,y1,y2\nC,1,1\n"))
    entry = _entry(server.url("/good.csv"))

    with pytest.raises(ChecksumError, match=re.escape(str(stale))):
        fetch(entry, download=False)
    assert server.requests == []

    with caplog.at_level(logging.WARNING, logger="molddl.data.sources"):
        path = fetch(entry, timeout=5)
    assert path == cache / "toy.csv"
    assert path.read_bytes() == GOOD_CSV
    assert not stale.exists()
    assert server.requests == ["/good.csv"]
    assert any(str(stale) in r.getMessage() for r in caplog.records)


@pytest.mark.network
def test_corrupt_file_in_the_old_cache_folder_is_ignored(
    server: _Server, isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    isolated_env.mkdir()
    old = isolated_env / "toy.csv"
    old.write_bytes(b"smiles,y1,y2\nC,1,1\n")
    with caplog.at_level(logging.WARNING, logger="molddl.data.sources"):
        path = fetch(_entry(server.url("/good.csv")), timeout=5)
    assert path == io.user_cache("data") / "toy.csv"
    assert path.read_bytes() == GOOD_CSV
    assert old.exists()  # the old folder is only read
    assert any(str(old) in r.getMessage() for r in caplog.records)


@needs_shared
@pytest.mark.network
def test_download_of_real_file_from_loopback_matches_registry(server: _Server) -> None:
    entry = REGISTRY["mof_conditions"]
    server.routes["/SynMOF_A.csv"] = (
        200,
        gzip.decompress((SHARED_DATA / entry.filename).read_bytes()),
    )
    path = fetch("mof_conditions", url=server.url("/SynMOF_A.csv"), timeout=5)
    assert path == default_cache_dir() / "mof_synmof_a_conditions.csv"
    assert content_sha256(path) == entry.sha256

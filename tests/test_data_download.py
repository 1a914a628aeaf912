"""Tests for the Kannada-MNIST downloader and the data command line, against a local server.

A thread serves small fake release files on 127.0.0.1; it can corrupt a file or drop the
connection half way, and counts requests so we can tell when the cache was used instead.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import kannada.data.download as download_module
from kannada.data import (
    Checksum,
    DownloadError,
    default_cache_dir,
    ensure_downloaded,
    load_dataset,
)
from kannada.data.__main__ import main
from kannada.data.download import RELEASE_FILES, checksum_problem, git_blob_id


def idx_gz(values: np.ndarray) -> bytes:
    magic = (0x0800 | values.ndim).to_bytes(4, "big")
    dims = b"".join(d.to_bytes(4, "big") for d in values.shape)
    return gzip.compress(magic + dims + values.astype(np.uint8).tobytes())


def fake_release() -> dict[str, bytes]:
    """Small but valid IDX files under the release's names: 20 train, 10 test, 10 dig."""
    rng = np.random.default_rng(0)
    files = {}
    for images_name, labels_name, n in (
        ("X_kannada_MNIST_train-idx3-ubyte.gz", "y_kannada_MNIST_train-idx1-ubyte.gz", 20),
        ("X_kannada_MNIST_test-idx3-ubyte.gz", "y_kannada_MNIST_test-idx1-ubyte.gz", 10),
        ("X_dig_MNIST-idx3-ubyte.gz", "y_dig_MNIST-idx1-ubyte.gz", 10),
    ):
        files[images_name] = idx_gz(rng.integers(0, 256, (n, 28, 28)))
        files[labels_name] = idx_gz(np.arange(n) % 10)
    return files


def checksums_of(files: dict[str, bytes]) -> dict[str, Checksum]:
    """Checksum table computed here, independently; train images get a blob id only, as in
    the real table."""
    table = {}
    for name, content in files.items():
        blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        sha256 = None if name.startswith("X_kannada_MNIST_train") else hashlib.sha256(content)
        table[name] = Checksum(blob, sha256 and sha256.hexdigest())
    return table


class FakeRelease:
    """An HTTP server in a thread serving `files`; `corrupt` and `drop` name misbehaving files."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.corrupt: set[str] = set()
        self.drop: set[str] = set()
        self.requests: list[str] = []
        release = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the name http.server calls)
                name = self.path.rsplit("/", 1)[-1]
                release.requests.append(name)
                if name not in release.files:
                    self.send_error(404)
                    return
                body = release.files[name]
                if name in release.corrupt:
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if name in release.drop:
                    # Promise more than we send, then hang up mid-file.
                    self.send_header("Content-Length", str(len(body) + 1000))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/release/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def release():
    server = FakeRelease(fake_release())
    yield server
    server.stop()


@pytest.fixture
def table(release):
    return checksums_of(release.files)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cache_contents(cache: Path) -> set[str]:
    """Every name in the cache folder, hidden temporary files included."""
    return {p.name for p in cache.iterdir()} if cache.exists() else set()


def test_download_success_then_load(tmp_path, release, table):
    cache = tmp_path / "cache"
    returned = ensure_downloaded(cache, release.url, files=table, progressbar=True)
    assert returned == cache
    assert cache_contents(cache) == set(release.files)
    for name, content in release.files.items():
        assert (cache / name).read_bytes() == content
    dataset = load_dataset(cache)
    assert dataset.layout == "idx"
    assert (len(dataset.train), len(dataset.test), len(dataset.dig)) == (20, 10, 10)
    np.testing.assert_array_equal(dataset.test.labels, np.arange(10) % 10)


def test_second_call_uses_the_cache_without_network(tmp_path, release, table):
    cache = tmp_path / "cache"
    ensure_downloaded(cache, release.url, files=table, progressbar=False)
    assert sorted(release.requests) == sorted(release.files)
    ensure_downloaded(cache, release.url, files=table, progressbar=False)
    assert len(release.requests) == len(release.files)  # nothing new was fetched
    release.stop()
    assert ensure_downloaded(cache, release.url, files=table, progressbar=False) == cache


@pytest.mark.parametrize(
    "name",
    ["y_kannada_MNIST_train-idx1-ubyte.gz", "X_kannada_MNIST_train-idx3-ubyte.gz"],
    ids=["sha256-and-blob", "blob-only"],
)
def test_corrupt_file_is_rejected_and_not_kept(tmp_path, release, table, name):
    release.corrupt.add(name)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        ensure_downloaded(cache, release.url, files=table, progressbar=False)
    message = str(info.value)
    assert f"{name} downloaded from {release.url}{name} does not match" in message
    assert "git blob id expected" in message and "nothing was saved" in message
    contents = cache_contents(cache)
    assert name not in contents
    assert not [n for n in contents if n.startswith(".") or n.endswith(".part")]
    # Whatever did arrive is complete and correct.
    for kept in contents:
        assert (cache / kept).read_bytes() == release.files[kept]


def test_connection_dropped_mid_file(tmp_path, release, table):
    name = "X_dig_MNIST-idx3-ubyte.gz"
    release.drop.add(name)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=f"could not download {name} from"):
        ensure_downloaded(cache, release.url, files=table, progressbar=False)
    contents = cache_contents(cache)
    assert name not in contents
    assert not [n for n in contents if n.startswith(".") or n.endswith(".part")]


def test_missing_file_on_server(tmp_path, release, table):
    del release.files["y_dig_MNIST-idx1-ubyte.gz"]
    with pytest.raises(DownloadError, match="404"):
        ensure_downloaded(tmp_path, release.url, files=table, progressbar=False)
    assert "y_dig_MNIST-idx1-ubyte.gz" not in cache_contents(tmp_path)


def test_offline_error_says_what_to_do(tmp_path, table):
    base = f"http://127.0.0.1:{free_port()}/mirror/"  # nothing listens there
    with pytest.raises(DownloadError) as info:
        ensure_downloaded(tmp_path / "cache", base, files=table, progressbar=False)
    message = str(info.value)
    assert message.startswith("could not download ")
    for name in table:
        assert f"{base}{name}" in message
    assert "--data-dir" in message and str(tmp_path / "cache") in message
    assert cache_contents(tmp_path / "cache") == set()


def test_damaged_cached_file_is_downloaded_again(tmp_path, release, table):
    cache = tmp_path / "cache"
    ensure_downloaded(cache, release.url, files=table, progressbar=False)
    name = "y_kannada_MNIST_test-idx1-ubyte.gz"
    (cache / name).write_bytes(b"damaged")
    ensure_downloaded(cache, release.url, files=table, progressbar=False)
    assert (cache / name).read_bytes() == release.files[name]
    assert release.requests.count(name) == 2


def test_environment_variables_choose_cache_and_url(tmp_path, release, table, monkeypatch):
    monkeypatch.setenv("KANNADA_MNIST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KANNADA_MNIST_URL", release.url.rstrip("/"))  # slash is optional
    monkeypatch.setattr(download_module, "RELEASE_FILES", table)
    assert default_cache_dir() == tmp_path / "home"
    assert ensure_downloaded(progressbar=False) == tmp_path / "home"
    assert cache_contents(tmp_path / "home") == set(release.files)


def test_default_cache_dir_without_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("KANNADA_MNIST_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "kannada-mnist"


def test_default_url_is_the_official_release(monkeypatch):
    monkeypatch.delenv("KANNADA_MNIST_URL", raising=False)
    assert download_module.release_url() == (
        "https://raw.githubusercontent.com/vinayprabhu/Kannada_MNIST/master/"
        "data/output_tensors/MNIST_format/"
    )
    assert download_module.release_url("http://mirror/x") == "http://mirror/x/"


def test_git_blob_id_matches_git(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"some bytes\n\0\xff")
    expected = hashlib.sha1(b"blob 13\0some bytes\n\0\xff").hexdigest()
    assert git_blob_id(path) == expected
    if shutil.which("git"):
        git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True)
        assert git.stdout.strip() == expected


def test_real_table_matches_the_files_the_readme_calls_identical(real_data_dir):
    assert set(RELEASE_FILES) == {
        "X_kannada_MNIST_train-idx3-ubyte.gz",
        "y_kannada_MNIST_train-idx1-ubyte.gz",
        "X_kannada_MNIST_test-idx3-ubyte.gz",
        "y_kannada_MNIST_test-idx1-ubyte.gz",
        "X_dig_MNIST-idx3-ubyte.gz",
        "y_dig_MNIST-idx1-ubyte.gz",
    }
    identical = (
        "y_kannada_MNIST_train-idx1-ubyte.gz",
        "X_dig_MNIST-idx3-ubyte.gz",
        "y_dig_MNIST-idx1-ubyte.gz",
    )
    for name in identical:
        assert checksum_problem(real_data_dir / "original" / name, RELEASE_FILES[name]) is None
    # The development copy's train images were rebuilt from the raw scans (its README says
    # so): they must not pass as the release's file. A downloaded release's file does pass.
    train = real_data_dir / "original" / "X_kannada_MNIST_train-idx3-ubyte.gz"
    problem = checksum_problem(train, RELEASE_FILES["X_kannada_MNIST_train-idx3-ubyte.gz"])
    assert problem is None or "git blob id expected" in problem


def test_cli_download_and_info(tmp_path, release, table, monkeypatch, capsys):
    monkeypatch.setattr(download_module, "RELEASE_FILES", table)
    dest = tmp_path / "dest"
    assert main(["download", "--dest", str(dest), "--url", release.url]) == 0
    assert capsys.readouterr().out.strip() == str(dest)
    assert main(["info", "--data-dir", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "layout: idx" in out
    assert "train:     20 images, labels 0-9, per class 2 2 2 2 2 2 2 2 2 2" in out
    assert "test :     10 images" in out and "dig  :     10 images" in out


def test_cli_reports_errors_without_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download_module, "RELEASE_FILES", {"a.gz": Checksum("0" * 40)})
    url = f"http://127.0.0.1:{free_port()}/"
    assert main(["download", "--dest", str(tmp_path), "--url", url]) == 1
    error = capsys.readouterr().err
    assert error.startswith("python -m kannada.data: error: could not download a.gz")
    assert "--data-dir" in error
    assert main(["info", "--data-dir", str(tmp_path / "empty-or-missing")]) == 1
    assert "does not exist" in capsys.readouterr().err

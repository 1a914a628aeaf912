"""Download the official Kannada-MNIST release (IDX files) into a local cache, verified.

Files are checked against their published git blob ids (and sha256 where known) before they
are moved into the cache, so the cache never holds a half-written or corrupt file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pooch

from minicnn.files import atomic_write

RELEASE_URL = (
    "https://raw.githubusercontent.com/vinayprabhu/Kannada_MNIST/master/"
    "data/output_tensors/MNIST_format/"
)
CACHE_ENV = "KANNADA_MNIST_HOME"
URL_ENV = "KANNADA_MNIST_URL"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checksum:
    """What a release file must hash to: its git blob id always, its sha256 when published."""

    git_blob: str
    sha256: str | None = None


# From the dataset's GitHub repository (see the data README). The train images are known
# only by their git blob id.
RELEASE_FILES: Mapping[str, Checksum] = MappingProxyType(
    {
        "X_kannada_MNIST_train-idx3-ubyte.gz": Checksum("b588ed8355da1fc0dd0c2707947c132f7aa427c0"),
        "y_kannada_MNIST_train-idx1-ubyte.gz": Checksum(
            "bcfa4effc50c989ea25264975dc38e14d6f8ecc1",
            "ef11e1d3e378fefbe78d4c9913dc9617c83fc5f9240b090121fcc335b5642201",
        ),
        "X_kannada_MNIST_test-idx3-ubyte.gz": Checksum(
            "1dc875a6b5278cf9504eda58ac28530bb65817e9",
            "4628f3fa7b1d32137449dd356be4601da0c28c420b79f1b745a5134504ca35ca",
        ),
        "y_kannada_MNIST_test-idx1-ubyte.gz": Checksum(
            "46809f488ce804791478598cc66f7ef85639eae1",
            "645db5902d290681c9e5b452428e24636963a50a3036c2201240351b88786272",
        ),
        "X_dig_MNIST-idx3-ubyte.gz": Checksum(
            "5ae535fc8a7579f29f07771955dbfb142bd120eb",
            "abda37c59d3d65ef89505860c18e7b7f7e80bfb2ba361ec1df68949e0c630aaa",
        ),
        "y_dig_MNIST-idx1-ubyte.gz": Checksum(
            "6ea1e2fc2d2501e1976bafe433524a8cfd5cd5f7",
            "321fa413dc0f4bc4342da1f3418c656cd346f91d6d479ea67b1a107e920b907b",
        ),
    }
)


class DownloadError(RuntimeError):
    """The release could not be downloaded or did not verify (the message says what to do)."""


def default_cache_dir() -> Path:
    """$KANNADA_MNIST_HOME, or ~/.cache/kannada-mnist when it is not set."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/kannada-mnist").expanduser()


def release_url(base_url: str | None = None) -> str:
    """The folder URL files are fetched from: base_url, else $KANNADA_MNIST_URL, else GitHub."""
    url = base_url or os.environ.get(URL_ENV) or RELEASE_URL
    return url if url.endswith("/") else url + "/"


def ensure_downloaded(
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    *,
    files: Mapping[str, Checksum] | None = None,
    progressbar: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Make sure every release file is in the cache, downloading what is missing; return it.

    Files already in the cache are verified and reused without touching the network; a cached
    file that no longer verifies is downloaded again. files maps file name -> Checksum
    (default RELEASE_FILES; tests pass their own). Raises DownloadError, with instructions for
    getting the files by hand, on any failure.
    """
    files = RELEASE_FILES if files is None else files
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    base = release_url(base_url)
    cache.mkdir(parents=True, exist_ok=True)
    for name, checksum in files.items():
        target = cache / name
        if target.is_file():
            problem = checksum_problem(target, checksum)
            if problem is None:
                continue
            log.warning("cached %s is damaged (%s); downloading it again", target, problem)
        try:
            _download_verified(base + name, target, checksum, progressbar, timeout)
        except DownloadError as error:
            raise DownloadError(f"{error}\n{_manual_instructions(base, files, cache)}") from error
    return cache


def git_blob_id(path: str | Path) -> str:
    """The id git gives a file's content: SHA-1 of b'blob <size>\\0' + content (hex)."""
    return _digests(Path(path))[0]


def checksum_problem(path: str | Path, checksum: Checksum) -> str | None:
    """None when the file matches checksum, else a sentence saying what differs."""
    return _checksum_mismatch(_digests(Path(path)), checksum)


def _checksum_mismatch(digests: tuple[str, str], checksum: Checksum) -> str | None:
    blob, sha256 = digests
    if blob != checksum.git_blob:
        return f"git blob id expected {checksum.git_blob}, found {blob}"
    if checksum.sha256 is not None and sha256 != checksum.sha256:
        return f"sha256 expected {checksum.sha256}, found {sha256}"
    return None


def _digests(path: Path) -> tuple[str, str]:
    """(git blob id, sha256) of a file, in one pass over it."""
    with open(path, "rb") as file:
        return _file_digests(file)


def _file_digests(file) -> tuple[str, str]:
    """(git blob id, sha256) of an open binary file, read from its start."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    blob = hashlib.sha1(f"blob {size}\0".encode())
    sha256 = hashlib.sha256()
    while chunk := file.read(1 << 20):
        blob.update(chunk)
        sha256.update(chunk)
    return blob.hexdigest(), sha256.hexdigest()


def _download_verified(
    url: str, target: Path, checksum: Checksum, progressbar: bool, timeout: float
) -> None:
    """Fetch url into a temporary file next to target, verify it, then move it into place
    (minicnn.files.atomic_write: a failed or corrupt download leaves nothing behind)."""
    downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=timeout)
    with atomic_write(target, "w+b") as file:
        try:
            downloader(url, file, None)
        except OSError as error:  # requests' errors (connection, HTTP status) are OSErrors
            raise DownloadError(f"could not download {target.name} from {url}: {error}") from error
        file.flush()
        problem = _checksum_mismatch(_file_digests(file), checksum)
        if problem is not None:
            raise DownloadError(
                f"{target.name} downloaded from {url} does not match the published checksum "
                f"({problem}): the download is incomplete or corrupt; nothing was saved"
            )


def _manual_instructions(base: str, files: Mapping[str, Checksum], cache: Path) -> str:
    urls = "\n".join(f"  {base}{name}" for name in files)
    return (
        f"To get the data by hand, download these files:\n{urls}\n"
        f"into one folder (for example {cache}) and pass that folder with --data-dir "
        f"(or set {URL_ENV} to a mirror that has them). The Kaggle CSV copy works with "
        "--data-dir too: kaggle competitions download -c Kannada-MNIST"
    )

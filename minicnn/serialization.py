"""The model file format: one .npz archive of plain arrays, never pickle.

This module reads and writes archives; it knows nothing about models. `Sequential.save` and
`minicnn.load` (minicnn.model) decide what goes into them.

Layout of the archive (format version 1):
    "manifest"         JSON: format, version, architecture, optimiser config, metadata, and a
                       SHA-256 digest of every other entry (so tampering is detected)
    "weights/<name>"   parameters and layer state by stable name ("3.W", "4.running_mean")
    "optimizer/<key>"  optimiser state ("iterations", "learning_rate", "m/3.W", ...)
    "metadata/<key>"   metadata values that are arrays (JSON-able values live in the manifest)
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from minicnn.files import atomic_write

FORMAT_NAME = "minicnn-model"
FORMAT_VERSION = 1
ZIP_SIGNATURE = b"PK\x03\x04"  # every .npz file starts with these bytes (a zip archive)


class ModelFileError(ValueError):
    """A model file is missing, truncated, tampered with, or does not describe a valid model."""


def digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(str(array.dtype).encode())
    h.update(str(array.shape).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def write_archive(path, manifest: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write the manifest (with the digests of `arrays` added) and the arrays to `path`,
    atomically: an interrupted write never leaves a half-written file behind."""
    path = Path(path)
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        **manifest,
        "digests": {key: digest(value) for key, value in arrays.items()},
    }
    try:
        manifest_text = json.dumps(manifest, allow_nan=True)
    except TypeError as error:
        raise TypeError(
            f"metadata for {path} must be JSON-serialisable or NumPy arrays: {error}"
        ) from error
    with atomic_write(path, "wb") as handle:
        np.savez(handle, manifest=np.array(manifest_text), **arrays)
    return path


def read_archive(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify a model file. Returns (manifest, arrays) or raises ModelFileError."""
    path = Path(path)
    arrays = _read_entries(path)
    if "manifest" not in arrays:
        raise ModelFileError(f"{path}: no 'manifest' entry; this is not a minicnn model file")
    try:
        manifest = json.loads(str(arrays.pop("manifest")))
    except (json.JSONDecodeError, TypeError) as error:
        raise ModelFileError(f"{path}: manifest is not valid JSON ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: manifest does not describe a {FORMAT_NAME} file")
    version = manifest.get("version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version!r} is not supported (this minicnn reads version {FORMAT_VERSION})"
        )
    digests = manifest.get("digests", {})
    if set(digests) != set(arrays):
        missing, extra = sorted(set(digests) - set(arrays)), sorted(set(arrays) - set(digests))
        raise ModelFileError(
            f"{path}: entries do not match the manifest (missing {missing}, unexpected {extra})"
        )
    for key, value in arrays.items():
        if digest(value) != digests[key]:
            raise ModelFileError(
                f"{path}: entry {key!r} does not match its checksum (the file was modified)"
            )
    return manifest, arrays


def _read_entries(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: is a folder, not a model file")
    not_a_model = (
        f"{path}: not a minicnn model file (a model file is a .npz archive written by "
        "Sequential.save"
    )
    try:
        with open(path, "rb") as handle:
            signature = handle.read(len(ZIP_SIGNATURE))
    except OSError as error:
        raise ModelFileError(f"{path}: cannot be read ({error.strerror})") from error
    if signature != ZIP_SIGNATURE:
        raise ModelFileError(f"{not_a_model}; this file is not one)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ModelFileError(
            f"{path}: not a readable minicnn model file (truncated or corrupt: {error})"
        ) from error
    except ValueError as error:  # an entry that is not a plain array (it would need pickle)
        raise ModelFileError(f"{not_a_model}; it holds an entry that is not a plain array)") from (
            error
        )

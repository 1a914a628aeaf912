"""Save and load a model as one .npz file: architecture (JSON), weights, optimiser state and
user metadata. No pickle: every entry is a plain array, loaded with allow_pickle=False.

Layout of the archive (format version 1):
    "manifest"         JSON: format, version, architecture, optimiser config, metadata, and a
                       SHA-256 digest of every other entry (so tampering is detected)
    "weights/<name>"   parameters and layer state by stable name ("3.W", "4.running_mean")
    "optimizer/<key>"  optimiser state ("iterations", "lr", "m/3.W", ...)
    "metadata/<key>"   metadata values that are arrays (JSON-able values live in the manifest)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from minicnn.backend import get_backend
from minicnn.layers import LAYER_TYPES
from minicnn.losses import SoftmaxCrossEntropy
from minicnn.optimizers import OPTIMIZER_TYPES

FORMAT_NAME = "minicnn-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, truncated, tampered with, or does not describe a valid model."""


def _digest(array: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(array.dtype).encode())
    h.update(str(array.shape).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def save(model, path, metadata: dict | None = None, include_optimizer: bool = True) -> Path:
    """Write `model` to `path` (.npz) atomically: a temp file in the same folder, then a rename,
    so an interrupted save never leaves a half-written model behind.

    `metadata` (merged over `model.metadata`): a dict whose values are JSON-serialisable or
    NumPy arrays (e.g. a preprocessing matrix). `include_optimizer=False` leaves out the
    optimiser and its state (Adam's two moments are twice the size of the weights): enough for
    prediction, not for resuming training. Returns the path written.
    """
    path = Path(path)
    meta = {**getattr(model, "metadata", {}), **(metadata or {})}
    arrays: dict[str, np.ndarray] = {}
    json_meta = {}
    for key, value in meta.items():
        if isinstance(value, np.ndarray) or type(value).__module__.split(".")[0] == "cupy":
            arrays[f"metadata/{key}"] = np.asarray(value.get() if hasattr(value, "get") else value)
        else:
            json_meta[key] = value
    for name, value in model.get_weights().items():
        arrays[f"weights/{name}"] = value
    optimizer_config = None
    if model.optimizer is not None and include_optimizer:
        optimizer_config = {
            "type": type(model.optimizer).__name__,
            "config": model.optimizer.get_config(),
        }
        for key, value in model.optimizer.state_dict().items():
            arrays[f"optimizer/{key}"] = value
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "architecture": {
            "input_shape": list(model.input_shape),
            "dtype": str(model.dtype),
            "layers": [
                {"type": type(layer).__name__, "config": layer.get_config()}
                for layer in model.layers
            ],
        },
        "loss": {"label_smoothing": model.loss.label_smoothing} if model.loss is not None else None,
        "optimizer": optimizer_config,
        "metadata": json_meta,
        "digests": {key: _digest(value) for key, value in arrays.items()},
    }
    try:
        manifest_text = json.dumps(manifest, allow_nan=True)
    except TypeError as error:
        raise TypeError(
            f"metadata for {path} must be JSON-serialisable or NumPy arrays: {error}"
        ) from error
    arrays["manifest"] = np.array(manifest_text)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)  # mkstemp creates 0600 files; give the usual permissions instead
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _read_archive(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ModelFileError(
            f"{path}: not a readable minicnn model file (truncated or corrupt: {error})"
        ) from error
    except ValueError as error:  # e.g. an entry that would need pickle
        raise ModelFileError(f"{path}: invalid entry in model file ({error})") from error


def load_manifest(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify a model file. Returns (manifest, arrays) or raises ModelFileError."""
    path = Path(path)
    arrays = _read_archive(path)
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
        if _digest(value) != digests[key]:
            raise ModelFileError(
                f"{path}: entry {key!r} does not match its checksum (the file was modified)"
            )
    return manifest, arrays


def load(path):
    """Rebuild the model saved at `path` with its weights, optimiser state and metadata.

    The model's arrays are placed on the current backend. Raises ModelFileError naming the file
    and the problem when the file is missing, truncated, tampered with or inconsistent.
    """
    from minicnn.model import Sequential  # here to avoid an import cycle

    path = Path(path)
    manifest, arrays = load_manifest(path)
    try:
        arch = manifest["architecture"]
        layers = []
        for i, spec in enumerate(arch["layers"]):
            cls = LAYER_TYPES.get(spec["type"])
            if cls is None:
                raise ModelFileError(f"{path}: layer {i} has unknown type {spec['type']!r}")
            layers.append(cls(**spec["config"]))
        model = Sequential(layers, input_shape=arch["input_shape"], dtype=arch["dtype"])
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: invalid architecture in manifest ({error})") from error

    weights = {k.removeprefix("weights/"): v for k, v in arrays.items() if k.startswith("weights/")}
    try:
        model.set_weights(weights)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from error

    loss_config = manifest.get("loss")
    optimizer_spec = manifest.get("optimizer")
    optimizer = None
    if optimizer_spec is not None:
        cls = OPTIMIZER_TYPES.get(optimizer_spec.get("type"))
        if cls is None:
            raise ModelFileError(f"{path}: unknown optimizer type {optimizer_spec.get('type')!r}")
        optimizer = cls(**optimizer_spec["config"])
        state = {
            k.removeprefix("optimizer/"): v for k, v in arrays.items() if k.startswith("optimizer/")
        }
        if state:
            optimizer.load_state_dict(state, xp=get_backend())
    model.compile(optimizer, SoftmaxCrossEntropy(**loss_config) if loss_config else None)

    metadata = dict(manifest.get("metadata", {}))
    for key, value in arrays.items():
        if key.startswith("metadata/"):
            metadata[key.removeprefix("metadata/")] = value
    model.metadata = metadata
    return model

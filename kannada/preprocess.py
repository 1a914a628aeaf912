"""What every image goes through before the network sees it: pixels to [0, 1] float32 in NCHW,
then (optionally) ZCA whitening. Saved inside the model file so that training, evaluation,
prediction and the demo all apply exactly the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kannada.digits import INPUT_SHAPE
from kannada.zca import ZCA


def scale_images(images) -> np.ndarray:
    """uint8 (N, 28, 28) in 0..255 (or float already in [0, 1]) -> float32 (N, 1, 28, 28) in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None, :, :]
    if images.ndim != 4 or images.shape[1:] != INPUT_SHAPE:
        raise ValueError(
            f"expected images of shape (N, 28, 28) or (N, 1, 28, 28), got {images.shape}"
        )
    if images.dtype == np.uint8:
        return images.astype(np.float32) * np.float32(1 / 255)
    return images.astype(np.float32, copy=False)


@dataclass
class Preprocessing:
    """Scaling to [0, 1] plus an optional fitted ZCA.

    `__call__(images)` maps uint8 (N, 28, 28) or float (N, 1, 28, 28) images in [0, 1] to the
    network's float32 (N, 1, 28, 28) input. `whiten(x)` applies only the ZCA step, for batches
    that are already scaled (and augmented) during training.
    """

    zca: ZCA | None = None

    def whiten(self, x: np.ndarray) -> np.ndarray:
        """ZCA step only (the identity without ZCA); float32 (N, 1, 28, 28) in and out."""
        return x if self.zca is None else self.zca.transform(x)

    def __call__(self, images) -> np.ndarray:
        return self.whiten(scale_images(images))

    def to_metadata(self) -> dict:
        """Entries for model.save(metadata=...): JSON values and NumPy arrays."""
        meta: dict = {"preprocessing": {"scale": "1/255", "zca": self.zca is not None}}
        if self.zca is not None:
            meta["preprocessing"]["zca_epsilon"] = self.zca.epsilon
            arrays = self.zca.to_arrays()
            # The whitening matrix is symmetric: storing its upper triangle halves its size
            # (784 x 784 float32: 2.4 MB -> 1.2 MB), which keeps a shipped model small.
            matrix = arrays.pop("matrix")
            meta["zca_matrix_upper"] = matrix[np.triu_indices(len(matrix))]
            for key, value in arrays.items():
                meta[f"zca_{key}"] = value
        return meta

    @classmethod
    def from_metadata(cls, metadata: dict, source: str = "model file") -> Preprocessing:
        """Rebuild from a loaded model's metadata; a model without the record is an error."""
        spec = metadata.get("preprocessing")
        if not isinstance(spec, dict) or "zca" not in spec:
            raise ValueError(
                f"{source}: no 'preprocessing' record in the metadata (not a kannada model?)"
            )
        if not spec["zca"]:
            return cls()
        try:
            arrays = {key: metadata[f"zca_{key}"] for key in ("mean", "epsilon")}
            if "zca_matrix" in metadata:  # files written before the matrix was stored packed
                arrays["matrix"] = metadata["zca_matrix"]
            else:
                upper = metadata["zca_matrix_upper"]
                arrays["matrix"] = _unpack_symmetric(upper, len(arrays["mean"]), source)
        except KeyError as error:
            raise ValueError(
                f"{source}: ZCA is on but {error.args[0]!r} is missing from the metadata"
            ) from None
        return cls(ZCA.from_arrays(arrays))


def _unpack_symmetric(upper: np.ndarray, size: int, source: str) -> np.ndarray:
    """Rebuild a symmetric (size, size) matrix from its row-major upper triangle."""
    upper = np.asarray(upper)
    expected = size * (size + 1) // 2
    if upper.shape != (expected,):
        raise ValueError(
            f"{source}: zca_matrix_upper has shape {upper.shape}, expected ({expected},) for {size} pixels"
        )
    matrix = np.empty((size, size), dtype=upper.dtype)
    rows, cols = np.triu_indices(size)
    matrix[rows, cols] = upper
    matrix[cols, rows] = upper
    return matrix

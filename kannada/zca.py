"""ZCA whitening of images, fitted in NumPy: decorrelates pixels while keeping images image-like.

Fit once on the training images, store mean and matrix with the model, transform every input.
"""

from __future__ import annotations

import numpy as np

# Rows per chunk in transform(): bounds the temporary (x - mean) to 4096 x D values.
_CHUNK = 4096


class ZCA:
    """ZCA whitening: x -> (x - mean) @ W with W = U diag(1 / sqrt(lambda + epsilon)) U^T.

    U and lambda are the eigenvectors and eigenvalues of the pixel covariance of the training
    images. Along a direction with variance lambda the output has variance lambda / (lambda +
    epsilon): about 1 where lambda >> epsilon (whitened), about lambda / epsilon where lambda
    << epsilon (left small). So epsilon regularises the small eigenvalues: without it the
    noise directions, and the ~75 border pixels that are always 0, would be multiplied by
    up to 1 / sqrt(lambda), i.e. thousands of times.

    Default epsilon = 0.1, for pixels scaled to [0, 1]. On Kannada-MNIST train the covariance
    has 78 eigenvalues above 0.1 holding 77% of the variance (top eigenvalue 3.0, total 37.5),
    305 above 0.01 (97%), and 701 above 1e-6. With 0.1 the strokes' main directions are
    whitened and no direction is amplified more than 1 / sqrt(0.1) = 3.2 times; Keras'
    default 1e-6 (meant for raw data) would amplify near-empty directions up to 1000 times.

    Attributes after fit (float32, whatever the input precision, as stored with the model):
    mean (D,) and matrix (D, D), symmetric.
    """

    def __init__(self, epsilon: float = 0.1) -> None:
        if not (np.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"ZCA epsilon: expected a number > 0, found {epsilon!r}")
        self.epsilon = float(epsilon)
        self.mean: np.ndarray | None = None
        self.matrix: np.ndarray | None = None

    @property
    def is_fitted(self) -> bool:
        """True once fit() or from_arrays() has set the mean and matrix."""
        return self.matrix is not None

    def fit(self, x: np.ndarray) -> ZCA:
        """Fit mean and whitening matrix to images x of shape (N, ...), N >= 2. Returns self.

        The covariance is one GEMM, (x - mean)^T (x - mean) / N, in the input's precision:
        for float32 training images float32 takes about half the time and memory of float64,
        and its rounding error is far below epsilon. The eigendecomposition of the D x D
        covariance (eigh) is in float64. An SVD of the data matrix would give the same at
        several times the cost (benchmarks/speed.py times the fit).
        """
        flat = _as_rows(x, "ZCA.fit")
        n, _ = flat.shape
        if n < 2:
            raise ValueError(f"ZCA.fit: need at least 2 images to estimate a covariance, found {n}")
        mean = flat.mean(axis=0, dtype=np.float64)
        centred = flat - mean.astype(flat.dtype)  # (N, D)
        covariance = (centred.T @ centred).astype(np.float64) / n  # (D, D)
        del centred
        eigenvalues, vectors = np.linalg.eigh(covariance)
        # Zero-variance directions come out of eigh as tiny negatives; they are zeros.
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        matrix = (vectors / np.sqrt(eigenvalues + self.epsilon)) @ vectors.T
        matrix = (matrix + matrix.T) / 2  # exactly symmetric, as it is in exact arithmetic
        self.mean = mean.astype(np.float32)
        self.matrix = matrix.astype(np.float32)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Whiten images x of shape (N, ...) with D values each; same shape and dtype out.

        float32 in gives float32 out (float64 gives float64). Works in chunks of rows so
        memory beyond the output stays bounded for large N.
        """
        if not self.is_fitted:
            raise RuntimeError(
                "ZCA.transform: not fitted; call fit() or load with ZCA.from_arrays()"
            )
        flat = _as_rows(x, "ZCA.transform")
        n, size = flat.shape
        if size != len(self.mean):
            raise ValueError(
                f"ZCA.transform: expected images of {len(self.mean)} values each (as fitted), "
                f"found shape {np.shape(x)} ({size} values each)"
            )
        mean = self.mean.astype(flat.dtype)
        matrix = self.matrix.astype(flat.dtype)
        out = np.empty_like(flat)
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            np.matmul(flat[start:stop] - mean, matrix, out=out[start:stop])
        return out.reshape(np.shape(x))

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """fit(x) then transform(x): (N, ...) in, same shape and dtype out."""
        return self.fit(x).transform(x)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state: {"mean": (D,), "matrix": (D, D), "epsilon": ()} for the model file."""
        if not self.is_fitted:
            raise RuntimeError("ZCA.to_arrays: not fitted; there is nothing to save")
        return {
            "mean": self.mean.copy(),
            "matrix": self.matrix.copy(),
            "epsilon": np.array(self.epsilon, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ZCA:
        """Rebuild a fitted ZCA from to_arrays()'s dict, checking names and shapes."""
        missing = sorted({"mean", "matrix", "epsilon"} - set(arrays))
        if missing:
            raise ValueError(f"ZCA arrays: missing {missing}; found keys {sorted(arrays)}")
        mean = np.asarray(arrays["mean"])
        matrix = np.asarray(arrays["matrix"])
        epsilon = np.asarray(arrays["epsilon"])
        if mean.ndim != 1:
            raise ValueError(f"ZCA arrays: 'mean' should have shape (D,), found {mean.shape}")
        size = len(mean)
        if matrix.shape != (size, size):
            raise ValueError(
                f"ZCA arrays: 'matrix' should have shape ({size}, {size}) to match 'mean' {mean.shape}, "
                f"found {matrix.shape}"
            )
        if epsilon.shape != ():
            raise ValueError(
                f"ZCA arrays: 'epsilon' should be a scalar (shape ()), found shape {epsilon.shape}"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(matrix))):
            raise ValueError(
                "ZCA arrays: 'mean' and 'matrix' should be finite, found NaN or infinity"
            )
        zca = cls(epsilon=float(epsilon))
        zca.mean = mean.astype(np.float32)
        zca.matrix = matrix.astype(np.float32)
        return zca


def _as_rows(x: np.ndarray, where: str) -> np.ndarray:
    """(N, ...) float32/float64 images as an (N, D) array, or explain what is wrong."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"{where}: expected float32 or float64 images (pixels scaled to [0, 1]), found {x.dtype}"
        )
    if x.ndim < 2:
        raise ValueError(f"{where}: expected images of shape (N, ...), found shape {x.shape}")
    return x.reshape(len(x), -1)

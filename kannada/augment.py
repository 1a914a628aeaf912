"""Random affine augmentation of digit batches: Keras' apply_affine_transform, named by axis.

A fast vectorised bilinear resampler does the work; a scipy.ndimage path is the reference.

How this relates to Keras. Keras' `apply_affine_transform(x, theta, tx, ty, shear, zx, zy)`
(keras/src/legacy/preprocessing/image.py; keras-preprocessing since its PR #318 of 2020) writes
its matrices on (x, y) coordinates, x along the columns (to the right) and y along the rows
(down the screen). `Transforms` holds the same six numbers under names that say their axis:
angle = theta, shift_x = tx, shift_y = ty, shear = shear, zoom_x = zx, zoom_y = zy. For the
same numbers our warp gives Keras' image (bilinear, order=1; on a square image, see
affine_matrices for others). Keras' `ImageDataGenerator` draws `tx` from
`height_shift_range` (times the height) and `ty` from `width_shift_range`, so there a "height"
shift moves pixels sideways; our `Augmenter` draws the width shift along x and the height shift
along y, as the names say. With equal ranges on a square image, as ours, both draw alike.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from minicnn.backend import get_array_module, to_numpy
from minicnn.files import atomic_write

FILL_MODES = ("nearest", "constant")
METHODS = ("fast", "reference")
GEOMETRY = 2  # Keras' axes; 1 = its formulas on (row, col), the maps made before (Augmenter)
GEOMETRIES = (1, 2)

# Images per chunk in the fast path: their (256, 2, 784) float64 coordinates take 3 MB and
# stay in the cache; much larger chunks spill out of it and are slower.
_CHUNK = 256


@dataclass(frozen=True)
class Transforms:
    """Per-image parameters of a batch of affine transforms, each an (N,) float64 array.

    Keras' apply_affine_transform parameters, named by axis (x along the columns, to the right;
    y along the rows, down): angle = theta, shift_x = tx, shift_y = ty, shear, zoom_x = zx,
    zoom_y = zy. As in Keras, the numbers say where each output pixel looks in the input: with
    shift_x = 3 every pixel looks 3 columns to its right, so the digit moves 3 columns left;
    with zoom_x = 1.2 the pixels look at a 20% wider span, so the digit gets narrower.
    """

    angle: np.ndarray  # degrees; positive turns the digit counter-clockwise on screen
    shift_x: np.ndarray  # pixels along the columns; positive moves the digit left
    shift_y: np.ndarray  # pixels along the rows; positive moves the digit up
    shear: np.ndarray  # degrees; a horizontal slant: positive moves the lower rows right
    zoom_x: np.ndarray  # sampling-grid scale along the columns: > 1 makes the digit narrower
    zoom_y: np.ndarray  # sampling-grid scale along the rows: > 1 makes the digit shorter

    @classmethod
    def identity(cls, n: int) -> Transforms:
        """n transforms that leave every image unchanged."""
        zeros, ones = np.zeros(n), np.ones(n)
        return cls(zeros, zeros, zeros, zeros, ones, ones)


def affine_matrices(
    transforms: Transforms, height: int, width: int, geometry: int = GEOMETRY
) -> np.ndarray:
    """Matrices mapping each output pixel (row, col, 1) to the input point it samples.

    Built as Keras builds them, on (x, y, 1) = (col, row, 1): rotation @ shift @ shear @ zoom,
    about the centre of the pixel grid, x = (width - 1) / 2, y = (height - 1) / 2; then the two
    coordinates are exchanged, because scipy indexes an image as (row, col) = (y, x). This is
    the `matrix`/`offset` convention of scipy.ndimage.affine_transform. Keras centres x on
    (height - 1) / 2 and y on (width - 1) / 2: the same on a square image; on others we keep
    the true centre. geometry=1 gives the maps of configs saved before `geometry` existed
    (Augmenter): the same formulas applied to (row, col), with the x and y parameters exchanged.

    Returns: (N, 2, 3) float64.
    """
    _check_geometry(geometry)
    t = transforms
    if geometry == 1:
        centre = ((height - 1) / 2, (width - 1) / 2)
        return _keras_matrices(t.angle, t.shift_y, t.shift_x, t.shear, t.zoom_y, t.zoom_x, centre)
    centre = ((width - 1) / 2, (height - 1) / 2)
    xy = _keras_matrices(t.angle, t.shift_x, t.shift_y, t.shear, t.zoom_x, t.zoom_y, centre)
    return xy[:, ::-1][:, :, [1, 0, 2]]  # (x, y) -> (y, x) on both sides of the map


def _keras_matrices(theta, tx, ty, shear, zx, zy, centre: tuple[float, float]) -> np.ndarray:
    """Keras' matrix rotation @ shift @ shear @ zoom about `centre`, on (first, second) coordinates.

    theta and shear in degrees; every parameter an (N,) array. Returns (N, 2, 3) float64.
    """
    n = len(theta)
    theta = np.deg2rad(theta)
    shear = np.deg2rad(shear)

    def stack(rows: list[list[Any]]) -> np.ndarray:
        """Build (N, 3, 3) from a 3x3 nested list of scalars and (N,) arrays."""
        out = np.zeros((n, 3, 3))
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                out[:, i, j] = value
        return out

    rotation = stack(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    shift = stack([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shearing = stack([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
    zoom = stack([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    matrix = rotation @ shift @ shearing @ zoom  # (N, 3, 3)

    # Conjugate by a move of the centre to the origin, so the transform acts about the centre.
    centre = np.array(centre)
    linear = matrix[:, :2, :2]
    offset = matrix[:, :2, 2] + centre - linear @ centre
    return np.concatenate([linear, offset[:, :, None]], axis=2)


def warp_reference(
    images: np.ndarray, matrices: np.ndarray, fill_mode: str, cval: float
) -> np.ndarray:
    """Resample each image with scipy.ndimage.affine_transform (order 1): the reference path.

    images: (N, H, W) float32; matrices: (N, 2, 3) from affine_matrices. Returns (N, H, W) float32.
    """
    _check_fill_mode(fill_mode)
    images = to_numpy(images)
    out = np.empty(images.shape, dtype=np.float32)
    for i, (image, matrix) in enumerate(zip(images, matrices, strict=True)):
        ndimage.affine_transform(
            image,
            matrix[:, :2],
            offset=matrix[:, 2],
            output=out[i],
            order=1,
            mode=fill_mode,
            cval=cval,
        )
    return out


def warp_bilinear(images, matrices: np.ndarray, fill_mode: str, cval: float):
    """Resample a whole batch by bilinear interpolation, vectorised: the fast path.

    Gives what scipy.ndimage.affine_transform(order=1) gives: "nearest" clamps the sampling
    point to the image, "constant" returns cval for points outside [0, H-1] x [0, W-1].
    images: (N, H, W) float32, NumPy (or CuPy) array; matrices: (N, 2, 3) float64 from
    affine_matrices. Returns (N, H, W) float32 on the same device as images.
    """
    _check_fill_mode(fill_mode)
    xp = get_array_module(images)
    images = xp.ascontiguousarray(images, dtype=xp.float32)
    n, height, width = images.shape
    pixels = height * width
    rows, cols = xp.divmod(xp.arange(pixels), width)
    grid = xp.stack([rows, cols, xp.ones(pixels, dtype=xp.intp)]).astype(xp.float64)  # (3, H*W)
    out = xp.empty_like(images)

    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        # float64 coordinates so the inside/outside test agrees with scipy to the last bit.
        points = xp.asarray(matrices[start:stop], dtype=xp.float64) @ grid  # (k, 2, H*W)
        src_rows, src_cols = points[:, 0], points[:, 1]
        if fill_mode == "constant":
            inside = (src_rows >= 0) & (src_rows <= height - 1)
            inside &= (src_cols >= 0) & (src_cols <= width - 1)
        # Clamping the point is exactly scipy's "nearest"; for "constant" it only keeps the
        # indices valid at points that are replaced by cval below.
        xp.clip(src_rows, 0, height - 1, out=src_rows)
        xp.clip(src_cols, 0, width - 1, out=src_cols)
        row0 = xp.floor(src_rows)
        col0 = xp.floor(src_cols)
        row_frac = (src_rows - row0).astype(xp.float32)
        col_frac = (src_cols - col0).astype(xp.float32)
        row0 = row0.astype(xp.intp)
        col0 = col0.astype(xp.intp)

        # Flat indices of the four neighbours; at the last row/column the "next" neighbour
        # is the pixel itself (its weight is zero there anyway).
        base = (xp.arange(stop - start) * pixels)[:, None]
        top_left = base + row0 * width + col0
        right = (col0 < width - 1).astype(xp.intp)
        down = (row0 < height - 1).astype(xp.intp) * width
        flat = images[start:stop].reshape(-1)
        v00 = xp.take(flat, top_left)
        v01 = xp.take(flat, top_left + right)
        bottom_left = top_left + down
        v10 = xp.take(flat, bottom_left)
        v11 = xp.take(flat, bottom_left + right)

        top = v00 + col_frac * (v01 - v00)
        bottom = v10 + col_frac * (v11 - v10)
        values = top + row_frac * (bottom - top)  # (k, H*W)
        if fill_mode == "constant":
            values = xp.where(inside, values, xp.float32(cval))
        out[start:stop] = values.reshape(stop - start, height, width)
    return out


@dataclass
class Augmenter:
    """Random rotation, shift, shear and zoom of each image, with Keras' ImageDataGenerator ranges.

    rotation_range: degrees; each image turns by an angle uniform in [-r, r].
    zoom_range: z; zoom factors uniform in [1 - z, 1 + z], drawn independently along x and y.
        As in Keras the factor scales the *sampling grid*, so a factor > 1 makes the digit
        smaller and < 1 makes it larger.
    width_shift_range, height_shift_range: fractions f of the width/height; the width shift
        (along x, the columns) is uniform in [-f, f] * width, the height shift (along y, the
        rows) in [-f, f] * height, in pixels (not rounded). Keras' ImageDataGenerator crosses
        them (module docstring); here each moves the digit the way its name says.
    shear_range: degrees, uniform in [-s, s]: a horizontal slant, as handwriting slants.
    fill_mode: "nearest" (Keras' default: repeat the edge pixel) or "constant" (cval).
    cval: the fill value for "constant".
    order: interpolation order; only 1 (bilinear, as Keras) is implemented.
    method: "fast" (vectorised bilinear resampler) or "reference" (scipy.ndimage per image);
        both give the same images to within 1e-5.
    geometry: 2, Keras' axes. 1 is what this class did before the field existed: Keras'
        formulas applied with x read as the row index, so a positive angle turned clockwise
        and the shear slanted vertically (the ranges drew the same numbers). It is kept so
        that a run started with it resumes with it and its record stays true: from_config
        reads a config without `geometry` as 1. New runs use 2.

    Defaults: rotation 15, zoom 0.2, shifts 0.15, shear 15. The popular Kannada-MNIST Kaggle
    notebooks use rotation 10 with zoom/shift 0.25 (some zoom 0.1); on 28x28 digits a 0.25
    shift moves a digit by up to 7 pixels and often cuts strokes off, so we use 0.15 (up to
    4.2 px). The earlier defaults' rotation 10, zoom 0.15 and shear 10 were widened to 15, 0.2
    and 15 when that read new writers better (results/README.md has the experiments).

    The fast path works on NumPy arrays and, through minicnn.backend.get_array_module, on CuPy
    arrays (the random parameters are always drawn on the host from a NumPy Generator).
    """

    rotation_range: float = 15.0
    zoom_range: float = 0.2
    width_shift_range: float = 0.15
    height_shift_range: float = 0.15
    shear_range: float = 15.0
    fill_mode: str = "nearest"
    cval: float = 0.0
    order: int = 1
    method: str = "fast"
    geometry: int = GEOMETRY

    def __post_init__(self) -> None:
        for name in (
            "rotation_range",
            "zoom_range",
            "width_shift_range",
            "height_shift_range",
            "shear_range",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
                raise ValueError(f"Augmenter {name}: expected a number >= 0, found {value!r}")
        if self.zoom_range >= 1:
            raise ValueError(
                f"Augmenter zoom_range: expected a value below 1 (zoom factors in [1-z, 1+z] "
                f"must stay positive), found {self.zoom_range!r}"
            )
        _check_fill_mode(self.fill_mode)
        if self.order != 1:
            raise ValueError(
                f"Augmenter order: only 1 (bilinear, as Keras) is implemented, found {self.order!r}"
            )
        if self.method not in METHODS:
            raise ValueError(f"Augmenter method: expected one of {METHODS}, found {self.method!r}")
        _check_geometry(self.geometry)

    def sample(self, n: int, height: int, width: int, rng: np.random.Generator) -> Transforms:
        """Draw n random transforms for images of height x width pixels."""
        # In the order geometry 1 drew them (rows before columns), so old runs resume exactly.
        zoom = rng.uniform(1 - self.zoom_range, 1 + self.zoom_range, size=(n, 2))  # (y, x)
        angle = rng.uniform(-self.rotation_range, self.rotation_range, size=n)
        shift_y = rng.uniform(-self.height_shift_range, self.height_shift_range, size=n) * height
        shift_x = rng.uniform(-self.width_shift_range, self.width_shift_range, size=n) * width
        shear = rng.uniform(-self.shear_range, self.shear_range, size=n)
        return Transforms(angle, shift_x, shift_y, shear, zoom_x=zoom[:, 1], zoom_y=zoom[:, 0])

    def apply(self, batch, transforms: Transforms):
        """Apply given transforms to a batch.

        batch: (N, 1, H, W) or (N, H, W) float array. Returns a new float32 array, same shape.
        """
        images = _as_images(batch)
        _, height, width = images.shape
        matrices = affine_matrices(transforms, height, width, self.geometry)
        warp = warp_bilinear if self.method == "fast" else warp_reference
        return warp(images, matrices, self.fill_mode, self.cval).reshape(batch.shape)

    def __call__(self, batch, rng: np.random.Generator):
        """Augment a batch with transforms drawn from rng; the same rng state gives the same output.

        batch: (N, 1, H, W) or (N, H, W) float array. Returns a new float32 array, same shape.
        """
        images = _as_images(batch)
        n, height, width = images.shape
        if self.is_identity():
            return images.astype(np.float32, copy=True).reshape(batch.shape)
        return self.apply(batch, self.sample(n, height, width, rng))

    def is_identity(self) -> bool:
        """True when every range is zero, so augmentation leaves images unchanged."""
        ranges = (self.rotation_range, self.zoom_range, self.width_shift_range)
        return not any(ranges + (self.height_shift_range, self.shear_range))

    def to_config(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (for the training record)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Augmenter:
        """Rebuild an Augmenter from to_config()'s dict; unknown keys are an error.

        A config without `geometry` was saved before the field existed: it gets geometry 1,
        the maps it was made with.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"Augmenter config: unknown keys {unknown}; expected some of {sorted(known)}"
            )
        return cls(**{"geometry": 1, **config})


def save_examples_figure(
    images: np.ndarray,
    augmenter: Augmenter,
    path: str | os.PathLike,
    rng: np.random.Generator,
    n: int = 8,
    versions: int = 7,
) -> Path:
    """Save a PNG grid: each of the first n digits (first column) then `versions` augmentations.

    images: (M, 1, H, W) or (M, H, W). The file is written atomically (minicnn.files).
    Returns the path.
    """
    from matplotlib.figure import Figure  # Figure directly: no pyplot state, no window

    digits = to_numpy(_as_images(images))[:n]
    if len(digits) == 0:
        raise ValueError("save_examples_figure: no images given")
    augmented = to_numpy(augmenter(np.repeat(digits, versions, axis=0), rng))
    augmented = augmented.reshape(len(digits), versions, *digits.shape[1:])
    low, high = float(digits.min()), float(digits.max())

    figure = Figure(figsize=(1.1 * (versions + 1), 1.1 * len(digits)))
    axes = figure.subplots(len(digits), versions + 1, squeeze=False)
    for row, digit in enumerate(digits):
        for col, image in enumerate([digit, *augmented[row]]):
            axes[row, col].imshow(image, cmap="gray", vmin=low, vmax=high)
            axes[row, col].set_axis_off()
    axes[0, 0].set_title("original", fontsize=8)
    axes[0, 1].set_title("augmented", fontsize=8, loc="left")
    figure.tight_layout()

    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    return Path(path)


def _as_images(batch):
    """View a (N, 1, H, W) or (N, H, W) batch as (N, H, W), or explain the shape problem."""
    if batch.ndim == 4 and batch.shape[1] == 1:
        return batch.reshape(batch.shape[0], batch.shape[2], batch.shape[3])
    if batch.ndim == 3:
        return batch
    raise ValueError(
        f"augment: expected a batch of shape (N, 1, H, W) or (N, H, W), found {batch.shape}"
    )


def _check_fill_mode(fill_mode: str) -> None:
    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode: expected one of {FILL_MODES}, found {fill_mode!r}")


def _check_geometry(geometry: int) -> None:
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry: expected one of {GEOMETRIES}, found {geometry!r}")

"""Turn a drawing or a picture of one handwritten digit into the 28x28 image the network knows.

The steps copy how Kannada-MNIST (like MNIST) was made: take the ink, crop it to its bounding
box, scale the longer side to 20 px keeping the aspect ratio, pad to 28x28, then move the
centre of mass to the centre. The model's own saved preprocessing (scaling, ZCA) comes after.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from kannada.digits import IMAGE_SIDE

DIGIT_BOX = 20  # ...with the digit's longer side scaled to 20 px
# A 28x28 result needs no more: anything larger is downscaled before the work starts.
MAX_SIDE = 1024
# Ink weaker than this fraction of the strongest ink is noise (paper grain, JPEG ringing)
# and does not count for the bounding box.
INK_THRESHOLD = 0.1
# A picture whose strongest ink is this faint (in 0..1, about 25 grey levels) is empty.
EMPTY_LEVEL = 0.1


class DrawingError(ValueError):
    """An input that gives no digit; the message is meant for the person at the page."""


class EmptyDrawing(DrawingError):
    """The canvas or picture has no ink."""


class UnreadableImage(DrawingError):
    """The file or array is not an image we can read."""


def open_image(source, name: str | None = None) -> Image.Image:
    """Read a picture from a path, bytes, a PIL image or a NumPy array, downscaled if huge.

    source: str/Path to a PNG/JPEG/... file, the file's bytes, a PIL.Image, or an array of
        shape (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 0..255 or float in [0, 1].
    name: what to call the source in messages (default: the path, or "the image").
    Returns a PIL image whose longer side is at most MAX_SIDE, EXIF rotation applied.
    Raises UnreadableImage with a message naming the source and what was wrong.
    """
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _image_from_array(source, name or "the image")
    else:
        image = _image_from_file(source, name)
    return _downscale(image)


def _image_from_file(source, name: str | None) -> Image.Image:
    if isinstance(source, (bytes, bytearray, memoryview)):
        label, stream = name or "the uploaded data", io.BytesIO(source)
    elif isinstance(source, (str, Path)):
        label, stream = name or f"'{Path(source).name}'", source
    else:
        raise UnreadableImage(
            f"{name or 'the input'}: expected an image file, bytes or array, found {type(source).__name__}"
        )
    try:
        # DecompressionBombWarning is for unknown servers; a large photo is fine here because
        # it is downscaled at once (and the hard limit, DecompressionBombError, still holds).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
            # JPEG can decode at 1/2, 1/4 or 1/8 size directly: much faster for huge photos.
            image.draft(image.mode, (MAX_SIDE, MAX_SIDE))
            image.load()
    except FileNotFoundError:
        raise UnreadableImage(f"{label}: file not found") from None
    except Image.DecompressionBombError:
        raise UnreadableImage(
            f"{label}: the image is too large to open safely "
            f"(more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels)"
        ) from None
    except UnidentifiedImageError:
        raise UnreadableImage(
            f"{label}: not an image file we can read (expected PNG, JPEG or another common format)"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        # Pillow raises these for truncated or damaged files.
        raise UnreadableImage(f"{label}: the image file is damaged ({error})") from None
    return ImageOps.exif_transpose(image)


def _image_from_array(array: np.ndarray, name: str) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise UnreadableImage(
            f"{name}: expected an array of shape (H, W), (H, W, 3) or (H, W, 4), found {array.shape}"
        )
    if min(array.shape[:2]) == 0:
        raise UnreadableImage(f"{name}: the image has no pixels (shape {array.shape})")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
            raise UnreadableImage(f"{name}: expected finite numbers, found dtype {array.dtype}")
        # Floats are taken as 0..1, other integer types as 0..255 (what image libraries use).
        scale = 255.0 if np.issubdtype(array.dtype, np.floating) else 1.0
        array = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def _downscale(image: Image.Image) -> Image.Image:
    if max(image.size) <= MAX_SIDE:
        return image
    image = image.copy()
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BOX)
    return image


def ink_map(image: Image.Image) -> np.ndarray:
    """How much ink each pixel holds: float32 (H, W) in [0, 1], 1 at the strongest ink.

    From the alpha channel when the picture is (partly) transparent, as a canvas with strokes
    on a transparent background is; else from the inverted grey level (dark ink on light
    paper), or the grey level itself when the background is dark (light ink on a dark ground,
    as the dataset's own images). The background level (the median: most of a digit's picture
    is background) is subtracted so grey paper counts as no ink, and the result is stretched so
    faint pencil reaches full strength like the dataset's ink.
    Raises EmptyDrawing when there is no ink.
    """
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[:, :, 3]
        if alpha.min() < 255:
            return _normalise(alpha.astype(np.float32) / 255)
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255
    return _normalise(1 - grey if np.median(grey) >= 0.5 else grey)


def _normalise(ink: np.ndarray) -> np.ndarray:
    ink = ink - np.median(ink)
    strongest = float(ink.max())
    if strongest < EMPTY_LEVEL:
        raise EmptyDrawing("Draw a digit")
    return np.clip(ink / strongest, 0, 1).astype(np.float32)


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding every pixel with ink above INK_THRESHOLD: (h, w) float32.

    ink: float32 (H, W) in [0, 1]. Raises EmptyDrawing when no pixel is above the threshold.
    """
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        raise EmptyDrawing("Draw a digit")
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fit_to_box(ink: np.ndarray, box: int = DIGIT_BOX) -> np.ndarray:
    """Scale so that the longer side is `box` pixels, keeping the aspect ratio.

    ink: float32 (h, w). Returns float32 (box, w') or (h', box) in [0, 1]; the shorter side is
    at least 1 pixel (a single vertical stroke stays a thin line, not a square).
    """
    height, width = ink.shape
    factor = box / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))  # PIL: (w, h)
    # Pillow's LANCZOS filter widens with the scale factor, so a big crop is properly
    # averaged (anti-aliased), as the dataset's grey stroke edges are.
    resized = Image.fromarray(ink).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)


def centre_in_frame(digit: np.ndarray, side: int = IMAGE_SIDE) -> np.ndarray:
    """Pad to side x side, then shift by whole pixels so the centre of mass lands at the centre.

    digit: float32 (h, w) with h, w <= side. Returns float32 (side, side) in [0, 1].
    """
    height, width = digit.shape
    frame = np.zeros((side, side), dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    frame[top : top + height, left : left + width] = digit
    row, col = ndimage.center_of_mass(frame)
    # The dataset's centres of mass (pixel-index coordinates) have row and column means 14.01
    # and 13.98 with a uniform spread of +-0.5: side / 2 reached by whole-pixel shifts.
    offset = (round(side / 2 - row), round(side / 2 - col))
    # order=0 with whole-pixel offsets moves pixels without blurring them.
    return ndimage.shift(frame, offset, order=0, mode="constant", cval=0.0)


def prepare_digit(source, name: str | None = None) -> np.ndarray:
    """A drawing or picture of one digit -> uint8 (28, 28), 0 = background, 255 = ink.

    source: anything open_image accepts (path, bytes, PIL image, array). This is the image the
    dataset would hold for that digit; the model's saved preprocessing comes after.
    Raises EmptyDrawing ("Draw a digit") or UnreadableImage (a message naming the source).
    """
    ink = crop_to_ink(ink_map(open_image(source, name)))
    frame = centre_in_frame(fit_to_box(ink))
    return np.rint(frame * 255).astype(np.uint8)

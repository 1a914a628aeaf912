"""Where the course's code finds Kannada-MNIST: the real data when it is on this machine, else a
small synthetic stand-in written in the dataset's own IDX layout, so every chapter still runs.

The chapters call `data_dir()` and then the real loader, `kannada.data.load_dataset`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from kannada.augment import Augmenter
from kannada.data import default_cache_dir
from kannada.data.layout import IDX_FILES, ROWS_PER_WRITER

DOCS_DIR = Path(__file__).resolve().parent
REPO_ROOT = DOCS_DIR.parent
SYNTHETIC_VERSION = 2  # bump when the stand-in changes, so an old cached copy is not reused


def real_data_dir() -> Path | None:
    """The real Kannada-MNIST folder, or None when this machine has none.

    Looked for, in order: $KANNADA_MNIST_SHARED, ../shared/data/kannada-mnist next to the
    repository (the development copy), and the downloader's cache (`python -m kannada.data
    download`). In the development copy the IDX files in original/ are preferred: they load
    in half a second, where the Kaggle CSVs take several seconds. Setting
    KANNADA_COURSE_DATA=synthetic pretends there is none (to try the stand-in).
    """
    if os.environ.get("KANNADA_COURSE_DATA") == "synthetic":
        return None
    candidates = [
        os.environ.get("KANNADA_MNIST_SHARED"),
        REPO_ROOT.parent / "shared" / "data" / "kannada-mnist",
        default_cache_dir(),
    ]
    for candidate in candidates:
        if not candidate or not Path(candidate).is_dir():
            continue
        folder = Path(candidate)
        if (folder / "original").is_dir():
            return folder / "original"
        if any(folder.glob("*train*")) or any(folder.glob("*/*train*")):
            return folder
    return None


def data_dir() -> Path:
    """The folder the chapters read: the real data, or the synthetic stand-in (with a note)."""
    real = real_data_dir()
    if real is not None:
        return real
    print(
        "Kannada-MNIST not found on this machine: using a synthetic stand-in (see docs/course.py)"
    )
    return synthetic_data_dir()


def synthetic_data_dir() -> Path:
    """A folder with made-up digits in the release's IDX layout (created once, then reused).

    3 "writers" of train (3 x 1,280 rows) and 1 of Dig-MNIST, labels cycling 0-9 through each
    page as in the real files. The digits are ten random pen strokes, one per class, randomly
    rotated, sheared, zoomed and shifted: learnable, but not Kannada.
    """
    folder = Path(tempfile.gettempdir()) / f"kannada-course-synthetic-v{SYNTHETIC_VERSION}"
    if (folder / "done").is_file():
        return folder
    work = Path(tempfile.mkdtemp(prefix=".kannada-course-", dir=tempfile.gettempdir()))
    for split, writers, seed in (("train", 3, 1), ("dig", 1, 2)):
        images, labels = synthetic_digits(writers * ROWS_PER_WRITER, seed)
        image_name, label_name = IDX_FILES[split]
        write_idx(work / image_name, images)
        write_idx(work / label_name, labels.astype(np.uint8))
    (work / "done").write_text("synthetic stand-in for Kannada-MNIST\n")
    try:
        work.rename(folder)
    except OSError:  # another process made it first: use theirs
        pass
    return folder


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n made-up digits: images uint8 (n, 28, 28), 0 = background, labels int64 (n,) = i % 10."""
    templates = stroke_templates()  # (10, 28, 28) float32 in [0, 1]
    labels = np.arange(n, dtype=np.int64) % 10
    augmenter = Augmenter(
        rotation_range=15,
        zoom_range=0.15,
        width_shift_range=0.08,
        height_shift_range=0.08,
        shear_range=15,
        fill_mode="constant",
    )
    images = augmenter(templates[labels], np.random.default_rng(seed))
    return np.rint(np.clip(images, 0, 1) * 255).astype(np.uint8), labels


def stroke_templates() -> np.ndarray:
    """Ten fixed pen strokes, one per class: float32 (10, 28, 28) in [0, 1]."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(2024)
    templates = np.zeros((10, 28, 28), dtype=np.float32)
    for k in range(10):
        canvas = Image.new("L", (112, 112), 0)  # drawn at 4x, then shrunk: smooth edges
        points = rng.uniform(20, 92, size=(5, 2))
        # Chaikin's corner cutting, three times: a smooth curve near the random points.
        for _ in range(3):
            near = 0.75 * points[:-1] + 0.25 * points[1:]
            far = 0.25 * points[:-1] + 0.75 * points[1:]
            cut = np.column_stack([near, far]).reshape(-1, 2)
            points = np.vstack([points[:1], cut, points[-1:]])
        ImageDraw.Draw(canvas).line([tuple(p) for p in points], fill=255, width=9, joint="curve")
        small = canvas.filter(ImageFilter.GaussianBlur(1.5)).resize((28, 28), Image.LANCZOS)
        templates[k] = np.asarray(small, dtype=np.float32) / 255
    return np.clip(templates / templates.max(axis=(1, 2), keepdims=True), 0, 1)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array (N,) or (N, 28, 28) as an MNIST IDX file (magic 0x0801 / 0x0803)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())

"""Predict Kannada digits with a trained model: `python -m kannada.predict --model M --input F`.

F is what users have: a Kaggle CSV (with or without its id or label column), an IDX images
file, a .npz or .npy array of 28x28 images, or pictures of digits (PNG, JPEG: one file or a
folder of them), prepared exactly as the demo prepares a drawing.
Also the two functions the demo and the other commands reuse: load_model and predict_images.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import minicnn
from kannada.calibration import softmax
from kannada.cli import (
    RunError,
    add_backend_argument,
    add_model_argument,
    check_output_file,
    choose_backend,
    existing_file,
    run_command,
    run_fast,
)
from kannada.data import DataFormatError, read_csv_split, read_idx, read_npz
from kannada.data.readers import IDX_IMAGES_MAGIC, is_gzip
from kannada.digits import IMAGE_SIDE, INPUT_SHAPE
from kannada.drawing import DrawingError, EmptyDrawing, prepare_digit
from kannada.preprocess import Preprocessing
from kannada.report import accuracy, write_submission_csv
from minicnn.files import atomic_write

PROG = "python -m kannada.predict"
# Pictures are recognised by their first bytes; a folder's pictures by their names.
PICTURE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
NPY_SIGNATURE = b"\x93NUMPY"


def load_model(path: str | Path) -> tuple[minicnn.Sequential, Preprocessing]:
    """Load a model saved by kannada.train and the preprocessing stored with it; the model runs
    on the CPU engine with the NumPy backend (kannada.cli.run_fast).

    Raises minicnn.ModelFileError when the file is missing, damaged or not a kannada model.
    """
    model = run_fast(minicnn.load(path))
    try:
        preprocessing = Preprocessing.from_metadata(model.metadata, source=str(path))
    except ValueError as error:
        raise minicnn.ModelFileError(str(error)) from error
    return model, preprocessing


def predict_images(
    model: minicnn.Sequential, preprocessing: Preprocessing, images, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Classify digits with exactly the preprocessing the model was trained with, and the
    calibrated confidence: the softmax of the logits divided by the model's temperature
    (kannada.calibration; 1 for a model file without one).

    images: uint8 (N, 28, 28) in 0..255 (as read from the data files), float (N, 1, 28, 28)
    in [0, 1], or one (28, 28) image. Returns (labels int64 (N,), probabilities float32 (N, 10)).
    """
    probs = probabilities(model, predict_logits(model, preprocessing, images, batch_size))
    return probs.argmax(axis=1).astype(np.int64), probs


def predict_logits(
    model: minicnn.Sequential, preprocessing: Preprocessing, images, batch_size: int = 256
) -> np.ndarray:
    """The network's logits (N, 10) for images as predict_images takes them."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    return model.predict_logits(preprocessing(images), batch_size=batch_size)


def probabilities(model: minicnn.Sequential, logits: np.ndarray) -> np.ndarray:
    """The calibrated confidence for the model's logits (N, 10): float32 (N, 10), the softmax
    of the logits divided by the model's temperature."""
    return softmax(logits, temperature(model)).astype(np.float32)


def temperature(model: minicnn.Sequential) -> float:
    """The temperature stored in the model file by kannada.train (1.0 when there is none)."""
    return float(model.metadata.get("temperature", 1.0))


def read_images_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read the images of one file: a Kaggle CSV (id or label column, or the pixels alone),
    IDX images, a .npz or a .npy.

    The format is recognised from the content, not the name. Returns (images: uint8
    (N, 28, 28), or float32 (N, 1, 28, 28) in [0, 1] from a float .npy; ids int64 (N,) or
    None; labels int64 (N,) or None). Raises DataFormatError for anything else.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return read_npz(path, "images"), None, None
    with open(path, "rb") as file:
        if file.read(len(NPY_SIGNATURE)) == NPY_SIGNATURE:
            return read_npy(path), None, None
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as file:
            start = file.read(4)
    except (OSError, EOFError) as error:  # a damaged gzip stream
        raise DataFormatError(f"{path.name}: cannot be read ({error})") from error
    if start == IDX_IMAGES_MAGIC.to_bytes(4, "big"):
        return read_idx(path, "images"), None, None
    if start[:2] == b"\x00\x00":  # an IDX magic number, but not uint8 images
        raise DataFormatError(
            f"{path.name}: an IDX file that does not hold images (magic 0x{start.hex().upper()}); "
            "expected the X_...-idx3-ubyte file"
        )
    split = read_csv_split(path)
    return split.images, split.ids, split.labels


def read_npy(path: str | Path) -> np.ndarray:
    """Images from a .npy file: (N, 28, 28), (N, 1, 28, 28) or one (28, 28) image, either
    whole numbers in 0-255 (returned as uint8 (N, 28, 28)) or floats in [0, 1] (returned as
    float32 (N, 1, 28, 28)). Raises DataFormatError saying what the file holds instead.
    """
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        # numpy's own message would suggest allow_pickle: never load pickles from a file
        raise DataFormatError(
            f"{path.name}: not a readable .npy array of numbers (damaged, or it holds Python "
            "objects)"
        ) from None
    side = IMAGE_SIDE
    if array.shape == (side, side):
        array = array[None]
    if array.ndim == 4 and array.shape[1:] == INPUT_SHAPE:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1:] != (side, side) or len(array) == 0:
        raise DataFormatError(
            f"{path.name}: expected images of shape (N, {side}, {side}), (N, 1, {side}, {side}) "
            f"or ({side}, {side}), found {array.shape}"
        )
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise DataFormatError(
                f"{path.name}: expected pixels in 0-255, found values from {low} to {high}"
            )
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.floating):
        raise DataFormatError(f"{path.name}: expected numbers, found dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise DataFormatError(f"{path.name}: expected finite pixel values, found NaN or infinity")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise DataFormatError(
            f"{path.name}: expected float pixels in [0, 1] (or whole numbers 0-255 as uint8), "
            f"found values from {low:g} to {high:g}"
        )
    return array.astype(np.float32)[:, None]


def is_picture(path: Path) -> bool:
    """True when the file starts like a PNG or JPEG picture."""
    with open(path, "rb") as file:
        start = file.read(8)
    return start.startswith(PICTURE_SIGNATURES)


def pictures_in(folder: Path) -> list[Path]:
    """The PNG and JPEG files of a folder (by name, case-insensitive), sorted by name."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in PICTURE_SUFFIXES
    )


def read_pictures(paths: Sequence[Path]) -> list[tuple[str, np.ndarray | None, str | None]]:
    """Each picture prepared as the demo prepares a drawing (kannada.drawing.prepare_digit).

    Returns (file name, uint8 (28, 28) digit or None, None or why it could not be read) for
    every path, in order.
    """
    read = []
    for path in paths:
        try:
            read.append((path.name, prepare_digit(path, f"'{path.name}'"), None))
        except EmptyDrawing:
            read.append((path.name, None, f"'{path.name}': no digit found (the picture is blank)"))
        except DrawingError as error:
            read.append((path.name, None, str(error)))
    return read


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default: sys.argv[1:]); return the exit status."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Predict the digits in a data file (writing a Kaggle-style id,label CSV) "
        "or in pictures of digits (printing each one's label and confidence).",
    )
    add_model_argument(parser)
    parser.add_argument(
        "--input",
        required=True,
        metavar="PATH",
        help="a Kaggle CSV (with an id or label column, or the pixels alone; plain or .gz), an "
        "IDX images file (X_...-idx3-ubyte[.gz]), a .npz or .npy of 28x28 images, or "
        "pictures of digits: a PNG or JPEG file, or a folder of them",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="where to write the predictions: id,label for a data file (default "
        "submission.csv; ids from the file's id column, else 0..N-1); file,label,confidence "
        "for pictures (default: printed only)",
    )
    add_backend_argument(parser)
    args = parser.parse_args(argv)
    model_path = existing_file(parser, args.model, "--model")
    input_path = Path(args.input).expanduser()
    if not input_path.exists():
        parser.error(f"--input {args.input}: no such file or folder")
    written: list[Path] = []

    def job() -> int:
        pictures = input_path.is_dir() or is_picture(input_path)
        output = args.output if args.output or pictures else "submission.csv"
        output_path = check_output_file(output, "--output") if output else None
        choose_backend(args.backend)
        model, preprocessing = load_model(model_path)
        if pictures:
            return _predict_pictures(model, preprocessing, input_path, output_path, written)
        return _predict_file(model, preprocessing, input_path, output_path, written)

    return run_command(
        PROG, job, lambda: f"{written[0]} is written" if written else "nothing was written"
    )


def _predict_file(model, preprocessing, path: Path, output: Path, written: list[Path]) -> int:
    """Predict every image of a data file and write id,label to output."""
    images, ids, labels = read_images_file(path)
    predicted, _ = predict_images(model, preprocessing, images)
    if ids is None:
        ids = np.arange(len(images), dtype=np.int64)
    written.append(write_submission_csv(ids, predicted, output))
    print(f"predicted {len(images)} images from {path}")
    if labels is not None:
        print(f"the file has labels: accuracy {accuracy(labels, predicted):.4f}")
    print(f"wrote {output}")
    return 0


def _predict_pictures(
    model, preprocessing, path: Path, output: Path | None, written: list[Path]
) -> int:
    """Print each picture's label and confidence (and write them to output when given).

    Exit status 1 when a picture could not be read (the others are still predicted)."""
    paths = pictures_in(path) if path.is_dir() else [path]
    if not paths:
        raise RunError(f"--input {path}: no PNG or JPEG pictures in this folder")
    read = read_pictures(paths)
    digits = [digit for _, digit, _ in read if digit is not None]
    if digits:
        labels, probs = predict_images(model, preprocessing, np.stack(digits))
    rows, k = [], 0
    for name, digit, problem in read:
        if digit is None:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
            continue
        label, confidence = int(labels[k]), float(probs[k, labels[k]])
        k += 1
        rows.append((name, label, f"{confidence:.4f}"))
        print(f"{name}: {label} ({confidence:.1%})")
    if output is not None:
        with atomic_write(output, newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerows([("file", "label", "confidence"), *rows])
        written.append(output)
        print(f"wrote {output}")
    return 0 if len(digits) == len(read) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Predict Kannada digits with a trained model: `python -m kannada.predict --model M --input F`.

Also the two functions the demo and the other commands reuse: load_model and predict_images.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import minicnn
from kannada.cli import (
    USER_ERRORS,
    add_backend_argument,
    add_model_argument,
    choose_backend,
    existing_file,
    report_error,
    run_fast,
)
from kannada.data import DataFormatError, read_csv_split, read_idx, read_npz
from kannada.data.readers import IDX_IMAGES_MAGIC, is_gzip
from kannada.preprocess import Preprocessing
from kannada.report import accuracy, write_submission_csv

PROG = "python -m kannada.predict"


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
    """Classify digits with exactly the preprocessing the model was trained with.

    images: uint8 (N, 28, 28) in 0..255 (as read from the data files), float (N, 1, 28, 28)
    in [0, 1], or one (28, 28) image. Returns (labels int64 (N,), probabilities float32 (N, 10)).
    """
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    probs = model.predict(preprocessing(images), batch_size=batch_size)
    return probs.argmax(axis=1).astype(np.int64), probs


def read_images_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read the images of one file: a Kaggle CSV (id or label column), IDX images or a .npz.

    The format is recognised from the content, not the name. Returns (images uint8 (N, 28, 28),
    ids int64 (N,) or None, labels int64 (N,) or None). Raises DataFormatError for anything else.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return read_npz(path, "images"), None, None
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default: sys.argv[1:]); return the exit status."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Predict the digits in a file and write a Kaggle-style id,label CSV.",
    )
    add_model_argument(parser)
    parser.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help="images: a Kaggle CSV (id or label column, plain or .gz), an IDX images file "
        "(X_...-idx3-ubyte[.gz]) or a one-array .npz",
    )
    parser.add_argument(
        "--output",
        default="submission.csv",
        metavar="FILE",
        help="where to write id,label (default: submission.csv); ids come from the file's "
        "id column, or are 0..N-1 when it has none",
    )
    add_backend_argument(parser)
    args = parser.parse_args(argv)
    model_path = existing_file(parser, args.model, "--model")
    input_path = existing_file(parser, args.input, "--input")

    try:
        choose_backend(args.backend)
        model, preprocessing = load_model(model_path)
        images, ids, labels = read_images_file(input_path)
        predicted, _ = predict_images(model, preprocessing, images)
        if ids is None:
            ids = np.arange(len(images), dtype=np.int64)
        output = write_submission_csv(ids, predicted, args.output)
    except USER_ERRORS as error:
        return report_error(PROG, error)
    print(f"predicted {len(images)} images from {input_path}")
    if labels is not None:
        print(f"the file has labels: accuracy {accuracy(labels, predicted):.4f}")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

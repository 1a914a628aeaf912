"""Readers for the three Kannada-MNIST file formats: Kaggle CSV, MNIST IDX and NumPy .npz.

Every reader validates strictly and raises DataFormatError naming the file, the row or field,
and what was expected versus found; every reader accepts gzip-compressed or plain files.
"""

from __future__ import annotations

import gzip
import itertools
import math
import re
import signal
import threading
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from kannada.digits import IMAGE_SIDE, NUM_CLASSES

N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
PIXEL_COLUMNS = tuple(f"pixel{i}" for i in range(N_PIXELS))

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)
_IDX_MAGIC_KIND = {IDX_IMAGES_MAGIC: "images", IDX_LABELS_MAGIC: "labels"}

# Errors the decompressors raise on a cut-off or damaged file.
_BROKEN_STREAM_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


class DataFormatError(ValueError):
    """A data file does not have the layout or values we expect (the message says where)."""


@dataclass(frozen=True, eq=False)
class Split:
    """One part of the dataset (train, Dig-MNIST or test), already validated.

    images: uint8 (N, 28, 28), 0 = background, 255 = ink.
    labels: int64 (N,) with values 0-9, or None when the file has no labels (Kaggle test).
    ids: int64 (N,) row ids from a Kaggle test file (needed for a submission), or None.
    source: the file(s) the split was read from, for messages.
    """

    images: np.ndarray
    labels: np.ndarray | None
    ids: np.ndarray | None
    source: str

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            raise DataFormatError(
                f"{self.source}: expected uint8 images of shape (N, {IMAGE_SIDE}, {IMAGE_SIDE}), "
                f"found {self.images.dtype} {self.images.shape}"
            )
        for name, values in (("labels", self.labels), ("ids", self.ids)):
            if values is not None and len(values) != len(self.images):
                raise DataFormatError(
                    f"{self.source}: expected one {name[:-1]} per image, "
                    f"found {len(self.images)} images and {len(values)} {name}"
                )

    def __len__(self) -> int:
        return len(self.images)


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its name says)."""
    with open(path, "rb") as file:
        return file.read(2) == b"\x1f\x8b"


def _open_text(path: Path):
    """Open a plain or gzip-compressed text file for reading."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _broken_stream(path: Path, error: Exception) -> DataFormatError:
    return DataFormatError(
        f"{path.name}: the gzip data is truncated or corrupt ({error}); "
        "the file is probably an incomplete download - get it again"
    )


# ---------------------------------------------------------------- Kaggle CSV


def read_csv_split(path: str | Path) -> Split:
    """Read a Kaggle-layout CSV (plain or .csv.gz) into a Split.

    The header must be `label,pixel0,...,pixel783` (train.csv, Dig-MNIST.csv),
    `id,pixel0,...,pixel783` (test.csv) or the pixel columns alone. Returns images uint8
    (N, 28, 28) with labels int64 (N,) in 0-9, or ids int64 (N,), or neither.
    """
    path = Path(path)
    try:
        first_column = _check_header(path)
        frame = _read_frame(path)
    except _BROKEN_STREAM_ERRORS as error:
        raise _broken_stream(path, error) from error
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path.name}: not a UTF-8 text CSV file ({error})") from error
    if len(frame) == 0:
        raise DataFormatError(f"{path.name}: expected at least one data row after the header")

    first, pixels, bad = _checked_columns(frame, first_column)
    bad_rows = np.flatnonzero(bad)
    if len(bad_rows):
        line_number = int(bad_rows[0]) + 2  # 1-based, and the header is line 1
        raise _describe_bad_line(path, line_number, first_column)

    images = pixels.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    labels = first if first_column == "label" else None
    ids = first if first_column == "id" else None
    return Split(images=images, labels=labels, ids=ids, source=str(path))


# The highest value the first column may hold (None: no limit), by the column's name.
_FIRST_COLUMN_HIGHEST = {"label": NUM_CLASSES - 1, "id": None}


def _check_header(path: Path) -> str | None:
    """Check line 1 and return the name of the first column ('label' or 'id'), or None when
    the file has only the pixel columns."""
    with _open_text(path) as file:
        header = file.readline()
    header = header.removeprefix("\ufeff").rstrip("\r\n")
    if not header:
        raise DataFormatError(f"{path.name} line 1: expected a header row, found an empty line")
    names = header.split(",")
    if len(names) == N_PIXELS and names[0] == PIXEL_COLUMNS[0]:
        first_column, pixel_names = None, names
    elif len(names) == 1 + N_PIXELS:
        first_column, pixel_names = names[0], names[1:]
    else:
        found = f"{len(names)}" + (
            f" (the first is {names[0]!r})" if len(names) == N_PIXELS else ""
        )
        raise DataFormatError(
            f"{path.name} line 1 (header): expected {1 + N_PIXELS} columns (label or id, then "
            f"pixel0..pixel{N_PIXELS - 1}) or {N_PIXELS} (the pixels alone), found {found}"
        )
    if first_column is not None and first_column not in _FIRST_COLUMN_HIGHEST:
        raise DataFormatError(
            f"{path.name} line 1 (header): column 1 must be 'label' or 'id', found {names[0]!r}"
        )
    start = len(names) - N_PIXELS + 1  # the 1-based position of pixel0
    pairs = zip(pixel_names, PIXEL_COLUMNS, strict=True)
    for position, (found, expected) in enumerate(pairs, start=start):
        if found != expected:
            raise DataFormatError(
                f"{path.name} line 1 (header): column {position} must be {expected!r}, "
                f"found {found!r}"
            )
    return first_column


_TOO_MANY_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_frame(path: Path) -> pd.DataFrame:
    """Parse the whole file with pandas' C parser; row r of the frame is file line r + 2.

    Our own checks follow, so pandas' warnings (e.g. DtypeWarning for a column with text in
    it) are not shown: the error message that follows says exactly what is wrong.
    """
    try:
        with _interrupts_noted() as interrupted, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.read_csv(
                path,
                compression="gzip" if is_gzip(path) else None,
                header=0,
                engine="c",
                # Keep blank lines as rows and quotes as plain characters, so that frame rows
                # map one-to-one onto file lines and error messages can give exact line numbers.
                skip_blank_lines=False,
                quoting=3,  # csv.QUOTE_NONE
                keep_default_na=False,
                na_values=[""],
                encoding="utf-8",
            )
    except pd.errors.ParserError as error:
        if interrupted:
            raise KeyboardInterrupt from None
        match = _TOO_MANY_FIELDS.search(str(error))
        if match is None:
            raise DataFormatError(f"{path.name}: not a readable CSV file ({error})") from error
        expected, line, found = match.groups()
        raise DataFormatError(
            f"{path.name} line {line}: expected {expected} columns, found {found}"
        ) from error


@contextmanager
def _interrupts_noted() -> Iterator[list[int]]:
    """Note every Ctrl-C (SIGINT) in the list yielded, and raise KeyboardInterrupt as usual.

    pandas' C parser turns an exception raised while it reads the file (where a Ctrl-C lands
    most of the time) into a ParserError ("Calling read(nbytes) on source failed"): the list
    tells that error from a damaged file. Only where Python's own handler is in place (the
    main thread); the previous handler comes back afterwards.
    """
    noted: list[int] = []
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield noted
        return

    def note(signum, frame):
        noted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, note)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _checked_columns(
    frame: pd.DataFrame, first_column: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check every cell, column by column; return (first column, pixels, bad-row mask).

    first_column: 'label', 'id' or None (the frame has only the pixel columns).
    first is int64 (N,) (zeros without a first column), pixels uint8 (N, 784), bad bool (N,)
    marks rows with a missing, non-numeric, fractional or out-of-range cell (first and pixels
    are only valid where bad is all False). Working per column avoids copying the whole
    frame into one array.
    """
    n_rows = len(frame)
    n_first = 0 if first_column is None else 1
    first = np.zeros(n_rows, dtype=np.int64)
    pixels = np.zeros((n_rows, N_PIXELS), dtype=np.uint8)
    bad = np.zeros(n_rows, dtype=bool)
    for position, column in enumerate(frame.columns):
        is_first = position < n_first
        high = _FIRST_COLUMN_HIGHEST[first_column] if is_first else 255
        series = frame[column]
        if series.dtype == np.int64:  # the usual case: the C parser found only integers
            values = series.to_numpy()
            column_bad = values < 0
        else:  # text, gaps or decimals somewhere in this column: text becomes NaN
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
            with np.errstate(invalid="ignore"):
                column_bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0)
        if high is not None:
            column_bad |= values > high
        if column_bad.any():
            bad |= column_bad
        elif is_first:
            first[:] = values
        else:
            pixels[:, position - n_first] = values
    return first, pixels, bad


def _describe_bad_line(path: Path, line_number: int, first_column: str | None) -> DataFormatError:
    """Re-read one raw line and say exactly what is wrong with it."""
    with _open_text(path) as file:
        line = next(itertools.islice(file, line_number - 1, None), "")
    fields = line.rstrip("\r\n").split(",")
    names = PIXEL_COLUMNS if first_column is None else (first_column, *PIXEL_COLUMNS)
    where = f"{path.name} line {line_number}"
    if fields == [""]:
        return DataFormatError(f"{where}: expected {len(names)} columns, found an empty line")
    if len(fields) != len(names):
        return DataFormatError(f"{where}: expected {len(names)} columns, found {len(fields)}")
    for name, text in zip(names, fields, strict=True):
        high = _FIRST_COLUMN_HIGHEST[name] if name == first_column else 255
        expected = f"a whole number {_range_text(high)}"
        if not text.strip():
            return DataFormatError(
                f"{where}, field {name}: expected {expected}, found an empty cell"
            )
        try:
            number = float(text)
        except ValueError:
            return DataFormatError(f"{where}, field {name}: expected {expected}, found {text!r}")
        if not number.is_integer() or number < 0 or (high is not None and number > high):
            return DataFormatError(f"{where}, field {name}: expected {expected}, found {text!r}")
    return DataFormatError(f"{where}: this row could not be read as {len(names)} whole numbers")


def _range_text(high: int | None) -> str:
    return f"in 0-{high}" if high is not None else ">= 0"


# ---------------------------------------------------------------- MNIST IDX


def read_idx(path: str | Path, kind: Literal["images", "labels"] | None = None) -> np.ndarray:
    """Read an MNIST IDX file (plain or .gz): images uint8 (N, 28, 28) or labels int64 (N,).

    kind says which one the caller wants ('images': magic 0x00000803, 'labels': magic
    0x00000801); None accepts either and tells them apart by the magic number.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            data = raw.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except _BROKEN_STREAM_ERRORS as error:
        raise _broken_stream(path, error) from error

    if len(data) < 4:
        raise DataFormatError(
            f"{path.name}: expected an IDX header of at least 4 bytes, found {len(data)} bytes"
        )
    magic = int.from_bytes(data[:4], "big")
    allowed = {m: k for m, k in _IDX_MAGIC_KIND.items() if kind is None or k == kind}
    if magic not in allowed:
        expected = " or ".join(f"0x{m:08X} (uint8 {k})" for m, k in allowed.items())
        raise DataFormatError(
            f"{path.name} bytes 0-3 (magic number): expected {expected}, found 0x{magic:08X}"
        )
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataFormatError(
            f"{path.name}: expected a {header_size}-byte header for {ndim} dimensions, "
            f"found only {len(data)} bytes (truncated file)"
        )
    dims = [int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4)]
    shape_text = " x ".join(map(str, dims))
    if ndim == 3 and dims[1:] != [IMAGE_SIDE, IMAGE_SIDE]:
        raise DataFormatError(
            f"{path.name} header (dimensions): expected N x {IMAGE_SIDE} x {IMAGE_SIDE} images, "
            f"found {shape_text}"
        )
    expected_size = math.prod(dims)  # Python ints: a junk header cannot overflow
    found_size = len(data) - header_size
    if found_size != expected_size:
        state = "truncated file" if found_size < expected_size else "extra bytes at the end"
        raise DataFormatError(
            f"{path.name}: the header promises {shape_text} = {expected_size} bytes of data, "
            f"found {found_size} ({state})"
        )
    values = np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)
    if ndim == 3:
        return values.copy()  # writable, and independent of the decompressed buffer
    return _checked_labels(values, f"{path.name} label", first_byte=header_size)


def _checked_labels(values: np.ndarray, where: str, first_byte: int | None = None) -> np.ndarray:
    """Labels as int64 (N,), after checking every one is in 0-9."""
    bad = np.flatnonzero((values < 0) | (values >= NUM_CLASSES))
    if len(bad):
        index = int(bad[0])
        offset = f", byte {first_byte + index}" if first_byte is not None else ""
        raise DataFormatError(
            f"{where} at index {index}{offset}: expected 0-{NUM_CLASSES - 1}, found {values[index]}"
        )
    return values.astype(np.int64)


# ---------------------------------------------------------------- NumPy .npz


def read_npz(path: str | Path, kind: Literal["images", "labels"]) -> np.ndarray:
    """Read a one-array .npz from the release: images uint8 (N, 28, 28) or labels int64 (N,).

    The array's key does not matter (the release uses 'arr_0'); pickled objects are refused.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if len(keys) != 1:
                raise DataFormatError(
                    f"{path.name}: expected exactly one array in the .npz, found {len(keys)} "
                    f"({', '.join(keys) or 'none'})"
                )
            values = archive[keys[0]]
    except DataFormatError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        # np.load reports damaged archives with many exception types; all mean the same here.
        raise DataFormatError(f"{path.name}: not a readable .npz file ({error})") from error

    where = f"{path.name} array '{keys[0]}'"
    if not np.issubdtype(values.dtype, np.integer):
        raise DataFormatError(f"{where}: expected an integer dtype, found {values.dtype}")
    if kind == "labels":
        if values.ndim != 1:
            raise DataFormatError(f"{where}: expected labels of shape (N,), found {values.shape}")
        return _checked_labels(values, where)

    if values.ndim != 3 or values.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataFormatError(
            f"{where}: expected images of shape (N, {IMAGE_SIDE}, {IMAGE_SIDE}), "
            f"found {values.shape}"
        )
    if values.size and (values.min() < 0 or values.max() > 255):
        low, high = values.min(), values.max()
        raise DataFormatError(f"{where}: expected pixel values 0-255, found {low} to {high}")
    return values.astype(np.uint8)

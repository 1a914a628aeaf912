"""Tests for kannada.data readers and layout detection: round trips, every error, properties.

Small files are written here by independent writers; the real dataset is used when present.
"""

from __future__ import annotations

import functools
import gzip
import io
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kannada.data import (
    DataFormatError,
    DataNotFoundError,
    Split,
    load_dataset,
    read_csv_split,
    read_idx,
    read_npz,
    writer_ids,
)

HEADER_PIXELS = ",".join(f"pixel{i}" for i in range(784))
PROPERTY_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# ------------------------------------------------------------------ writers (independent)


def csv_text(images: np.ndarray, first: np.ndarray, first_name: str = "label") -> str:
    """Kaggle-layout CSV text: header, then one row per image."""
    rows = [f"{first_name},{HEADER_PIXELS}"]
    for value, image in zip(first, images.reshape(len(images), -1), strict=True):
        rows.append(",".join(str(int(v)) for v in [value, *image]))
    return "\n".join(rows) + "\n"


def write_text(path: Path, text: str) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def idx_bytes(values: np.ndarray, magic: int | None = None) -> bytes:
    """IDX encoding: big-endian magic (0x08 = uint8, then ndim), big-endian dims, raw bytes."""
    magic = (0x0800 | values.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in values.shape)
    return header + values.astype(np.uint8).tobytes()


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def random_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def cycle_labels(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) % 10


def write_idx_set(folder: Path, n_train: int = 12, n_labels: int | None = None) -> None:
    """A small IDX layout with train, dig and test pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"kannada_MNIST_train": n_train, "dig_MNIST": 10, "kannada_MNIST_test": 7}
    for prefix, n in sizes.items():
        images_name = f"X_{prefix}-idx3-ubyte.gz"
        labels_name = f"y_{prefix}-idx1-ubyte.gz"
        write_bytes(folder / images_name, idx_bytes(random_images(n)))
        count = n if n_labels is None or prefix != "kannada_MNIST_train" else n_labels
        write_bytes(folder / labels_name, idx_bytes(cycle_labels(count)))


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", ["train.csv", "train.csv.gz"])
def test_csv_round_trip_with_labels(tmp_path, name):
    images, labels = random_images(5), np.array([3, 0, 9, 1, 7])
    split = read_csv_split(write_text(tmp_path / name, csv_text(images, labels)))
    assert split.images.dtype == np.uint8 and split.images.shape == (5, 28, 28)
    np.testing.assert_array_equal(split.images, images)
    assert split.labels.dtype == np.int64
    np.testing.assert_array_equal(split.labels, labels)
    assert split.ids is None
    assert split.source.endswith(name) and len(split) == 5


def test_csv_round_trip_with_ids(tmp_path):
    images, ids = random_images(4, seed=1), np.array([10, 11, 12, 13])
    split = read_csv_split(write_text(tmp_path / "test.csv.gz", csv_text(images, ids, "id")))
    np.testing.assert_array_equal(split.images, images)
    np.testing.assert_array_equal(split.ids, ids)
    assert split.labels is None and split.ids.dtype == np.int64


def test_csv_accepts_windows_line_endings(tmp_path):
    images, labels = random_images(2), np.array([1, 2])
    text = csv_text(images, labels).replace("\n", "\r\n")
    split = read_csv_split(write_text(tmp_path / "train.csv", text))
    np.testing.assert_array_equal(split.images, images)


@pytest.mark.parametrize("name", ["X-idx3-ubyte.gz", "X-idx3-ubyte"])
def test_idx_round_trip(tmp_path, name):
    images = random_images(6, seed=2)
    labels = np.array([0, 1, 2, 3, 9, 5])
    got_images = read_idx(write_bytes(tmp_path / name, idx_bytes(images)), "images")
    got_labels = read_idx(write_bytes(tmp_path / ("y" + name), idx_bytes(labels)), "labels")
    np.testing.assert_array_equal(got_images, images)
    assert got_images.dtype == np.uint8 and got_images.flags.writeable
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int64


def test_idx_kind_none_tells_images_from_labels(tmp_path):
    path = write_bytes(tmp_path / "a", idx_bytes(cycle_labels(4)))
    assert read_idx(path).shape == (4,)
    path = write_bytes(tmp_path / "b", idx_bytes(random_images(2)))
    assert read_idx(path).shape == (2, 28, 28)


def test_npz_round_trip_any_key_and_integer_dtype(tmp_path):
    images = random_images(3, seed=3)
    np.savez(tmp_path / "X.npz", images)  # key 'arr_0', as in the release
    np.savez_compressed(tmp_path / "y.npz", whatever=np.array([4, 5, 6], dtype=np.int32))
    np.testing.assert_array_equal(read_npz(tmp_path / "X.npz", "images"), images)
    labels = read_npz(tmp_path / "y.npz", "labels")
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [4, 5, 6])


# ------------------------------------------------------------------ CSV errors


def good_csv_lines(n: int = 4, first_name: str = "label") -> list[str]:
    return csv_text(random_images(n), cycle_labels(n), first_name).splitlines()


def write_lines(path: Path, lines: list[str]) -> Path:
    return write_text(path, "\n".join(lines) + "\n")


def replace_field(line: str, index: int, text: str) -> str:
    fields = line.split(",")
    fields[index] = text
    return ",".join(fields)


def csv_error(tmp_path: Path, lines: list[str], name: str = "train.csv") -> str:
    with pytest.raises(DataFormatError) as info:
        read_csv_split(write_lines(tmp_path / name, lines))
    return str(info.value)


def test_csv_row_with_too_few_columns(tmp_path):
    lines = good_csv_lines()
    lines[2] = lines[2].rsplit(",", 1)[0]  # drop the last pixel of file line 3
    assert csv_error(tmp_path, lines) == "train.csv line 3: expected 785 columns, found 784"


def test_csv_row_with_too_many_columns(tmp_path):
    lines = good_csv_lines()
    lines[4] += ",0"
    assert csv_error(tmp_path, lines) == "train.csv line 5: expected 785 columns, found 786"


def test_csv_blank_line_in_the_middle(tmp_path):
    lines = good_csv_lines()
    lines.insert(2, "")
    assert "train.csv line 3: expected 785 columns, found an empty line" in csv_error(
        tmp_path, lines
    )


def test_csv_header_with_wrong_column_count(tmp_path):
    lines = good_csv_lines()
    lines[0] = lines[0].rsplit(",", 1)[0]
    message = csv_error(tmp_path, lines)
    assert "train.csv line 1 (header)" in message and "expected 785 columns" in message
    assert "found 784" in message


def test_csv_header_with_wrong_pixel_name(tmp_path):
    lines = good_csv_lines()
    lines[0] = lines[0].replace("pixel5,", "pixel_5,")
    message = csv_error(tmp_path, lines)
    assert message == "train.csv line 1 (header): column 7 must be 'pixel5', found 'pixel_5'"


def test_csv_header_with_wrong_first_column(tmp_path):
    lines = good_csv_lines(first_name="digit")
    message = csv_error(tmp_path, lines)
    assert "column 1 must be 'label' or 'id', found 'digit'" in message


def test_csv_non_numeric_cell(tmp_path):
    lines = good_csv_lines()
    lines[3] = replace_field(lines[3], 11, "abc")  # field 11 is pixel10
    message = csv_error(tmp_path, lines)
    assert message == (
        "train.csv line 4, field pixel10: expected a whole number in 0-255, found 'abc'"
    )


@pytest.mark.parametrize("cell", ["", "NaN", "nan"])
def test_csv_missing_value(tmp_path, cell):
    lines = good_csv_lines()
    lines[2] = replace_field(lines[2], 100, cell)
    message = csv_error(tmp_path, lines)
    assert message.startswith("train.csv line 3, field pixel99: expected a whole number in 0-255")
    assert ("empty cell" in message) if cell == "" else (repr(cell) in message)


@pytest.mark.parametrize("cell", ["256", "-1", "1.5", "1e9"])
def test_csv_pixel_out_of_range_or_fractional(tmp_path, cell):
    lines = good_csv_lines()
    lines[4] = replace_field(lines[4], 784, cell)
    message = csv_error(tmp_path, lines)
    assert message == (
        f"train.csv line 5, field pixel783: expected a whole number in 0-255, found '{cell}'"
    )


@pytest.mark.parametrize("cell", ["10", "-3", "2.5"])
def test_csv_label_out_of_range(tmp_path, cell):
    lines = good_csv_lines()
    lines[1] = replace_field(lines[1], 0, cell)
    message = csv_error(tmp_path, lines, "Dig-MNIST.csv.gz")
    assert message == (
        f"Dig-MNIST.csv.gz line 2, field label: expected a whole number in 0-9, found '{cell}'"
    )


def test_csv_ids_may_be_any_whole_number_but_not_negative(tmp_path):
    lines = good_csv_lines(first_name="id")
    lines[1] = replace_field(lines[1], 0, "12345")
    assert read_csv_split(write_lines(tmp_path / "test.csv", lines)).ids[0] == 12345
    lines[2] = replace_field(lines[2], 0, "-1")
    message = csv_error(tmp_path, lines, "test.csv")
    assert message == "test.csv line 3, field id: expected a whole number >= 0, found '-1'"


def test_csv_whole_numbers_written_as_floats_are_accepted(tmp_path):
    lines = good_csv_lines(2)
    lines[1] = replace_field(lines[1], 1, "7.0")
    split = read_csv_split(write_lines(tmp_path / "train.csv", lines))
    assert split.images[0, 0, 0] == 7


def test_csv_header_only(tmp_path):
    message = csv_error(tmp_path, good_csv_lines()[:1])
    assert "train.csv: expected at least one data row" in message


def test_csv_empty_file(tmp_path):
    (tmp_path / "train.csv").write_bytes(b"")
    with pytest.raises(DataFormatError, match="train.csv line 1: expected a header row"):
        read_csv_split(tmp_path / "train.csv")


def test_csv_truncated_gzip(tmp_path):
    data = gzip.compress(csv_text(random_images(20), cycle_labels(20)).encode())
    path = tmp_path / "train.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"train.csv.gz: the gzip data is truncated"):
        read_csv_split(path)


def test_csv_read_interrupted_by_ctrl_c_is_an_interrupt_not_a_damaged_file(tmp_path, monkeypatch):
    """pandas' C parser turns an exception in its read callback into a ParserError; a Ctrl-C
    landing there (a real SIGINT, delivered during the third read) must stay a Ctrl-C."""
    path = write_text(tmp_path / "train.csv.gz", csv_text(random_images(200), cycle_labels(200)))
    real_read, calls = gzip.GzipFile.read, []

    def read(self, *args):
        calls.append(args)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)
        return real_read(self, *args)

    monkeypatch.setattr(gzip.GzipFile, "read", read)
    # Python's own Ctrl-C handler, even when pytest was started with SIGINT ignored (as a job
    # that a shell without job control started with `&`)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            read_csv_split(path)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(calls) >= 3


def test_csv_error_comes_without_pandas_warnings(tmp_path):
    # Text in the last of 3,000 rows: pandas' low-memory chunks disagree on the column's type
    # and it would print a DtypeWarning before our message.
    lines = good_csv_lines(3000)
    lines[-1] = replace_field(lines[-1], 5, "abc")
    path = write_lines(tmp_path / "train.csv", lines)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataFormatError, match="train.csv line 3001, field pixel4"):
            read_csv_split(path)
    assert caught == []


def test_csv_with_the_pixel_columns_alone(tmp_path):
    images = random_images(3, seed=4)
    text = csv_text(images, cycle_labels(3))
    pixels_only = "\n".join(line.split(",", 1)[1] for line in text.splitlines()) + "\n"
    split = read_csv_split(write_text(tmp_path / "test.csv", pixels_only))
    np.testing.assert_array_equal(split.images, images)
    assert split.labels is None and split.ids is None
    lines = pixels_only.splitlines()
    lines[2] = replace_field(lines[2], 783, "300")
    message = csv_error(tmp_path, lines, "test.csv")
    assert (
        message == "test.csv line 3, field pixel783: expected a whole number in 0-255, found '300'"
    )
    lines[2] += ",0"
    assert (
        csv_error(tmp_path, lines, "test.csv") == "test.csv line 3: expected 784 columns, found 785"
    )


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"label,\xff\xfe\n")
    with pytest.raises(DataFormatError, match="train.csv"):
        read_csv_split(path)


# ------------------------------------------------------------------ IDX errors


def idx_error(path: Path, data: bytes, kind: str | None) -> str:
    write_bytes(path, data)
    with pytest.raises(DataFormatError) as info:
        read_idx(path, kind)
    return str(info.value)


def test_idx_wrong_magic(tmp_path):
    message = idx_error(tmp_path / "X.gz", idx_bytes(random_images(2), magic=0x00000802), "images")
    assert message == (
        "X.gz bytes 0-3 (magic number): expected 0x00000803 (uint8 images), found 0x00000802"
    )


def test_idx_labels_where_images_expected(tmp_path):
    message = idx_error(tmp_path / "X", idx_bytes(cycle_labels(3)), "images")
    assert "expected 0x00000803 (uint8 images), found 0x00000801" in message


def test_idx_wrong_image_size(tmp_path):
    images = np.zeros((2, 27, 28), dtype=np.uint8)
    message = idx_error(tmp_path / "X.gz", idx_bytes(images), "images")
    assert message == "X.gz header (dimensions): expected N x 28 x 28 images, found 2 x 27 x 28"


def test_idx_truncated_data(tmp_path):
    data = idx_bytes(random_images(3))
    message = idx_error(tmp_path / "X", data[:-5], "images")
    assert message == (
        "X: the header promises 3 x 28 x 28 = 2352 bytes of data, found 2347 (truncated file)"
    )


def test_idx_truncated_header(tmp_path):
    message = idx_error(tmp_path / "X", idx_bytes(random_images(1))[:9], "images")
    assert "X: expected a 16-byte header for 3 dimensions, found only 9 bytes" in message


def test_idx_extra_bytes(tmp_path):
    message = idx_error(tmp_path / "y", idx_bytes(cycle_labels(4)) + b"\0", "labels")
    assert "found 5 (extra bytes at the end)" in message


def test_idx_label_out_of_range(tmp_path):
    labels = cycle_labels(12)
    labels[7] = 10
    message = idx_error(tmp_path / "y.gz", idx_bytes(labels), "labels")
    assert message == "y.gz label at index 7, byte 15: expected 0-9, found 10"


def test_idx_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(random_images(30)))
    path = tmp_path / "X.gz"
    path.write_bytes(data[:-20])
    with pytest.raises(DataFormatError, match="X.gz: the gzip data is truncated or corrupt"):
        read_idx(path, "images")


# ------------------------------------------------------------------ npz errors


def npz_error(path: Path, kind: str) -> str:
    with pytest.raises(DataFormatError) as info:
        read_npz(path, kind)
    return str(info.value)


def test_npz_two_arrays(tmp_path):
    np.savez(tmp_path / "X.npz", a=random_images(1), b=random_images(1))
    assert "X.npz: expected exactly one array in the .npz, found 2 (a, b)" in npz_error(
        tmp_path / "X.npz", "images"
    )


def test_npz_float_images(tmp_path):
    np.savez(tmp_path / "X.npz", random_images(2).astype(np.float32))
    message = npz_error(tmp_path / "X.npz", "images")
    assert message == "X.npz array 'arr_0': expected an integer dtype, found float32"


def test_npz_wrong_shape(tmp_path):
    np.savez(tmp_path / "X.npz", random_images(2).reshape(2, 784))
    message = npz_error(tmp_path / "X.npz", "images")
    assert message == "X.npz array 'arr_0': expected images of shape (N, 28, 28), found (2, 784)"


def test_npz_pixels_out_of_range(tmp_path):
    images = random_images(2).astype(np.int16)
    images[1, 3, 4] = 300
    np.savez(tmp_path / "X.npz", images)
    assert "X.npz array 'arr_0': expected pixel values 0-255" in npz_error(
        tmp_path / "X.npz", "images"
    )


def test_npz_label_out_of_range(tmp_path):
    np.savez(tmp_path / "y.npz", np.array([1, 2, -1]))
    message = npz_error(tmp_path / "y.npz", "labels")
    assert message == "y.npz array 'arr_0' at index 2: expected 0-9, found -1"


def test_npz_refuses_pickled_objects(tmp_path):
    np.savez(tmp_path / "y.npz", np.array([1, "a"], dtype=object))
    assert "y.npz: not a readable .npz file" in npz_error(tmp_path / "y.npz", "labels")


def test_npz_not_a_zip(tmp_path):
    (tmp_path / "y.npz").write_bytes(b"this is not a zip file")
    assert "y.npz: not a readable .npz file" in npz_error(tmp_path / "y.npz", "labels")


# ------------------------------------------------------------------ Split and layout


def test_split_refuses_mismatched_counts():
    with pytest.raises(DataFormatError, match="found 3 images and 2 labels"):
        Split(random_images(3), np.array([1, 2]), None, "somewhere")


def test_layout_mismatched_train_counts(tmp_path):
    write_idx_set(tmp_path, n_train=12, n_labels=11)
    with pytest.raises(DataFormatError) as info:
        load_dataset(tmp_path)
    message = str(info.value)
    assert "X_kannada_MNIST_train-idx3-ubyte.gz + y_kannada_MNIST_train-idx1-ubyte.gz" in message
    assert "found 12 images and 11 labels" in message


def test_layout_idx(tmp_path):
    write_idx_set(tmp_path)
    dataset = load_dataset(tmp_path)
    assert dataset.layout == "idx" and dataset.folder == tmp_path
    assert [len(s) for s in (dataset.train, dataset.dig, dataset.test)] == [12, 10, 7]
    np.testing.assert_array_equal(dataset.test.labels, cycle_labels(7))
    assert list(dataset.splits()) == ["train", "dig", "test"]


def test_layout_kaggle_csv_plain(tmp_path):
    write_text(tmp_path / "train.csv", csv_text(random_images(3), cycle_labels(3)))
    write_text(tmp_path / "test.csv", csv_text(random_images(2), np.array([0, 1]), "id"))
    dataset = load_dataset(tmp_path)
    assert dataset.layout == "kaggle-csv" and dataset.dig is None
    assert len(dataset.train) == 3 and dataset.test.labels is None
    np.testing.assert_array_equal(dataset.test.ids, [0, 1])


def test_layout_npz(tmp_path):
    np.savez(tmp_path / "X_kannada_MNIST_train.npz", random_images(4))
    np.savez(tmp_path / "y_kannada_MNIST_train.npz", cycle_labels(4))
    dataset = load_dataset(tmp_path)
    assert dataset.layout == "npz" and (dataset.dig, dataset.test) == (None, None)
    assert len(dataset.train) == 4


def test_layout_prefers_the_complete_set(tmp_path):
    # A Kaggle train.csv alone versus a full IDX release: the complete IDX set wins ...
    write_text(tmp_path / "train.csv", csv_text(random_images(3), cycle_labels(3)))
    write_idx_set(tmp_path)
    assert load_dataset(tmp_path).layout == "idx"
    # ... and a complete Kaggle set beats an IDX set with train only.
    for name in ("X_dig_MNIST-idx3-ubyte.gz", "y_dig_MNIST-idx1-ubyte.gz"):
        (tmp_path / name).unlink()
    for name in ("X_kannada_MNIST_test-idx3-ubyte.gz", "y_kannada_MNIST_test-idx1-ubyte.gz"):
        (tmp_path / name).unlink()
    write_text(tmp_path / "Dig-MNIST.csv", csv_text(random_images(2), cycle_labels(2)))
    assert load_dataset(tmp_path).layout == "kaggle-csv"


def test_layout_looks_one_folder_down(tmp_path):
    write_idx_set(tmp_path / "original")
    dataset = load_dataset(tmp_path)
    assert dataset.folder == tmp_path / "original" and dataset.layout == "idx"


def test_layout_nothing_found_lists_what_was_looked_for(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(tmp_path)
    message = str(info.value)
    for name in ("train.csv", "X_kannada_MNIST_train-idx3-ubyte", "X_kannada_MNIST_train.npz"):
        assert name in message
    assert str(tmp_path) in message


def test_layout_missing_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_layout_half_a_pair(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "y_dig_MNIST-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match="found X_dig_MNIST-idx3-ubyte.* not its partner"):
        load_dataset(tmp_path)


def test_layout_kaggle_train_needs_labels(tmp_path):
    write_text(tmp_path / "train.csv", csv_text(random_images(2), np.array([0, 1]), "id"))
    with pytest.raises(DataFormatError, match="train.csv: the train split needs labels.*'id'"):
        load_dataset(tmp_path)
    text = csv_text(random_images(2), np.array([0, 1]))
    write_text(tmp_path / "train.csv", "\n".join(x.split(",", 1)[1] for x in text.splitlines()))
    with pytest.raises(
        DataFormatError, match="expected the first column to be 'label', found pixel0"
    ):
        load_dataset(tmp_path)


def test_writer_ids():
    ids = writer_ids(3000)
    assert ids.dtype == np.int64 and ids.shape == (3000,)
    assert ids[0] == 0 and ids[1279] == 0 and ids[1280] == 1 and ids[-1] == 2
    np.testing.assert_array_equal(np.bincount(ids), [1280, 1280, 440])
    np.testing.assert_array_equal(writer_ids(5, rows_per_writer=2), [0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match="rows_per_writer > 0"):
        writer_ids(5, rows_per_writer=0)


# ------------------------------------------------------------------ properties

image_sets = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        arrays(np.uint8, (n, 28, 28)),
        arrays(np.int64, (n,), elements=st.integers(0, 9)),
    )
)


@PROPERTY_SETTINGS
@given(data=image_sets, compressed=st.booleans())
def test_property_csv_round_trip(tmp_path, data, compressed):
    images, labels = data
    path = write_text(tmp_path / ("t.csv.gz" if compressed else "t.csv"), csv_text(images, labels))
    split = read_csv_split(path)
    np.testing.assert_array_equal(split.images, images)
    np.testing.assert_array_equal(split.labels, labels)


@PROPERTY_SETTINGS
@given(data=image_sets, compressed=st.booleans())
def test_property_idx_round_trip(tmp_path, data, compressed):
    images, labels = data
    suffix = ".gz" if compressed else ""
    np.testing.assert_array_equal(
        read_idx(write_bytes(tmp_path / f"X{suffix}", idx_bytes(images)), "images"), images
    )
    np.testing.assert_array_equal(
        read_idx(write_bytes(tmp_path / f"y{suffix}", idx_bytes(labels)), "labels"), labels
    )


@PROPERTY_SETTINGS
@given(data=image_sets, key=st.text("abcxyz_", min_size=1, max_size=5))
def test_property_npz_round_trip(tmp_path, data, key):
    images, labels = data
    np.savez(tmp_path / "X.npz", **{key: images})
    np.savez_compressed(tmp_path / "y.npz", **{key: labels})
    np.testing.assert_array_equal(read_npz(tmp_path / "X.npz", "images"), images)
    np.testing.assert_array_equal(read_npz(tmp_path / "y.npz", "labels"), labels)


def assert_valid_or_format_error(read) -> None:
    """The reader either returns well-formed data or raises DataFormatError, nothing else."""
    try:
        result = read()
    except DataFormatError:
        return
    images = result.images if isinstance(result, Split) else result
    assert images.dtype in (np.uint8, np.int64)
    if isinstance(result, Split) and result.labels is not None:
        assert result.labels.min() >= 0 and result.labels.max() <= 9


def mutate(data: bytes, position: int, cut: int, insert: bytes) -> bytes:
    position %= len(data) + 1
    return data[:position] + insert + data[position + cut :]


mutations = st.tuples(st.integers(0, 10**6), st.integers(0, 50), st.binary(max_size=20))

# Cells that can never be a valid pixel: letters only (including 'nan' and 'inf'), numbers
# above 255, negative numbers, and fractions.
invalid_cells = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyzNA", min_size=1, max_size=6),
    st.integers(256, 10**12).map(str),
    st.integers(-(10**6), -1).map(str),
    st.integers(0, 254).map(lambda v: f"{v}.5"),
)


@PROPERTY_SETTINGS
@given(
    n=st.integers(1, 4),
    row=st.integers(0, 3),
    column=st.integers(1, 784),
    cell=invalid_cells,
    compressed=st.booleans(),
)
def test_property_csv_invalid_cell_is_reported_with_its_line(
    tmp_path, n, row, column, cell, compressed
):
    lines = good_csv_lines(n)
    line_number = 2 + row % n
    lines[line_number - 1] = replace_field(lines[line_number - 1], column, cell)
    path = write_lines(tmp_path / ("t.csv.gz" if compressed else "t.csv"), lines)
    with pytest.raises(DataFormatError) as info:
        read_csv_split(path)
    assert str(info.value).startswith(f"{path.name} line {line_number}, field pixel{column - 1}:")
    assert repr(cell) in str(info.value)


@PROPERTY_SETTINGS
@given(mutation=mutations, compressed=st.booleans())
def test_property_csv_random_corruption(tmp_path, mutation, compressed):
    text = csv_text(random_images(2), cycle_labels(2)).encode()
    path = tmp_path / ("t.csv.gz" if compressed else "t.csv")
    write_bytes(path, mutate(text, *mutation))
    assert_valid_or_format_error(lambda: read_csv_split(path))


@PROPERTY_SETTINGS
@given(mutation=mutations, compressed=st.booleans(), labels=st.booleans())
def test_property_idx_random_corruption(tmp_path, mutation, compressed, labels):
    values = cycle_labels(40) if labels else random_images(2)
    path = tmp_path / ("f.gz" if compressed else "f")
    write_bytes(path, mutate(idx_bytes(values), *mutation))
    assert_valid_or_format_error(lambda: read_idx(path, "labels" if labels else "images"))


@PROPERTY_SETTINGS
@given(data=image_sets, keep=st.floats(0, 1, exclude_max=True), compressed=st.booleans())
def test_property_idx_truncation_is_always_rejected(tmp_path, data, keep, compressed):
    encoded = idx_bytes(data[0])
    if compressed:
        encoded = gzip.compress(encoded)
    path = tmp_path / "X"
    path.write_bytes(encoded[: int(len(encoded) * keep)])
    with pytest.raises(DataFormatError, match="^X"):
        read_idx(path, "images")


@PROPERTY_SETTINGS
@given(mutation=mutations, compressed=st.booleans())
def test_property_npz_random_corruption(tmp_path, mutation, compressed):
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, random_images(2))
    path = tmp_path / "X.npz"
    path.write_bytes(mutate(buffer.getvalue(), *mutation))
    assert_valid_or_format_error(lambda: read_npz(path, "images"))


# ------------------------------------------------------------------ the real dataset

load_cached = functools.lru_cache(maxsize=None)(load_dataset)


def test_real_kaggle_layout(real_data_dir):
    dataset = load_cached(real_data_dir / "kaggle")
    assert dataset.layout == "kaggle-csv"
    assert (len(dataset.train), len(dataset.dig), len(dataset.test)) == (60000, 10240, 10000)
    for split in (dataset.train, dataset.dig):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (28, 28)
        # Labels cycle 0, 1, ..., 9 through each file (see the data README).
        np.testing.assert_array_equal(split.labels, np.arange(len(split)) % 10)
    assert dataset.test.labels is None
    np.testing.assert_array_equal(dataset.test.ids, np.arange(10000))
    assert dataset.train.images.max() == 255 and dataset.train.images.min() == 0


def test_real_original_layout(real_data_dir):
    dataset = load_cached(real_data_dir / "original")
    assert dataset.layout == "idx"
    assert (len(dataset.train), len(dataset.dig)) == (60000, 10240)
    # The development copy has no test pair; a downloaded release has the labelled one.
    assert dataset.test is None or len(dataset.test) == 10000
    np.testing.assert_array_equal(dataset.train.labels, np.arange(60000) % 10)
    np.testing.assert_array_equal(dataset.dig.labels, np.arange(10240) % 10)


def test_real_kaggle_and_original_are_the_same_pixels(real_data_dir):
    kaggle = load_cached(real_data_dir / "kaggle")
    original = load_cached(real_data_dir / "original")
    for name in ("train", "dig"):
        np.testing.assert_array_equal(
            getattr(kaggle, name).images, getattr(original, name).images, err_msg=name
        )
        np.testing.assert_array_equal(getattr(kaggle, name).labels, getattr(original, name).labels)

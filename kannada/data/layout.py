"""Find Kannada-MNIST in a folder (Kaggle CSV, IDX or .npz layout) and load it as a Dataset.

Also says which rows belong to which writer, for validation splits that hold out whole writers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kannada.data.readers import DataFormatError, Split, read_csv_split, read_idx, read_npz

SPLIT_NAMES = ("train", "dig", "test")
ROWS_PER_WRITER = 1280  # each volunteer filled one page of 1,280 cells

# split -> (images file, labels file), as named in the dataset's own release.
IDX_FILES = {
    "train": ("X_kannada_MNIST_train-idx3-ubyte", "y_kannada_MNIST_train-idx1-ubyte"),
    "dig": ("X_dig_MNIST-idx3-ubyte", "y_dig_MNIST-idx1-ubyte"),
    "test": ("X_kannada_MNIST_test-idx3-ubyte", "y_kannada_MNIST_test-idx1-ubyte"),
}
NPZ_FILES = {
    "train": ("X_kannada_MNIST_train.npz", "y_kannada_MNIST_train.npz"),
    "dig": ("X_dig_MNIST.npz", "y_dig_MNIST.npz"),
    "test": ("X_kannada_MNIST_test.npz", "y_kannada_MNIST_test.npz"),
}
# split -> one file holding labels (or ids) and pixels, as on Kaggle.
CSV_FILES = {"train": "train.csv", "dig": "Dig-MNIST.csv", "test": "test.csv"}

# When two layouts are equally complete, read the fastest one.
LAYOUT_PREFERENCE = ("idx", "npz", "kaggle-csv")


class DataNotFoundError(FileNotFoundError):
    """No usable Kannada-MNIST files in the folder (the message lists what was looked for)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """All splits found in one folder: train always, Dig-MNIST and test when present.

    layout is 'idx', 'npz' or 'kaggle-csv'; folder is where the files were found.
    """

    train: Split
    dig: Split | None
    test: Split | None
    layout: str
    folder: Path

    def splits(self) -> dict[str, Split]:
        """The splits that are present, by name ('train', 'dig', 'test')."""
        found = {"train": self.train, "dig": self.dig, "test": self.test}
        return {name: split for name, split in found.items() if split is not None}


def load_dataset(data_dir: str | Path) -> Dataset:
    """Detect the layout in data_dir (or, failing that, in its direct subfolders) and load it.

    The most complete layout wins (train + dig + test, labelled test first); ties go to the
    fastest format. Raises DataNotFoundError when nothing usable is there, DataFormatError when
    a file is malformed or images and labels do not pair up.
    """
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataNotFoundError(f"data folder {data_dir} does not exist (or is not a folder)")
    candidates = _find_layouts(data_dir)
    if not candidates:
        subfolders = sorted(path for path in data_dir.iterdir() if path.is_dir())
        candidates = [found for folder in subfolders for found in _find_layouts(folder)]
    if not candidates:
        raise DataNotFoundError(_nothing_found_message(data_dir))
    best = max(candidates, key=_completeness)
    return _load(best)


def writer_ids(n_rows: int, rows_per_writer: int = ROWS_PER_WRITER) -> np.ndarray:
    """Writer number of every row, int64 (n_rows,): rows come writer by writer, in blocks.

    Row i belongs to writer i // rows_per_writer; the last block may be shorter (train has
    60,000 rows = 46 full pages + 1,120 rows). Use it to hold out whole writers.
    """
    if n_rows < 0 or rows_per_writer <= 0:
        raise ValueError(
            f"writer_ids: expected n_rows >= 0 and rows_per_writer > 0, "
            f"found {n_rows} and {rows_per_writer}"
        )
    return np.arange(n_rows, dtype=np.int64) // rows_per_writer


@dataclass(frozen=True)
class _Found:
    """One layout found in one folder: split -> files (images, labels) or (csv,)."""

    layout: str
    folder: Path
    files: dict[str, tuple[Path, ...]]


def _existing(folder: Path, name: str, compressed_too: bool) -> Path | None:
    names = (f"{name}.gz", name) if compressed_too else (name,)
    for candidate in names:
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _find_layouts(folder: Path) -> list[_Found]:
    """Every layout in folder that has at least a train split."""
    found = []
    for layout, table, compressed_too in (
        ("idx", IDX_FILES, True),
        ("npz", NPZ_FILES, False),
    ):
        files = {}
        for split, names in table.items():
            paths = [_existing(folder, name, compressed_too) for name in names]
            if all(paths):
                files[split] = tuple(paths)
            elif any(paths):
                have, missing = (names[0], names[1]) if paths[0] else (names[1], names[0])
                raise DataNotFoundError(
                    f"{folder}: found {have}[.gz] but not its partner {missing}[.gz]; "
                    "images and labels come in pairs"
                )
        if "train" in files:
            found.append(_Found(layout, folder, files))
    csv_files = {
        split: (path,)
        for split, name in CSV_FILES.items()
        if (path := _existing(folder, name, compressed_too=True)) is not None
    }
    if "train" in csv_files:
        found.append(_Found("kaggle-csv", folder, csv_files))
    return found


def _completeness(found: _Found) -> tuple[int, bool, int]:
    labelled_test = found.layout != "kaggle-csv" and "test" in found.files
    preference = -LAYOUT_PREFERENCE.index(found.layout)
    return len(found.files), labelled_test, preference


def _load(found: _Found) -> Dataset:
    splits = {}
    for split, paths in found.files.items():
        if found.layout == "kaggle-csv":
            splits[split] = read_csv_split(paths[0])
            if split != "test" and splits[split].labels is None:
                found_first = "'id'" if splits[split].ids is not None else "pixel0"
                raise DataFormatError(
                    f"{paths[0]}: the {split} split needs labels; expected the first column "
                    f"to be 'label', found {found_first}"
                )
            continue
        reader = read_idx if found.layout == "idx" else read_npz
        images_path, labels_path = paths
        splits[split] = Split(
            images=reader(images_path, "images"),
            labels=reader(labels_path, "labels"),
            ids=None,
            source=f"{images_path} + {labels_path.name}",
        )
    return Dataset(
        train=splits["train"],
        dig=splits.get("dig"),
        test=splits.get("test"),
        layout=found.layout,
        folder=found.folder,
    )


def _nothing_found_message(data_dir: Path) -> str:
    def pair(table: dict[str, tuple[str, str]], suffix: str) -> str:
        return " + ".join(f"{name}{suffix}" for name in table["train"])

    return (
        f"no Kannada-MNIST training data found in {data_dir} (or its direct subfolders). "
        "Looked for one of:\n"
        f"  Kaggle CSV: {CSV_FILES['train']}[.gz] (optional: {CSV_FILES['dig']}[.gz], "
        f"{CSV_FILES['test']}[.gz])\n"
        f"  IDX (the official release): {pair(IDX_FILES, '[.gz]')} "
        "(optional: the dig_MNIST and kannada_MNIST_test pairs)\n"
        f"  NumPy .npz: {pair(NPZ_FILES, '')} (optional: the dig and test pairs)"
    )

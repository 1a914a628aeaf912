"""What the kannada commands share: the --data-dir option, loading the data, choosing the
training and validation rows, and one clear line for everything that can stop a command: the
errors a user can cause, the operating system's errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kannada.data import (
    DataFormatError,
    DataNotFoundError,
    Dataset,
    DownloadError,
    Split,
    default_cache_dir,
    ensure_downloaded,
    load_dataset,
    writer_ids,
)
from kannada.data.layout import ROWS_PER_WRITER
from minicnn import CPUEngine, ModelFileError, NonFiniteLossError, Sequential, set_backend
from minicnn.backend import backend_name


class RunError(RuntimeError):
    """A problem with the user's request that the command explains (e.g. a bad --resume folder)."""


# Errors that come from what the user gave us, not from a bug: shown as one line, exit code 1.
USER_ERRORS = (
    DataFormatError,
    DataNotFoundError,
    DownloadError,
    ModelFileError,
    NonFiniteLossError,
    RunError,
)


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """Add --data-dir: a folder in any supported layout, else the downloaded cache."""
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with Kannada-MNIST in the Kaggle CSV, IDX or .npz layout "
        f"(default: the official release, downloaded once into {default_cache_dir()})",
    )


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """Add the required --model option: a model.npz written by kannada.train."""
    parser.add_argument(
        "--model", required=True, metavar="PATH", help="a model.npz written by kannada.train"
    )


def add_backend_argument(parser: argparse.ArgumentParser, default: str | None = "numpy") -> None:
    """Add --backend numpy|cupy (CuPy runs on a GPU)."""
    parser.add_argument(
        "--backend",
        choices=("numpy", "cupy"),
        default=default,
        help="array backend: numpy, or cupy on a GPU (default numpy)",
    )


def load_data(data_dir: str | Path | None) -> Dataset:
    """Load the dataset from data_dir, or from the cache (downloading it first) when None.

    Raises DataNotFoundError / DataFormatError / DownloadError with messages for people.
    """
    if data_dir is not None:
        return load_dataset(Path(data_dir))
    try:
        folder = ensure_downloaded()
    except DownloadError as error:
        # Often the first command after the install: say what did work.
        raise DownloadError(
            f"the installation worked, but the Kannada-MNIST data could not be downloaded: {error}"
        ) from error
    return load_dataset(folder)


def choose_backend(name: str) -> None:
    """Switch minicnn to "numpy" or "cupy"; a missing CuPy or GPU becomes a RunError."""
    try:
        set_backend(name)
    except RuntimeError as error:
        raise RunError(str(error)) from error


def run_fast(model: Sequential) -> Sequential:
    """Run `model` with minicnn's CPU engine on the NumPy backend (on a GPU the plain layers
    are the fast path). Every kannada command goes through here; see CPUEngine for what the
    engine changes in the process."""
    if backend_name() == "numpy":
        model.use_engine(CPUEngine())
    return model


def existing_file(parser: argparse.ArgumentParser, path: str, what: str) -> Path:
    """The path as a Path, or an argparse-style usage error (exit code 2) when it is no file."""
    candidate = Path(path).expanduser()
    if not candidate.is_file():
        parser.error(f"{what} {path}: no such file")
    return candidate


def report_error(prog: str, error: BaseException | str) -> int:
    """Print `prog: error: message` on stderr, as argparse does, and return exit code 1."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 1


# The exit status of a command ended by Ctrl-C, as shells report it: 128 + SIGINT (2).
INTERRUPTED = 130


def run_command(prog: str, job: Callable[[], int], after_interrupt: Callable[[], str]) -> int:
    """Run a command's job and return its exit status; whatever stops it becomes one line.

    The errors a user can cause (USER_ERRORS) and the operating system's (a full disk, a
    folder that cannot be written) give `prog: error: ...` and exit status 1. Ctrl-C gives
    `prog: interrupted; ...` with what after_interrupt() says (what was saved, how to go on)
    and exit status 130.
    """
    try:
        return job()
    except KeyboardInterrupt:
        # A terminal shows ^C where the cursor was: start on a line of our own.
        start = "\n" if sys.stderr.isatty() else ""
        print(f"{start}{prog}: interrupted; {after_interrupt()}", file=sys.stderr)
        return INTERRUPTED
    except USER_ERRORS as error:
        return report_error(prog, error)
    except OSError as error:
        return report_error(prog, describe_os_error(error))


# What to do about the operating-system errors a person can fix, by errno.
_OS_ERROR_ADVICE = {
    errno.ENOSPC: "free some space there and run the command again",
    errno.EDQUOT: "free some space there (or ask for a larger quota) and run the command again",
    errno.EACCES: "choose a folder you may write to, or change its permissions",
    errno.EPERM: "choose a folder you may write to, or change its permissions",
    errno.EROFS: "choose a folder on a writable file system",
}


def describe_os_error(error: OSError) -> str:
    """An operating-system error as a sentence: the file, what went wrong, what to do."""
    where = f"{error.filename}: " if error.filename is not None else ""
    what = error.strerror or str(error) or type(error).__name__
    advice = _OS_ERROR_ADVICE.get(error.errno)
    return f"{where}{what[:1].lower()}{what[1:]}" + (f"; {advice}" if advice else "")


def check_output_folder(
    folder: str | Path, option: str, given: str | Path | None = None
) -> Path | None:
    """Make sure `folder` is, or can be created as, a folder this process may write in.

    Returns the outermost folder that does not exist yet (the first file written creates it,
    and a command that fails before writing removes it again), or None when `folder` exists.
    Raises RunError naming `option` and `given` (what the user wrote; default: folder) when a
    part of the path is a file or the nearest existing folder cannot be written (permissions,
    a read-only file system).
    """
    folder = Path(folder)
    where = f"{option} {folder if given is None else given}"
    existing, missing = folder, None
    while not existing.exists() and existing != existing.parent:
        existing, missing = existing.parent, existing
    if not existing.is_dir():
        raise RunError(f"{where}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(
            f"{where}: cannot write in {existing} (permission denied or a read-only file "
            "system); choose a folder you may write to"
        )
    return missing


def check_output_file(path: str | Path, option: str) -> Path:
    """The path as a Path, after checking it can be written as a file (see check_output_folder)."""
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{option} {path}: is a folder; expected the name of a file to write")
    check_output_folder(path.parent, option, given=path)
    return path


def remove_empty_folders(folder: Path, outermost: Path | None) -> None:
    """Remove `folder` and its parents up to `outermost` (check_output_folder's result), as
    long as they are empty: what a command that failed before writing anything created."""
    if outermost is None or (outermost != folder and outermost not in folder.parents):
        return
    while True:
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty: leave it and everything above it
            return
        if folder == outermost:
            return
        folder = folder.parent


# ---------------------------------------------------------------- which rows train, which validate


def training_rows(n_rows: int, limit: int | None) -> np.ndarray:
    """Indices (sorted, int64) of the train rows a run uses: all, or `limit` spread over writers.

    Row i is cell i % 1280 of writer i // 1280. A limited run takes cell 0 of every writer,
    then cell 1 of every writer, and so on: every writer stays represented (so --val-by
    writer can still hold out whole writers) and, as the labels cycle 0-9 through each page,
    the classes stay balanced. Taking the first N rows would instead keep only N / 1280
    writers - a single one for N < 1280.
    """
    if limit is None or limit >= n_rows:
        return np.arange(n_rows, dtype=np.int64)
    writer = writer_ids(n_rows)
    cell = np.arange(n_rows) - writer * ROWS_PER_WRITER
    by_cell_then_writer = np.lexsort((writer, cell))
    return np.sort(by_cell_then_writer[:limit]).astype(np.int64)


def validation_split(
    writers: np.ndarray, val_split: float, val_by: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into `writers`) of the training and of the validation rows.

    writers: (N,) writer number of each row. val_by "writer" holds out
    max(1, round(val_split * writers present)) whole writers, drawn with
    numpy.random.default_rng(seed); "random" holds out round(val_split * N) random rows
    (at least 1). Both sides always keep at least one writer / row.
    """
    rng = np.random.default_rng(seed)
    n = len(writers)
    if val_by == "writer":
        present = np.unique(writers)
        if len(present) < 2:
            raise RunError(
                f"--val-by writer needs rows from at least 2 writers ({ROWS_PER_WRITER} rows "
                f"each), but the {n} training rows come from {len(present)}; "
                "use more rows or --val-by random"
            )
        n_held = min(max(1, round(val_split * len(present))), len(present) - 1)
        is_val = np.isin(writers, rng.choice(present, size=n_held, replace=False))
    elif val_by == "random":
        if n < 2:
            raise RunError(f"a validation split needs at least 2 training rows, found {n}")
        n_held = min(max(1, round(val_split * n)), n - 1)
        is_val = np.zeros(n, dtype=bool)
        is_val[rng.permutation(n)[:n_held]] = True
    else:
        raise ValueError(f"val_by: expected 'writer' or 'random', found {val_by!r}")
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def split_rows(n_rows: int, config: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Train-file row indices (training, validation) of a run, from its config.

    config needs "limit", "val_split", "val_by" and "seed" (kannada.train's options), so a
    saved model's validation rows can be rebuilt exactly.
    """
    rows = training_rows(n_rows, config["limit"])
    train_pos, val_pos = validation_split(
        writer_ids(n_rows)[rows], config["val_split"], config["val_by"], config["seed"]
    )
    return rows[train_pos], rows[val_pos]


def data_fingerprint(split: Split) -> str:
    """SHA-256 of a split's images and labels: tells whether two runs saw the same data."""
    digest = hashlib.sha256(np.ascontiguousarray(split.images).tobytes())
    if split.labels is not None:
        digest.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()

"""Atomic file writes: a reader never sees a half-written file.

minicnn writes its model files with it, and applications may use it for their own artifacts.

Write to a temporary file in the target's folder, then `os.replace` it over the target. A
process killed mid-write (SIGKILL, a power cut) leaves its temporary file behind:
`remove_stray_temp_files` clears those away.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_MODES = ("w", "wb", "w+b")
# The temporary file of `name`: ".name.<pid>.<8 hex digits>.tmp", next to it.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp")


@contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "w",
    encoding: str | None = "utf-8",
    newline: str | None = None,
) -> Iterator[IO]:
    """Open a temporary file next to `path`; on success it replaces `path` in one step.

    Use it like `open`: `with atomic_write("out/metrics.json") as f: f.write(text)`.
    `mode` is "w" (text, `encoding` and `newline` as for `open`), "wb" (bytes) or "w+b" (bytes,
    readable too: to check what was written before it replaces `path`).
    Missing parent folders are created. If the `with` body raises, the temporary file is
    deleted, the previous content of `path` (if any) is left untouched, and the error
    propagates; an OSError (a full disk, say) names `path`, not the temporary file.
    """
    if mode not in _MODES:
        raise ValueError(
            f"atomic_write({str(path)!r}): mode must be one of {_MODES}, found {mode!r}"
        )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target, so os.replace is a rename within one file system (atomic);
    # a leading dot keeps it out of casual listings; the random part avoids clashes between
    # processes writing the same artifact.
    temp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # os.open with 0o666 lets the umask decide the permissions, as plain open() would.
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        _name_the_target(error, temp, target)
        raise
    try:
        if mode != "w":
            file = os.fdopen(fd, mode)
        else:
            file = os.fdopen(fd, "w", encoding=encoding, newline=newline)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    try:
        with file:
            yield file
            file.flush()
            # Make the bytes durable before the rename, so a crash cannot leave an empty file.
            os.fsync(file.fileno())
        os.replace(temp, target)
    except OSError as error:
        temp.unlink(missing_ok=True)
        _name_the_target(error, temp, target)
        raise
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _name_the_target(error: OSError, temp: Path, target: Path) -> None:
    """Make the error name the file the caller asked for where it names the temporary file,
    or no file at all (a write on a full disk)."""
    if error.errno is None:  # not about a file
        return
    if error.filename is None or os.fspath(error.filename) == os.fspath(temp):
        error.filename = os.fspath(target)
        error.filename2 = None


def remove_stray_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files atomic_write left in `folder` when its process was killed.

    A file whose process still runs (another writer at work) is kept. Returns the paths
    removed; a folder that does not exist has none.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        match = _TEMP_NAME.fullmatch(path.name)
        if match and path.is_file() and not _running(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # no signal 0 to ask with: keep every file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True

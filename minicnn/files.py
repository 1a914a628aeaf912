"""Atomic file writes: a reader never sees a half-written file.

minicnn writes its model files with it, and applications may use it for their own artifacts.

Write to a temporary file in the target's folder, then `os.replace` it over the target.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_MODES = ("w", "wb", "w+b")


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
    propagates.
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
    # os.open with 0o666 lets the umask decide the permissions, as plain open() would.
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
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
    except BaseException:
        temp.unlink(missing_ok=True)
        raise

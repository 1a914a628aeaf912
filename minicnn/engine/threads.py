"""Data parallelism on one machine: split the batch into contiguous chunks, one per thread.

NumPy releases the GIL inside BLAS calls, copies and ufuncs, so two chunks on two cores really
run at the same time. The skinny matrix products of a small CNN (32 or 64 output channels) do
not scale over BLAS's own threads, but independent products on one BLAS thread each do.

Results are repeatable for a given thread count: the chunks depend only on the batch size and
the thread count, and partial sums (weight gradients) are added in chunk order. A different
thread count adds in a different order, so float32 results differ in the last bits.

While an engine is in use, BLAS runs on one thread (OneBlasThread): the chunks' threads already
share out the cores.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_limits

MIN_CHUNK = 16  # below this many samples per thread, splitting costs more than it gains


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def batch_chunks(n: int, threads: int) -> list[tuple[int, int]]:
    """Split range(n) into contiguous (start, stop) chunks, at most one per thread, each of at
    least MIN_CHUNK samples (a smaller batch is one chunk)."""
    parts = max(1, min(threads, n // MIN_CHUNK))
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


class ChunkPool:
    """Runs work(start, stop) for every chunk, one chunk per thread; the first chunk runs on the
    calling thread, so a single chunk costs no thread switch."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None  # started at the first split batch

    def run(self, work, chunks: list[tuple[int, int]]) -> list:
        """The results of work(start, stop) for each chunk, in chunk order. Every chunk has
        finished when it returns or raises; of several errors it raises the one that is not
        merely a chunk let go from a meeting (threading.BrokenBarrierError) because another
        failed."""
        if len(chunks) == 1:
            return [work(*chunks[0])]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="minicnn")
        futures = [self._executor.submit(work, *chunk) for chunk in chunks[1:]]
        results, errors = [], []
        for task in [lambda: work(*chunks[0]), *(future.result for future in futures)]:
            try:
                results.append(task())
            except BaseException as error:  # noqa: BLE001 - re-raised below, after the others
                errors.append(error)
        if errors:
            raise next(
                (e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0]
            )
        return results

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None


def sum_in_chunk_order(parts):
    """Add the chunks' partial results (one list of arrays per chunk) in chunk order, into the
    first chunk's arrays: the same sum at every run for a given thread count."""
    total = parts[0]
    for part in parts[1:]:
        for running, value in zip(total, part, strict=True):
            running += value
    return total


class OneBlasThread:
    """BLAS on one thread while at least one engine is in use.

    The thread count is a setting of the whole process, so it is counted for the whole
    process: engines may start and stop in any order, and the last one to stop gives BLAS
    back the thread count it had before the first one started.
    """

    def __init__(self) -> None:
        self.holders = 0
        self._limit = None

    def hold(self) -> None:
        self.holders += 1
        if self.holders == 1:
            self._limit = threadpool_limits(limits=1, user_api="blas")

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            self._limit.restore_original_limits()
            self._limit = None


ONE_BLAS_THREAD = OneBlasThread()  # shared by every CPUEngine of the process

"""Data parallelism inside a layer: split the batch into contiguous chunks, one per thread.

NumPy releases the GIL inside BLAS calls, copies and ufuncs, so on a 2-core machine two
half-batches really run at the same time. The skinny GEMMs of a small CNN (32 or 64 output
channels) do not scale over BLAS's own threads, but two independent half-size GEMMs on one
BLAS thread each do: +27% for a whole training step of seed-cnn (docs/09-speed-and-gpu.md). While the
chunks run, BLAS is limited to one thread (threadpoolctl), so the cores are never oversubscribed.

A layer splits its own batch when called on its own. Sequential goes one level up: in
inference each thread runs the whole stack on its share of the batch (Sequential.forward),
and a training step runs forward and backward per share (minicnn.data_parallel); the layers'
run_chunks calls inside such a chunk run inline.

Results are deterministic for a given thread count: the chunks depend only on the batch size
and the thread count, and partial sums (such as weight gradients) are added in chunk order
(sum_in_chunk_order). A different thread count sums in a different order, so float32 results
differ in the last bits (and, over a training run, more).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_num_threads = max(1, int(os.environ.get("MINICNN_NUM_THREADS", min(os.cpu_count() or 1, 2))))
_executor: ThreadPoolExecutor | None = None
_controller = None
MIN_CHUNK = 16  # below this many samples per thread, splitting costs more than it gains
_inside = threading.local()  # .active: this thread is running a chunk's work right now


def set_num_threads(n: int) -> None:
    """Use n threads for batch-parallel layer work (1 turns it off). Default: min(cores, 2)
    or the MINICNN_NUM_THREADS environment variable."""
    global _num_threads, _executor
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    _num_threads = int(n)
    if _executor is not None:
        _executor.shutdown()
        _executor = None


def get_num_threads() -> int:
    return _num_threads


def batch_chunks(n: int) -> list[tuple[int, int]]:
    """Split range(n) into contiguous (start, stop) chunks, one per thread (fewer for small n)."""
    parts = max(1, min(_num_threads, n // MIN_CHUNK))
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _blas_controller():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


def one_blas_thread():
    """A context in which BLAS uses one thread, for work done between training steps.

    After a matrix product on several threads, OpenBLAS keeps its idle threads spinning for
    about 0.1 s in case more work comes. A ZCA whitening of each batch (one product on 2
    threads) thus left a thread spinning into the next training step, where it took a core from
    minicnn's own threads: in fit() a step of seed-cnn took 235 ms instead of 190 ms.
    """
    return _blas_controller().limit(limits=1, user_api="blas")


def run_chunks(work, n: int, xp=np) -> list:
    """Call work(start, stop) for each chunk of range(n); returns the results in chunk order.

    Chunks run on a thread pool for NumPy arrays; CuPy work (already parallel on the GPU)
    runs as a single chunk. A call made from inside a chunk's work (a layer's forward inside
    a whole-network chunk, see Sequential.forward) runs at once on the calling thread, as one
    chunk: its caller already split the batch and set BLAS to one thread.
    """
    if xp is not np or getattr(_inside, "active", False):
        return [work(0, n)]
    global _executor
    chunks = batch_chunks(n)
    # One BLAS thread per chunk. A batch too small to split (a single image at prediction
    # time) also runs on one BLAS thread: waking a second one costs more than it saves there.
    with one_blas_thread():
        if len(chunks) == 1:
            return [_as_chunk(work, 0, n)]
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_num_threads, thread_name_prefix="minicnn")
        futures = [_executor.submit(_as_chunk, work, start, stop) for start, stop in chunks]
        return [future.result() for future in futures]


def _as_chunk(work, start: int, stop: int):
    """work(start, stop), marked as a chunk's work so nested run_chunks calls run inline."""
    _inside.active = True
    try:
        return work(start, stop)
    finally:
        _inside.active = False


def sum_in_chunk_order(parts):
    """Add the chunks' partial results (such as weight gradients) in chunk order, into the
    first chunk's arrays: the same sum at every run for a given thread count.

    parts: one array per chunk, or one tuple or list of arrays per chunk.
    """
    total = parts[0]
    for part in parts[1:]:
        if isinstance(total, (tuple, list)):
            for running, value in zip(total, part, strict=True):
                running += value
        else:
            total += part
    return total

"""CPUEngine: runs a model's layers fast on the CPU, computing what the plain layers compute."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minicnn.engine.batchnorm import BatchNormKernel, BatchSums
from minicnn.engine.kernels import (
    DropoutKernel,
    LayerAsKernel,
    batch_uniforms,
    make_kernel,
    splits,
)
from minicnn.engine.memory import keep_freed_memory
from minicnn.engine.threads import (
    ONE_BLAS_THREAD,
    ChunkPool,
    available_cores,
    batch_chunks,
    sum_in_chunk_order,
)
from minicnn.layers import BatchNorm, Dropout


@dataclass
class _Chunked:
    """A run of layers split into chunks: each chunk's kernels by chunk start, and the meeting
    points where the chunks add up the batch's sums (BatchNorm in training)."""

    kernels: dict[int, list]
    meetings: list


@dataclass
class _Step:
    """What a training forward pass leaves for backward: the layers, how the batch was split,
    and per group of layers each chunk's kernels by chunk start, or the one kernel that ran
    the whole batch."""

    layers: list
    chunks: list[tuple[int, int]]
    groups: list[tuple[list[int], _Chunked | object]]


class CPUEngine:
    """Runs the same model (the same layer objects, params and model files) faster on the CPU.

    Choose it with one line, `model.use_engine(CPUEngine())`; `model.use_engine(None)` goes back
    to the plain layers. What it does differently (chapter 9 of the course measures each):
    - data parallelism: every batch is split into contiguous chunks, one per thread, and each
      thread takes its chunk through a whole run of layers, so threads meet only where a layer
      needs the whole batch (BatchNorm in training) and at the end; weight gradients of the
      chunks are added in chunk order (minicnn.engine.threads);
    - channels-last convolutions, unrolled a few images at a time, and a stride-1 backward pass
      without a scatter (conv.py, nhwc.py); pooling by taps (pool.py); ReLU and dropout that
      keep the channels-last layout (kernels.py).
    While a model uses it, it changes two process-wide settings, listed by describe(): BLAS
    runs on one thread (threadpoolctl; the engine's threads already share the cores, and an
    idle BLAS thread spinning between steps takes a core from them), and, unless
    keep_freed_memory=False, freed memory stays in the process (minicnn.engine.memory). BLAS
    gets its previous thread count back when no model uses a CPUEngine any more.

    Randomness is the plain layers': a Dropout layer's generator gives the same numbers for a
    batch whatever its split (kernels.batch_uniforms), so the masks do not depend on the engine
    or the thread count.

    NumPy only: on a GPU (CuPy) the plain layers are the fast path.

    Args:
        threads: how many chunks a batch is split into at most (default: the cores this
            process may use). 1 keeps the layouts and kernels but runs on one thread.
        keep_freed_memory: apply minicnn.engine.memory.keep_freed_memory() when chosen.
    """

    def __init__(self, threads: int | None = None, keep_freed_memory: bool = True) -> None:
        if threads is None:
            threads = available_cores()
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
        self.threads = threads
        self.keep_freed_memory = keep_freed_memory
        self.pool = ChunkPool(threads)
        self.memory_kept = False
        self._users = 0
        self._pending: dict[int, _Step] = {}  # by id() of the layer list: one per model

    # -- being chosen ---------------------------------------------------------------------
    # --8<-- [start:start_stop]
    def start(self) -> None:
        """Apply the process-wide settings (Sequential.use_engine calls this)."""
        self._users += 1
        if self._users == 1:
            ONE_BLAS_THREAD.hold()  # counted over every engine: see OneBlasThread
            if self.keep_freed_memory:
                self.memory_kept = keep_freed_memory()

    def stop(self) -> None:
        """Undo what start() did, once no model uses the engine (freed memory stays kept)."""
        if self._users == 0:
            return
        self._users -= 1
        if self._users == 0:
            ONE_BLAS_THREAD.release()
            self.pool.close()
            self._pending = {}

    # --8<-- [end:start_stop]

    def describe(self) -> str:
        """One line: what the engine does and which process-wide settings it has made."""
        memory = (
            "freed memory kept in the process (glibc mallopt)"
            if self.memory_kept
            else "memory allocator left alone"
        )
        blas = "BLAS on 1 thread (threadpoolctl)" if self._users else "BLAS left alone"
        return (
            f"CPUEngine: batches split over {self.threads} thread(s), channels-last "
            f"convolutions; {blas}; {memory}"
        )

    def __repr__(self) -> str:
        return f"CPUEngine(threads={self.threads}, keep_freed_memory={self.keep_freed_memory})"

    # -- running --------------------------------------------------------------------------
    def forward(self, layers, x, training: bool = False):
        """x (N, ...) through `layers` (built, as a Sequential builds them); with
        training=True, keeps what backward(layers, ...) needs."""
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"CPUEngine runs NumPy arrays, got {type(x).__module__}.{type(x).__name__}: "
                "on a GPU the plain layers are the fast path (model.use_engine(None))"
            )
        unbuilt = [layer.name for layer in layers if not layer.built]
        if unbuilt:
            raise ValueError(
                f"CPUEngine runs built layers; {unbuilt} are not: put them in a Sequential, "
                "or call layer.build(input_shape)"
            )
        chunks = batch_chunks(len(x), self.threads)
        step = _Step(list(layers), chunks, [])
        h = x
        for indices in self._groups(layers):
            if not splits(layers[indices[0]]):
                whole = LayerAsKernel(layers[indices[0]])
                h = whole.forward(h, training)
                step.groups.append((indices, whole))
                continue
            group = self._chunked(layers, indices, chunks, h, training)
            h = self._forward_chunks(group, h, chunks, training)
            step.groups.append((indices, group))
        if training:
            self._pending[id(layers)] = step
        return h

    def backward(self, layers, dy, input_gradient: bool = True):
        """Back through `layers` from their last training forward; fills each layer's grads.
        Returns the input gradient, or None when input_gradient is False (training needs no
        gradient with respect to the images, and the first layer then skips computing it)."""
        step = self._pending.pop(id(layers), None)
        if step is None:
            raise RuntimeError(
                "CPUEngine.backward() needs a forward(training=True) of the same layers first"
            )
        for indices, group in reversed(step.groups):
            wanted = input_gradient or indices[0] > 0
            if isinstance(group, _Chunked):
                dy = self._backward_chunks(step.layers, indices, group, dy, step.chunks, wanted)
            else:  # a layer run whole
                dy = group.backward(dy, input_gradient=wanted)
        return dy if input_gradient else None

    # -- the steps ------------------------------------------------------------------------
    @staticmethod
    def _groups(layers) -> list[list[int]]:
        """Layer indices in runs that split into chunks, and single layers that do not."""
        groups: list[list[int]] = []
        for i, layer in enumerate(layers):
            if splits(layer) and groups and splits(layers[groups[-1][0]]):
                groups[-1].append(i)
            else:
                groups.append([i])
        return groups

    def _chunked(self, layers, indices, chunks, x, training: bool) -> _Chunked:
        """Each chunk's kernels for the layers `indices`. A Dropout layer's generator hands
        each chunk its share of the batch's random numbers (batch_uniforms); a BatchNorm in
        training gets a meeting point for the batch's sums (BatchSums)."""
        shape = x.shape[1:]
        uniforms, meetings = {}, {}
        for i in indices:
            layer = layers[i]
            if isinstance(layer, Dropout) and training and layer.rate > 0:
                uniforms[i] = batch_uniforms(layer.rng, len(x), shape, chunks)
            if isinstance(layer, BatchNorm) and training:
                rows_per_sample = int(np.prod(shape[1:]))  # pixels of an image, 1 for features
                meetings[i] = (BatchSums(len(chunks)), len(x) * rows_per_sample)
            shape = layer.output_shape

        def kernel(i: int, chunk: int, start: int):
            if i in uniforms:
                return DropoutKernel(layers[i], uniforms[i][start])
            if i in meetings:
                sums, count = meetings[i]
                return BatchNormKernel(layers[i], sums, chunk, count)
            return make_kernel(layers[i])

        kernels = {
            start: [kernel(i, chunk, start) for i in indices]
            for chunk, (start, _) in enumerate(chunks)
        }
        return _Chunked(kernels, [sums for sums, _ in meetings.values()])

    def _run(self, group: _Chunked, work, chunks) -> list:
        """pool.run, but a chunk that fails releases the others from their meetings."""

        def guarded(start: int, stop: int):
            try:
                return work(start, stop)
            except BaseException:
                for meeting in group.meetings:
                    meeting.abort()
                raise

        return self.pool.run(guarded, chunks)

    def _forward_chunks(self, group: _Chunked, x, chunks, training: bool):
        def work(start: int, stop: int):
            h = x[start:stop]
            for kernel in group.kernels[start]:
                h = kernel.forward(h, training)
            return h

        return join_chunks(self._run(group, work, chunks))

    def _backward_chunks(self, layers, indices, group: _Chunked, dy, chunks, input_gradient: bool):
        def work(start: int, stop: int):
            g = dy[start:stop]
            chunk_kernels = group.kernels[start]
            for j in reversed(range(len(chunk_kernels))):
                g = chunk_kernels[j].backward(g, input_gradient=j > 0 or input_gradient)
            return g

        parts = self._run(group, work, chunks)
        for j, i in enumerate(indices):
            keys = list(layers[i].params)
            if keys:
                shares = [
                    [group.kernels[start][j].grads[key] for key in keys] for start, _ in chunks
                ]
                layers[i].grads.update(zip(keys, sum_in_chunk_order(shares), strict=True))
        if not input_gradient:
            return None
        return join_chunks(parts)


def join_chunks(parts: list):
    """The chunks' results as one batch, in the memory layout they have: channels-last
    activations (NCHW views of NHWC memory) stay channels-last, for the next kernel."""
    if len(parts) == 1:
        return parts[0]
    if parts[0].ndim == 4 and parts[0].transpose(0, 2, 3, 1).flags.c_contiguous:
        return np.concatenate([part.transpose(0, 2, 3, 1) for part in parts]).transpose(0, 3, 1, 2)
    return np.concatenate(parts)

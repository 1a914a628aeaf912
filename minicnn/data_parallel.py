"""Data parallelism for a training step: every thread runs the whole network, forward and
backward, on its own share of the batch, and the shares' gradients are added up.

This is how training is spread over several GPUs (PyTorch's DistributedDataParallel), here over
the cores of one machine. The alternative, used when this one cannot be (see `can_split`), is
to split the batch inside every layer (minicnn.parallel.run_chunks): the threads then meet
after each of the ~17 layers of the seed-cnn, forward and backward, and a layer's output is
written by both threads before either can read it. With a whole step per thread there is one
meeting per step, and the dropout masks are drawn on both threads at once: a training step of
the seed-cnn takes 1.10-1.12x less time.

The sum is the same gradient as the whole batch's: the loss is the batch mean, so each share's
mean loss (and its gradient) is weighted by its share of the batch, share = n_chunk / N.

Each thread works on replicas of the layers (`Layer.replica`): they share the parameter arrays,
but keep their own caches and gradients, and dropout layers get their own generators, seeded
from the layer's generator in chunk order. Results are deterministic for a given thread count.
"""

from __future__ import annotations

import copy

import numpy as np

from minicnn import parallel
from minicnn.backend import get_array_module


def can_split(layers, x) -> bool:
    """Whether a training step on batch `x` can run as whole-network chunks: NumPy arrays, a
    batch big enough for several chunks, and no layer whose output for one sample depends on
    the others (BatchNorm's batch statistics would become per-chunk statistics)."""
    return (
        get_array_module(x) is np
        and len(parallel.batch_chunks(len(x))) > 1
        and all(layer.samples_independent for layer in layers)
    )


def forward_backward(layers, loss, x, labels):
    """Forward and backward over (x, labels), a share of the batch per thread. Leaves the
    summed gradients in each layer's `grads`; returns (mean loss over the batch, logits)."""
    n = len(x)
    # Replicas by the chunk's first sample, made in chunk order, so that dropout replicas
    # draw their seeds in the same order every run.
    replicas = {
        start: [layer.replica() for layer in layers] for start, _ in parallel.batch_chunks(n)
    }
    losses = {start: copy.copy(loss) for start in replicas}

    def work(start: int, stop: int):
        h = x[start:stop]
        for layer in replicas[start]:
            h = layer.forward(h, training=True)
        share = (stop - start) / n
        chunk_loss = losses[start].forward(h, labels[start:stop])
        grad = losses[start].backward()
        grad *= grad.dtype.type(share)
        for layer in reversed(replicas[start]):
            grad = layer.backward(grad)
        return chunk_loss * share, h

    results = parallel.run_chunks(work, n)
    for i, layer in enumerate(layers):
        keys = list(layer.params)
        shares = [[replica[i].grads[key] for key in keys] for replica in replicas.values()]
        layer.grads.update(zip(keys, parallel.sum_in_chunk_order(shares), strict=True))
    mean_loss = sum(chunk_loss for chunk_loss, _ in results)
    return mean_loss, np.concatenate([logits for _, logits in results])

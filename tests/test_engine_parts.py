"""The engine's parts: its unrolling against the plain im2col, the stride-1 backward pass
against the col2im formulas, how it splits batches over threads, and its memory setting."""

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

import minicnn as mc
from minicnn.engine import memory, nhwc, threads
from minicnn.engine.conv import ConvKernel
from minicnn.layers import im2col as plain

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="mallopt tuning applies to glibc on Linux only"
)


def test_channels_last_rows_are_the_plain_rows_reordered():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 5, 4), dtype=np.float32)  # NCHW
    padding = ((1, 1), (1, 1))
    rows = plain.im2col(x, (3, 3), (1, 1), padding)  # columns (c, a, b)
    x_pad = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), *padding, (0, 0)))
    rows_nhwc = nhwc.im2col(x_pad, (3, 3), (1, 1), (5, 4))  # columns (a, b, c)
    reordered = rows_nhwc.reshape(-1, 3, 3, 3).transpose(0, 3, 1, 2).reshape(len(rows), -1)
    np.testing.assert_array_equal(reordered, rows)


@pytest.mark.parametrize("stride", [1, 2])
def test_one_channel_rows_are_a_transposed_view_of_the_buffer(stride):
    # With C = 1 the engine copies tap by tap and returns a transposed view of its buffer.
    rng = np.random.default_rng(0)
    x_pad = np.pad(rng.random((3, 7, 6, 1), dtype=np.float32), ((0, 0), (1, 1), (1, 1), (0, 0)))
    out_hw = ((9 - 3) // stride + 1, (8 - 3) // stride + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x_pad, (3, 3), axis=(1, 2))
    expected = windows[:, ::stride, ::stride].transpose(0, 1, 2, 4, 5, 3).reshape(-1, 9)
    buffer = np.full((expected.shape[0], 9), np.nan, dtype=np.float32)
    col = nhwc.im2col(x_pad, (3, 3), (stride, stride), out_hw, out=buffer)
    assert np.shares_memory(col, buffer) and col.shape == expected.shape
    np.testing.assert_array_equal(col, expected)


@pytest.mark.parametrize("padding", ["same", "valid", 1])
def test_the_stride_1_backward_pass_equals_the_col2im_formulas(padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 9, 8)).astype(np.float32)
    layer = mc.Conv2D(5, 3, padding=padding).build((3, 9, 8), rng=np.random.default_rng(1))
    kernel = ConvKernel(layer)
    y = kernel.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = kernel.backward(dy)  # stride 1: both gradients from the rows of dy
    # The general path, written out with the plain helpers: dW = dy^T col(x), dx = col2im.
    pads, _ = layer.geometry(9, 8)
    col = plain.im2col(x, (3, 3), (1, 1), pads)
    dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, 5)
    W = layer.params["W"].reshape(5, -1)
    np.testing.assert_allclose(
        dx, plain.col2im(dy_rows @ W, x.shape, (3, 3), (1, 1), pads), atol=1e-5
    )
    np.testing.assert_allclose(kernel.grads["W"].reshape(5, -1), dy_rows.T @ col, atol=1e-4)
    np.testing.assert_allclose(kernel.grads["b"], dy_rows.sum(axis=0), atol=1e-5)


def test_blocks_cover_the_batch_with_a_small_buffer():
    rng = np.random.default_rng(0)
    images = rng.random((30, 14, 14, 32), dtype=np.float32)  # 225 KiB of rows per image
    scratch = nhwc.block_scratch(30, 196, 288, np.float32)
    assert scratch.shape[0] < 30 * 196  # not the whole batch at once
    pieces = [
        (first, last, col.copy())
        for first, last, col in nhwc.unrolled_blocks(
            images, (3, 3), (1, 1), (1, 1), (1, 1), (14, 14), scratch
        )
    ]
    assert len(pieces) > 1 and pieces[0][0] == 0 and pieces[-1][1] == 30
    x_pad = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    np.testing.assert_array_equal(
        np.concatenate([col for *_, col in pieces]), nhwc.im2col(x_pad, (3, 3), (1, 1), (14, 14))
    )


def test_batches_split_into_contiguous_chunks():
    assert threads.batch_chunks(128, 2) == [(0, 64), (64, 128)]
    assert threads.batch_chunks(37, 2) == [(0, 18), (18, 37)]
    assert threads.batch_chunks(20, 2) == [(0, 20)]  # too small to split
    assert threads.batch_chunks(128, 1) == [(0, 128)]
    assert threads.batch_chunks(1, 8) == [(0, 1)]


def test_chunks_run_on_their_own_threads_in_order():
    pool = threads.ChunkPool(3)
    names = []

    def work(start, stop):
        names.append(threading.current_thread().name)
        return start, stop

    try:
        assert pool.run(work, [(0, 1), (1, 2), (2, 3)]) == [(0, 1), (1, 2), (2, 3)]
    finally:
        pool.close()
    assert threading.current_thread().name in names and len(set(names)) >= 2


def test_chunk_sums_add_in_chunk_order():
    parts = [[np.array([1.0]), np.array([2.0])], [np.array([3.0]), np.array([4.0])]]
    total = threads.sum_in_chunk_order(parts)
    assert [float(t[0]) for t in total] == [4.0, 6.0] and total[0] is parts[0][0]


# A few training steps of a small CNN in a fresh process; prints the page faults per step.
FAULTS_PER_STEP = """
import json, resource, sys
import numpy as np
import minicnn as mc

model = mc.Sequential(
    [mc.Conv2D(32, 3, padding="same"), mc.ReLU(), mc.MaxPool2D(2), mc.Flatten(), mc.Dense(10)],
    input_shape=(1, 28, 28),
).compile()
model.use_engine(mc.CPUEngine(threads=1, keep_freed_memory=sys.argv[1] == "keep"))
rng = np.random.default_rng(0)
x = rng.random((64, 1, 28, 28), dtype=np.float32)  # conv output: 6.4 MB per step
y = rng.integers(0, 10, 64)
for _ in range(2):
    model.train_step(x, y)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    model.train_step(x, y)
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps((after - before) / 5))
"""


def faults_per_step(setting: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_STEP, setting], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@linux_only
def test_keep_freed_memory_applies_on_glibc():
    assert memory.keep_freed_memory() is True


@linux_only
def test_with_freed_memory_kept_training_steps_stop_page_faulting():
    kept, returned = faults_per_step("keep"), faults_per_step("return")
    # Returned to the kernel, the step's ~6 MB arrays fault in again page by page (1,000s).
    assert returned > 500, returned
    assert kept < returned / 10, (kept, returned)


@pytest.mark.parametrize("sample_shape", [(3, 4, 4), (7,), (3, 3)], ids=["even", "odd", "odd-2d"])
def test_chunks_draw_the_numbers_one_call_would_draw(sample_shape):
    from minicnn.engine.kernels import batch_uniforms

    chunks = threads.batch_chunks(37, 2)
    one_call = np.random.default_rng(4)
    expected = one_call.random((37, *sample_shape), dtype=np.float32)
    rng = np.random.default_rng(4)
    draws = batch_uniforms(rng, 37, sample_shape, chunks)
    parts = [draws[start]() for start, _ in reversed(chunks)][::-1]  # any order, any thread
    np.testing.assert_array_equal(np.concatenate(parts), expected)
    # and the generator goes on as if it had made the one call
    assert rng.random() == one_call.random()


def test_a_failing_chunk_releases_the_others_and_its_error_is_raised(monkeypatch):
    """A BatchNorm's chunks meet to add their sums; when one chunk fails first, the others
    must not wait for it forever, and the error raised is the failure, not the release."""
    from minicnn.engine.batchnorm import BatchSums

    real_total = BatchSums.total

    def failing_total(self, name, chunk, part):
        if chunk == 1:
            raise ValueError("chunk 1 failed")
        return real_total(self, name, chunk, part)

    monkeypatch.setattr(BatchSums, "total", failing_total)
    model = mc.Sequential(
        [mc.Conv2D(3, 3), mc.BatchNorm(), mc.ReLU(), mc.Flatten(), mc.Dense(4)],
        input_shape=(1, 6, 6),
        seed=0,
    ).compile()
    engine = mc.CPUEngine(threads=2, keep_freed_memory=False)
    model.use_engine(engine)
    try:
        x = np.random.default_rng(0).random((40, 1, 6, 6), dtype=np.float32)
        with pytest.raises(ValueError, match="chunk 1 failed"):
            model.train_step(x, np.arange(40) % 4)
        monkeypatch.undo()
        loss, _ = model.train_step(x, np.arange(40) % 4)  # the pool still works afterwards
        assert np.isfinite(loss)
    finally:
        model.use_engine(None)

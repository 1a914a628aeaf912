"""Layer by layer: the plain layers against the CPU engine's kernels, on the seed-cnn's shapes.

Every layer of the default Kannada model (kannada.model.build_model) runs forward + backward
on one batch, on one thread with BLAS on one thread: once as the plain layer (minicnn.layers, the
code the course teaches), once as the engine's kernel for one chunk (minicnn.engine, what
CPUEngine runs on each thread). As in a training step, the plain layers compute every input
gradient and the engine skips the first layer's, which nothing needs. Each side gets its inputs in its own
memory layout, as in a real step: the plain layers' NCHW arrays, the engine's channels-last ones.
Threads are left out (benchmarks/speed.py measures whole steps, threads included).

The two are timed in turns, round after round; each ratio is the median of the rounds' ratios.

    python benchmarks/layers.py [--batch 64] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone

import numpy as np
from speed import cpu_model  # benchmarks/speed.py, next to this script
from threadpoolctl import threadpool_info, threadpool_limits

from kannada.model import build_model
from minicnn.engine.kernels import DropoutKernel, make_kernel
from minicnn.layers import Dropout


def in_layout_of(values, like):
    """`values` copied into an array with the memory layout (strides order) of `like`."""
    out = np.empty_like(like)
    out[...] = values
    return out


def kernel_maker(layer, shape, dtype):
    """A function making the engine's kernel for `layer` on one chunk of `shape`. Dropout draws
    its mask there, for the whole chunk, as CPUEngine does before it splits a batch."""
    if isinstance(layer, Dropout):
        return lambda: DropoutKernel(layer, layer.draw_mask(shape, dtype))
    return lambda: make_kernel(layer)


def prepare(model, x, rng):
    """Per layer: (name, plain step, engine step), each a function running forward + backward
    on that layer's input, in its own chain of layouts."""
    steps = []
    h_plain, h_engine = x, x
    for index, layer in enumerate(model.layers):
        out_plain = layer.forward(h_plain, training=True)
        layer.pop_cache()
        make = kernel_maker(layer, h_plain.shape, h_plain.dtype)
        out_engine = make().forward(h_engine, True)
        dy = rng.standard_normal(out_plain.shape).astype(np.float32)
        dy_engine = in_layout_of(dy, out_engine)

        def plain(layer=layer, h=h_plain, dy=dy):
            layer.forward(h, training=True)
            layer.backward(dy)

        def engine(make=make, h=h_engine, dy=dy_engine, input_gradient=index > 0):
            kernel = make()
            kernel.forward(h, True)
            kernel.backward(dy, input_gradient=input_gradient)

        steps.append((f"{layer.name} {tuple(h_plain.shape[1:])}", plain, engine))
        h_plain, h_engine = out_plain, out_engine
    return steps


def timed(step, calls: int) -> float:
    """Seconds per call of step(), after one untimed call."""
    step()
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64, help="images per batch (one chunk)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of timing in turns")
    parser.add_argument("--calls", type=int, default=2, help="timed calls per turn")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28), dtype=np.float32)
    model = build_model(seed=0)
    print("command:", " ".join([sys.executable, *sys.argv]))
    print("date:", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    print("cpu:", cpu_model())
    with threadpool_limits(limits=1, user_api="blas"):
        blas = [
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
        print(f"numpy {np.__version__}; BLAS {', '.join(blas)} on 1 thread; batch {args.batch}")
        print(f"{args.rounds} rounds, {args.calls} calls per turn; forward + backward per layer")
        print(
            f"{'layer (input shape)':32s}{'plain ms':>10s}{'engine ms':>11s}{'plain/engine':>14s}"
        )
        totals = {"plain": [0.0] * args.rounds, "engine": [0.0] * args.rounds}
        for name, plain, engine in prepare(model, x, rng):
            times = {"plain": [], "engine": []}
            for r in range(args.rounds):
                order = ("plain", "engine") if r % 2 == 0 else ("engine", "plain")
                for side in order:
                    seconds = timed(plain if side == "plain" else engine, args.calls)
                    times[side].append(seconds)
                    totals[side][r] += seconds
            ratios = [p / e for p, e in zip(times["plain"], times["engine"], strict=True)]
            print(
                f"{name:32s}{1000 * statistics.median(times['plain']):10.2f}"
                f"{1000 * statistics.median(times['engine']):11.2f}"
                f"{statistics.median(ratios):9.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            )
        ratios = [p / e for p, e in zip(totals["plain"], totals["engine"], strict=True)]
        print(
            f"{'all layers':32s}{1000 * statistics.median(totals['plain']):10.2f}"
            f"{1000 * statistics.median(totals['engine']):11.2f}"
            f"{statistics.median(ratios):9.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed benchmark: minicnn against PyTorch on the CPU, for the default Kannada model (seed-cnn).

minicnn runs twice: on its CPU engine (model.use_engine(CPUEngine(threads=2)), what kannada
uses) and on its plain layers (the code the course teaches, and the GPU path).

Prints a table (and writes JSON with --json PATH). Not a test: figures depend on the machine and
its load, so compare the ratios measured side by side in one run. The contestants are timed in
turns (round after round, one chunk each), and each ratio is the median of the rounds' ratios.

    python benchmarks/speed.py                 # everything
    python benchmarks/speed.py --quick         # fewer repetitions
    python benchmarks/speed.py --no-torch      # minicnn only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc

import numpy as np

import minicnn
from kannada.augment import Augmenter
from kannada.model import build_model
from kannada.zca import ZCA

BATCH = 128
THREADS = 2  # minicnn's engine and PyTorch get the same number of threads


def interleaved_rates(steps: dict, images_per_call: int, rounds: int, calls: int, warmup=2):
    """Items per second of each step function, measured in turns: every round times one chunk
    of `calls` calls of each step, rotating the order from round to round.

    The machine's speed drifts (other tenants, clock changes); timing the contestants one after
    the other would let that drift into their ratio. In turns, each round's ratio compares
    chunks measured seconds apart. Each chunk starts with one untimed call, so that threads
    the previous contestant left spinning (OpenMP, OpenBLAS) have gone quiet before the clock
    starts. Returns {name: [rate of round 1, rate of round 2, ...]}.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    names = list(steps)
    rates = {name: [0.0] * rounds for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            steps[name]()  # untimed lead-in
            start = time.perf_counter()
            for _ in range(calls):
                steps[name]()
            rates[name][r] = images_per_call * calls / (time.perf_counter() - start)
    return rates


# -- minicnn ---------------------------------------------------------------------------------
def minicnn_steps(x, y, engine: minicnn.CPUEngine | None):
    model = build_model(seed=0)
    model.compile(minicnn.Adam())
    model.use_engine(engine)
    one = x[:1]
    return {
        "train": lambda: model.train_step(x, y),
        "infer": lambda: model.forward(x, training=False),
        "predict_1": lambda: model.predict(one),
    }, model


def with_blas_threads(steps: dict, threads: int) -> dict:
    """The steps run with BLAS on `threads` threads: the plain layers get their speed from
    BLAS's own threads, which the engine (chosen for the other model) limits to one."""
    from threadpoolctl import threadpool_limits

    def limited(step):
        def run():
            with threadpool_limits(limits=threads, user_api="blas"):
                step()

        return run

    return {name: limited(step) for name, step in steps.items()}


def step_peak_allocation_mb(model, x, y) -> float:
    """Peak memory allocated during one training step (NumPy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    model.train_step(x, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


# -- PyTorch ---------------------------------------------------------------------------------
def torch_steps(x, y, channels_last: bool):
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding="same"),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Conv2d(32, 64, 3, padding="same"),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 256),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(256, 10),
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()

    def train_step():
        net.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(xt), yt)
        loss.backward()
        optimizer.step()

    def infer_step():
        net.eval()
        with torch.no_grad():
            net(xt)

    one = xt[:1]

    def predict_one():
        net.eval()
        with torch.no_grad():
            torch.softmax(net(one), dim=1).numpy()

    return {"train": train_step, "infer": infer_step, "predict_1": predict_one}


# -- data pipeline ---------------------------------------------------------------------------
def bench_pipeline(rng):
    images = rng.random((60000, 1, 28, 28), dtype=np.float32)
    augmenter = Augmenter()
    start = time.perf_counter()
    for i in range(0, len(images), BATCH):
        augmenter(images[i : i + BATCH], rng)
    augment_s = time.perf_counter() - start
    start = time.perf_counter()
    ZCA().fit(images)
    zca_s = time.perf_counter() - start
    return {"augment_60k_s": augment_s, "zca_fit_60k_s": zca_s}


def cpu_model() -> str:
    """The processor's name (from /proc/cpuinfo on Linux), with its widest vector extension."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or "unknown"
    name = next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    flags = next(
        (line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")),
        [],
    )
    widest = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({widest})"


def machine_info(engine: minicnn.CPUEngine):
    from threadpoolctl import threadpool_info

    blas = [
        {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "minicnn_engine": engine.describe(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }


def side_by_side(contestants: dict, x, rounds: int, calls: int) -> dict:
    """Train, inference and single-image figures for every contestant, each measured in turns."""
    results = {name: {} for name in contestants}
    for task, per_call, task_calls in (
        ("train", len(x), calls),
        ("infer", len(x), calls),
        ("predict_1", 1, 20 * calls),
    ):
        steps = {name: steps[task] for name, steps in contestants.items()}
        for name, rates in interleaved_rates(steps, per_call, rounds, task_calls).items():
            results[name][f"{task}_rounds"] = rates
            if task == "predict_1":
                results[name]["predict_1_ms"] = 1000 / statistics.median(rates)
            else:
                results[name][f"{task}_img_s"] = statistics.median(rates)
    return results


def ratio_summary(mine: dict, theirs: dict, task: str) -> dict:
    """The median of the per-round ratios mine/theirs and their range."""
    ratios = [a / b for a, b in zip(mine[f"{task}_rounds"], theirs[f"{task}_rounds"], strict=True)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (noisier)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument(
        "--no-plain", action="store_true", help="skip minicnn's plain layers (the slowest part)"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    rounds, calls = (3, 2) if args.quick else (9, 3)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)

    engine = minicnn.CPUEngine(threads=THREADS)
    minicnn_calls, model = minicnn_steps(x, y, engine)
    results = {"machine": machine_info(engine), "command": " ".join([sys.executable, *sys.argv])}
    for _ in range(5):  # minicnn's own peak, before PyTorch and the 60k-image data are loaded
        minicnn_calls["train"]()
        minicnn_calls["infer"]()
    results["minicnn_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    contestants = {"minicnn": minicnn_calls}
    if not args.no_plain:
        contestants["minicnn_plain"] = with_blas_threads(minicnn_steps(x, y, None)[0], THREADS)
    try:
        import torch  # noqa: F401

        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
    if have_torch:
        contestants["torch_channels_last"] = torch_steps(x, y, channels_last=True)
        contestants["torch_nchw"] = torch_steps(x, y, channels_last=False)
    results.update(side_by_side(contestants, x, rounds, calls))
    m = results["minicnn"]
    m["train_step_peak_mb"] = step_peak_allocation_mb(model, x, y)
    results["pipeline"] = bench_pipeline(rng)
    results["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    epoch_s = 60000 / m["train_img_s"]
    print("cpu:", results["machine"]["cpu"])
    print("machine:", json.dumps(results["machine"]))
    print(
        f"{rounds} rounds; in each, 1 + {calls} calls of every contestant in turn (medians below)"
    )
    print(f"{'':28s}{'train img/s':>12s}{'infer img/s':>13s}{'1-image ms':>12s}")
    labels = {
        "minicnn": "minicnn (CPU engine)",
        "minicnn_plain": "minicnn (plain layers)",
        "torch_channels_last": "PyTorch channels_last",
        "torch_nchw": "PyTorch NCHW",
    }
    for name in contestants:
        r = results[name]
        print(
            f"{labels[name]:28s}{r['train_img_s']:12.0f}{r['infer_img_s']:13.0f}{r['predict_1_ms']:12.2f}"
        )
    for name in list(contestants)[1:]:
        summary = {
            task: ratio_summary(m, results[name], task) for task in ("train", "infer", "predict_1")
        }
        results[f"ratio_vs_{name}"] = summary
        text = "   ".join(
            f"{task} {r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"
            for task, r in summary.items()
            if task != "predict_1"
        )
        print(f"engine / {labels[name]:24s} {text}")
    p = results["pipeline"]
    print(f"60k-image epoch of training compute: {epoch_s:.0f} s")
    print(
        f"augmentation per 60k epoch: {p['augment_60k_s']:.2f} s ({100 * p['augment_60k_s'] / epoch_s:.1f}% of the epoch)"
    )
    print(f"ZCA fit on 60k images: {p['zca_fit_60k_s']:.2f} s")
    print(
        f"training step peak allocation: {m['train_step_peak_mb']:.0f} MiB; process peak RSS "
        f"{results['minicnn_peak_rss_mb']:.0f} MiB training minicnn, "
        f"{results['process_peak_rss_mb']:.0f} MiB at the end (with the 60k-image data"
        f"{' and PyTorch' if have_torch else ''})"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
        print("wrote", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

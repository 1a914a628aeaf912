"""Speed benchmark: minicnn against PyTorch on the CPU, for the default Kannada model (seed-cnn).

Prints a table (and writes JSON with --json PATH). Not a test: figures depend on the machine and
its load, so compare the ratios measured side by side in one run.

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


def median_throughput(
    step, images_per_call: int, chunks: int, calls_per_chunk: int, warmup: int = 2
) -> float:
    """Images per second: the median over `chunks` timed chunks of `calls_per_chunk` calls each."""
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(chunks):
        start = time.perf_counter()
        for _ in range(calls_per_chunk):
            step()
        rates.append(images_per_call * calls_per_chunk / (time.perf_counter() - start))
    return statistics.median(rates)


def median_seconds(call, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- minicnn ---------------------------------------------------------------------------------
def bench_minicnn(x, y, chunks, calls):
    model = build_model(seed=0)
    model.compile(minicnn.Adam())
    train = median_throughput(lambda: model.train_step(x, y), len(x), chunks, calls)
    infer = median_throughput(lambda: model.forward(x, training=False), len(x), chunks, calls)
    one = x[:1]
    latency = median_seconds(lambda: model.predict(one), repeats=50)
    # Peak memory allocated during one training step (NumPy reports its buffers to tracemalloc).
    tracemalloc.start()
    model.train_step(x, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "train_img_s": train,
        "infer_img_s": infer,
        "predict_1_ms": latency * 1000,
        "train_step_peak_mb": peak / 2**20,
    }


# -- PyTorch ---------------------------------------------------------------------------------
def bench_torch(x, y, chunks, calls, channels_last: bool):
    import torch
    from torch import nn

    torch.set_num_threads(2)
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

    return {
        "train_img_s": median_throughput(train_step, len(x), chunks, calls),
        "infer_img_s": median_throughput(infer_step, len(x), chunks, calls),
        "predict_1_ms": median_seconds(predict_one, repeats=50) * 1000,
    }


# -- data pipeline ---------------------------------------------------------------------------
def bench_pipeline(rng):
    images = rng.random((60000, 1, 28, 28), dtype=np.float32)
    augmenter = Augmenter()
    augment_s = median_seconds(
        lambda: [augmenter(images[i : i + BATCH], rng) for i in range(0, len(images), BATCH)],
        repeats=1,
        warmup=0,
    )
    zca_s = median_seconds(lambda: ZCA().fit(images), repeats=1, warmup=0)
    return {"augment_60k_s": augment_s, "zca_fit_60k_s": zca_s}


def machine_info():
    from threadpoolctl import threadpool_info

    blas = [
        {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "minicnn_threads": minicnn.parallel.get_num_threads(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (noisier)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    chunks, calls = (3, 2) if args.quick else (7, 3)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)

    results = {"machine": machine_info(), "command": " ".join([sys.executable, *sys.argv])}
    results["minicnn"] = bench_minicnn(x, y, chunks, calls)
    try:
        import torch  # noqa: F401

        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
    if have_torch:
        results["torch_channels_last"] = bench_torch(x, y, chunks, calls, channels_last=True)
        results["torch_nchw"] = bench_torch(x, y, chunks, calls, channels_last=False)
    results["pipeline"] = bench_pipeline(rng)
    results["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    m = results["minicnn"]
    epoch_s = 60000 / m["train_img_s"]
    print("machine:", json.dumps(results["machine"]))
    print(f"{'':28s}{'train img/s':>12s}{'infer img/s':>13s}{'1-image ms':>12s}")
    rows = [("minicnn", m)]
    if have_torch:
        rows += [
            ("PyTorch channels_last", results["torch_channels_last"]),
            ("PyTorch NCHW", results["torch_nchw"]),
        ]
    for name, r in rows:
        print(
            f"{name:28s}{r['train_img_s']:12.0f}{r['infer_img_s']:13.0f}{r['predict_1_ms']:12.2f}"
        )
    if have_torch:
        for name in ("torch_channels_last", "torch_nchw"):
            t = results[name]
            results[f"ratio_vs_{name}"] = {
                "train": m["train_img_s"] / t["train_img_s"],
                "infer": m["infer_img_s"] / t["infer_img_s"],
            }
            r = results[f"ratio_vs_{name}"]
            print(f"minicnn / {name:18s} train {r['train']:.2f}x   inference {r['infer']:.2f}x")
    p = results["pipeline"]
    print(f"60k-image epoch of training compute: {epoch_s:.0f} s")
    print(
        f"augmentation per 60k epoch: {p['augment_60k_s']:.2f} s ({100 * p['augment_60k_s'] / epoch_s:.1f}% of the epoch)"
    )
    print(f"ZCA fit on 60k images: {p['zca_fit_60k_s']:.2f} s")
    print(
        f"training step peak allocation: {m['train_step_peak_mb']:.0f} MiB; process peak RSS {results['process_peak_rss_mb']:.0f} MiB"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
        print("wrote", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

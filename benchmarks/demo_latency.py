"""Latency of the demo's prediction through its HTTP API: p50/p99 for one client and for 8.

Run: python benchmarks/demo_latency.py [--model PATH] [--requests 200] [--clients 8]
Starts `python -m kannada.demo` on 127.0.0.1 as its own process (so the clients do not share
its interpreter lock). One request is what a page or script sends for a new drawing through
Gradio's HTTP API: upload the canvas PNG, call /predict, read the result stream (three HTTP
round trips, with httpx). For reference, the same through gradio_client, whose own machinery
costs about 100 ms a call. Target: p50 <= 50 ms for one client. Not a test: it prints a table
with the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

from kannada.demo import DigitReader, choose_model

CANVAS = 420


def drawn_zero(path: Path) -> Path:
    """A canvas PNG with ೦ (an oval) in black ink on a transparent background."""
    image = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((130, 70, 290, 350), outline=(0, 0, 0, 255), width=28)
    image.save(path)
    return path


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    """(p50, p99, mean) in milliseconds."""
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.mean())


def http_predict(http: httpx.Client, url: str, png: bytes) -> str:
    """One prediction through Gradio's HTTP API; returns the predicted class name.

    Upload the canvas PNG, start /predict with it as the Sketchpad's composite, then read the
    server-sent events until "complete" (an "error" event raises).
    """
    uploaded = http.post(f"{url}gradio_api/upload", files={"files": ("canvas.png", png)})
    uploaded.raise_for_status()
    composite = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}
    value = {"background": None, "layers": [], "composite": composite, "id": None}
    call = http.post(f"{url}gradio_api/call/predict", json={"data": [value]})
    call.raise_for_status()
    stream = http.get(f"{url}gradio_api/call/predict/{call.json()['event_id']}").text
    event, _, data = stream.strip().rpartition("data:")
    if "event: complete" not in event:
        raise RuntimeError(f"/predict did not complete: {stream[:200]}")
    return json.loads(data)[0]["label"]


def timed_requests(send, count: int, out: list[float], failures: list[str]) -> None:
    """Call send() `count` times one after another; append each latency (s) to `out`."""
    for _ in range(count):
        start = time.perf_counter()
        try:
            send()
        except Exception as error:  # a benchmark counts failures instead of stopping
            failures.append(f"{type(error).__name__}: {error}")
            continue
        out.append(time.perf_counter() - start)


def concurrently(sends: list, count: int, failures: list[str]) -> tuple[list[float], float]:
    """`count` requests shared among one thread per send function; (latencies, wall time)."""
    latencies: list[float] = []
    threads = [
        threading.Thread(
            target=timed_requests, args=(send, count // len(sends), latencies, failures)
        )
        for send in sends
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_demo(model: Path, port: int) -> subprocess.Popen:
    """python -m kannada.demo on 127.0.0.1:port; returns once it accepts connections."""
    server = subprocess.Popen(
        [sys.executable, "-m", "kannada.demo", "--model", str(model), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the demo exited with code {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the demo did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model.npz or latest (default: as python -m kannada.demo)")
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    model = choose_model(args.model)
    reader = DigitReader.from_file(model)
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as folder:
        picture = drawn_zero(Path(folder) / "zero.png")
        png = picture.read_bytes()

        # The handler alone, no HTTP: what the network and the preprocessing cost.
        direct: list[float] = []
        timed_requests(lambda: reader.read(picture), args.requests, direct, failures)
        rows.append(("handler only (no HTTP)", direct, None))

        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        server = start_demo(model, port)
        try:
            with httpx.Client(timeout=60) as http:
                answer = http_predict(http, url, png)  # also the warm-up
                print(f"the demo reads the drawn zero as {answer!r}")
                one: list[float] = []
                start = time.perf_counter()
                timed_requests(lambda: http_predict(http, url, png), args.requests, one, failures)
                rows.append(("HTTP API, 1 client", one, time.perf_counter() - start))

            # One connection pool per client thread, as separate users would have.
            sessions = [httpx.Client(timeout=60) for _ in range(args.clients)]
            sends = [
                lambda session=session: http_predict(session, url, png) for session in sessions
            ]
            many, wall = concurrently(sends, args.requests, failures)
            rows.append((f"HTTP API, {args.clients} clients", many, wall))
            for session in sessions:
                session.close()

            client = Client(url, verbose=False, download_files=False)
            value = {"background": None, "layers": [], "composite": handle_file(str(picture))}
            reference: list[float] = []
            start = time.perf_counter()
            timed_requests(
                lambda: client.predict(value, api_name="/predict"),
                args.requests,
                reference,
                failures,
            )
            rows.append(("gradio_client, 1 client", reference, time.perf_counter() - start))
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(f"model: {model}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"{'scenario':<26} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>7}"
    )
    for name, seconds, wall in rows:
        p50, p99, mean = percentiles(seconds)
        rate = f"{len(seconds) / wall:7.1f}" if wall else f"{'-':>7}"
        print(f"{name:<26} {len(seconds):>8} {p50:8.1f} {p99:8.1f} {mean:8.1f} {rate}")
    if failures:
        print(f"{len(failures)} requests failed, e.g. {failures[0]}")
    p50_one = statistics.median(rows[1][1]) * 1000
    verdict = "met" if p50_one <= 50 else "NOT met"
    print(f"target p50 <= 50 ms for one client: {verdict} ({p50_one:.1f} ms)")


if __name__ == "__main__":
    main()

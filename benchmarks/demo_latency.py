"""Latency of the demo's prediction, inside panels included, through its HTTP API: p50/p99 for
one client and for 8, and errors through gradio_client with 8 clients sending the same drawing.

Run: python benchmarks/demo_latency.py [--model PATH] [--requests 200] [--clients 8]
                                       [--client-calls 25] [--url URL]
Starts `python -m kannada.demo` on 127.0.0.1 as its own process (so the clients do not share
its interpreter lock), or measures the demo already running at --url. One request is what a
page or script sends for a new drawing through Gradio's HTTP API: upload the canvas PNG, call
/predict, read the result stream (three HTTP round trips, with httpx); the answer holds the
label and every panel (the pictures are inside the HTML, so there is nothing more to fetch).
Each HTTP client sends its own session hash with its calls, as a page (one per visit) and
gradio_client (one per Client) do; --no-session leaves it out, as a bare curl call would, and
Gradio then builds a new session state (a copy of every component's settings) for each call.
The gradio_client rows are 8 clients x --client-calls calls with one drawing for all: Gradio
once served identical output pictures from one file rewritten while it was read, and a few
requests failed. The clients run on the same machine as the demo. Targets on 2 cores: one
client p50 <= 40 ms, 8 clients p50 <= 100 ms, no errors. Not a test: it prints a table with
the CPU and the machine's load, and for each row how many cores other processes kept busy
meanwhile (its "others" column: a figure measured beside other work is no quiet machine's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

from kannada.demo import DigitReader, choose_model

CANVAS = 420
TARGETS = {"HTTP API, 1 client": 40.0, "HTTP API, 8 clients": 100.0}  # p50, milliseconds


def drawn_zero(path: Path) -> Path:
    """A canvas PNG with ೦ (an oval) in black ink on a transparent background."""
    image = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((130, 70, 290, 350), outline=(0, 0, 0, 255), width=28)
    image.save(path)
    return path


def cpu_model() -> str:
    """The CPU's name as /proc/cpuinfo gives it (else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(now, CPU seconds the cores have been busy, CPU seconds of this process and its
    descendants: the demo and its network process), from Linux's /proc; None elsewhere."""
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
        parents, used = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process has ended
                continue
            pid = int(stat.parent.name)
            parents[pid], used[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None
    ours = {os.getpid()}
    while True:
        children = {pid for pid, parent in parents.items() if parent in ours} - ours
        if not children:
            break
        ours |= children
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and waiting for the disk
    tick = os.sysconf("SC_CLK_TCK")
    return time.perf_counter(), busy / tick, sum(used.get(pid, 0) for pid in ours) / tick


def others_since(start: tuple[float, float, float] | None) -> float | None:
    """How many cores other processes (and the hypervisor, as steal time) kept busy since the
    cpu_snapshot `start`, on average; None when unknown."""
    end = cpu_snapshot()
    if start is None or end is None:
        return None
    seconds = end[0] - start[0]
    return max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / seconds


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    """(p50, p99, mean) in milliseconds (NaN when there are none)."""
    if not seconds:
        return float("nan"), float("nan"), float("nan")
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.mean())


def http_predict(http: httpx.Client, url: str, png: bytes, session: str | None) -> list:
    """One prediction through Gradio's HTTP API; returns the outputs (label, seen, status,
    looked, blocks).

    Upload the canvas PNG, start /predict with it as the Sketchpad's composite (in the
    client's session, unless session is None), then read the server-sent events until
    "complete" (an "error" event raises).
    """
    uploaded = http.post(f"{url}gradio_api/upload", files={"files": ("canvas.png", png)})
    uploaded.raise_for_status()
    composite = {"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}
    value = {"background": None, "layers": [], "composite": composite, "id": None}
    body = {"data": [value]} if session is None else {"data": [value], "session_hash": session}
    call = http.post(f"{url}gradio_api/call/predict", json=body)
    call.raise_for_status()
    stream = http.get(f"{url}gradio_api/call/predict/{call.json()['event_id']}").text
    event = None
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:") and event == "complete":
            return json.loads(line.removeprefix("data:"))
    raise RuntimeError(f"/predict did not complete: {stream[:200]}")


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


def check_panels(outputs: list) -> str:
    """The predicted class name, after checking that the answer carries the inside panels."""
    label, _, _, looked, blocks = outputs
    if "data:image/png" not in looked or blocks.count("data:image/png") < 1:
        raise RuntimeError("the demo's answer has no inside panels (is it an older demo?)")
    return label["label"]


def session_hashes(count: int, args) -> list[str | None]:
    """One session hash per client (None for each with --no-session)."""
    return [None if args.no_session else uuid.uuid4().hex for _ in range(count)]


def measure_http(url: str, png: bytes, args, rows: list, failures: dict) -> None:
    """The HTTP API rows: one client, then --clients clients with a connection pool each."""
    [session] = session_hashes(1, args)
    with httpx.Client(timeout=60) as http:
        answer = check_panels(http_predict(http, url, png, session))  # also the warm-up
        print(f"the demo reads the drawn zero as {answer!r}, with the inside panels")
        one: list[float] = []
        name = "HTTP API, 1 client"
        failures[name] = []
        start, cpu = time.perf_counter(), cpu_snapshot()
        timed_requests(
            lambda: http_predict(http, url, png, session), args.requests, one, failures[name]
        )
        rows.append((name, one, time.perf_counter() - start, others_since(cpu)))

    clients = [httpx.Client(timeout=60) for _ in range(args.clients)]
    sends = [
        lambda http=http, session=session: http_predict(http, url, png, session)
        for http, session in zip(clients, session_hashes(args.clients, args), strict=True)
    ]
    name = f"HTTP API, {args.clients} clients"
    failures[name] = []
    cpu = cpu_snapshot()
    many, wall = concurrently(sends, args.requests, failures[name])
    rows.append((name, many, wall, others_since(cpu)))
    for http in clients:
        http.close()


def measure_gradio_client(url: str, picture: Path, args, rows: list, failures: dict) -> None:
    """--clients gradio_client clients, --client-calls calls each, all with the same drawing
    (the client downloads any file in the answer, as a script would)."""
    from gradio_client import Client, handle_file

    value = {"background": None, "layers": [], "composite": handle_file(str(picture))}
    clients = [Client(url, verbose=False) for _ in range(args.clients)]
    sends = [lambda client=client: client.predict(value, api_name="/predict") for client in clients]
    name = f"gradio_client, {args.clients} x {args.client_calls}"
    failures[name] = []
    cpu = cpu_snapshot()
    latencies, wall = concurrently(sends, args.clients * args.client_calls, failures[name])
    rows.append((name, latencies, wall, others_since(cpu)))


def print_table(rows: list, failures: dict, load_start: float) -> None:
    print(f"{'scenario':<26} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} ", end="")
    print(f"{'mean ms':>8} {'req/s':>7} {'others':>6}")
    for name, seconds, wall, others in rows:
        p50, p99, mean = percentiles(seconds)
        rate = f"{len(seconds) / wall:7.1f}" if wall else f"{'-':>7}"
        errors = len(failures.get(name, []))
        busy = f"{others:6.2f}" if others is not None else f"{'-':>6}"
        print(
            f"{name:<26} {len(seconds) + errors:>8} {errors:>6} {p50:8.1f} {p99:8.1f} "
            f"{mean:8.1f} {rate} {busy}"
        )
    for name, problems in failures.items():
        if problems:
            print(f"{name}: {len(problems)} failed, e.g. {problems[0]}")
    print(
        "others: the cores that other processes (and the hypervisor) kept busy during the row, "
        "on average; the figures are those of a quiet machine only when it is near 0"
    )
    print(
        f"load average (1 min): {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
        f"end, on {os.cpu_count()} cores ({cpu_model()})"
    )
    for name, target in TARGETS.items():
        seconds = next((s for row, s, _, _ in rows if row == name), None)
        if seconds:
            p50 = percentiles(seconds)[0]
            verdict = "met" if p50 <= target else "NOT met"
            print(f"target p50 <= {target:.0f} ms for {name}: {verdict} ({p50:.1f} ms)")
    errors = sum(len(problems) for problems in failures.values())
    print(f"target no errors: {'met' if errors == 0 else 'NOT met'} ({errors} errors)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model.npz or latest (default: as python -m kannada.demo)")
    parser.add_argument("--requests", type=int, default=200, help="requests per HTTP scenario")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--client-calls", type=int, default=25, help="calls per gradio_client client"
    )
    parser.add_argument("--url", help="measure the demo running at this address instead")
    parser.add_argument(
        "--no-session",
        action="store_true",
        help="HTTP calls without a session hash (each call then gets a new session)",
    )
    args = parser.parse_args()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    load_start = os.getloadavg()[0]
    model = choose_model(args.model)
    reader = DigitReader.from_file(model)
    rows, failures = [], {"handler only (no HTTP)": []}
    with tempfile.TemporaryDirectory() as folder:
        picture = drawn_zero(Path(folder) / "zero.png")

        # The handler alone, no HTTP: what preparing, the network and the panels cost.
        direct: list[float] = []
        cpu = cpu_snapshot()
        timed_requests(
            lambda: reader.read(picture).outputs(),
            args.requests,
            direct,
            failures["handler only (no HTTP)"],
        )
        rows.append(("handler only (no HTTP)", direct, None, others_since(cpu)))

        server = None
        if args.url:
            url = args.url.rstrip("/") + "/"
        else:
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            server = start_demo(model, port)
        try:
            measure_http(url, picture.read_bytes(), args, rows, failures)
            measure_gradio_client(url, picture, args, rows, failures)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)

    print(f"model: {model}" + (f"; demo at {url}" if args.url else ""))
    print_table(rows, failures, load_start)


if __name__ == "__main__":
    main()

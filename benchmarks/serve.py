"""``xaicli serve`` under concurrent clients, against the batched throughput of the same model.

In one run: (1) the floor -- the pipeline's runner on batches of 16 in this process (images/s of
``Pipeline.records`` on decoded chest images, for predict and for Grad-CAM); (2) the real
``xaicli serve`` in a child process on a free loopback port, and 1, 4 and 16 concurrent clients
(asyncio + httpx, one connection each) each sending the shipped chest test images to ``/predict``
and ``/explain?method=gradcam`` in turn, a fixed number of requests per level: requests/s, p50
and p95 latency, and the mean batch the service ran. Client and server share the machine's cores.

    python benchmarks/serve.py --requests 240
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "sample_data" / "models" / "chest" / "model.keras"
IMAGES = sorted((ROOT / "sample_data" / "chest" / "test").rglob("*.png"))


def batched_floor(method: str | None, rounds: int, batch: int = 16) -> float:
    """Images/s of the pipeline on batches of ``batch`` decoded images (the runner's best case)."""
    import xaicli
    from xaicli.io import Source, read_image
    from xaicli.pipeline.run import Pipeline, make_methods

    loaded = xaicli.load_model(MODEL)
    pipeline = Pipeline(loaded, make_methods([method]) if method else [], batch_size=batch)
    images = [read_image(p) for p in IMAGES]
    sources = [Source(None, None, f"i{k}", images[k % len(images)]) for k in range(batch * rounds)]
    list(pipeline.records(sources[:batch]))  # traced and warm
    started = time.perf_counter()
    count = sum(1 for _ in pipeline.records(sources))
    return count / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load(url: str, route: str, clients: int, requests: int, payloads: list[bytes]) -> tuple[float, list[float]]:
    """``requests`` requests from ``clients`` concurrent clients; (seconds, latencies)."""
    import httpx

    latencies: list[float] = []
    counter = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        for k in counter:
            started = time.perf_counter()
            response = await http.post(route, files={"image": ("x.png", payloads[k % len(payloads)], "image/png")})
            if response.status_code != 200:
                raise RuntimeError(f"{route}: {response.status_code} {response.text[:200]}")
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return time.perf_counter() - started, latencies


def main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=240, help="requests per route and concurrency level")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--max-wait-ms", default="5")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    load_before = os.getloadavg()[0]
    floors = {"predict": batched_floor(None, max(1, args.requests // 16)),
              "explain gradcam": batched_floor("gradcam", max(1, args.requests // 16))}
    for name, value in floors.items():
        print(f"batched floor, {name}: {value:.1f} images/s (pipeline, batches of 16)", flush=True)
    payloads = [p.read_bytes() for p in IMAGES]
    port = free_port()
    xaicli = shutil.which("xaicli")
    command = [xaicli] if xaicli else [sys.executable, "-m", "xaicli"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="xaicli-bench-serve-") as scratch:
        server = subprocess.Popen([*command, "serve", "--model", str(MODEL), "--port", str(port), "--temp-dir", scratch,
                                   "--max-wait-ms", args.max_wait_ms, "--queue-size", "256", "--log-level", "warning"],
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(url + "/ready", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("xaicli serve did not become ready")
                time.sleep(0.2)
            for route, name in (("/predict", "predict"), ("/explain?method=gradcam", "explain gradcam")):
                asyncio.run(load(url, route, 4, 32, payloads))  # warm: every batch size traced once
                for clients in levels:
                    before = httpx.get(url + "/ready").json()["batched"]
                    seconds, latencies = asyncio.run(load(url, route, clients, args.requests, payloads))
                    after = httpx.get(url + "/ready").json()["batched"]
                    batch = (after["images"] - before["images"]) / max(1, after["batches"] - before["batches"])
                    rate = len(latencies) / seconds
                    p50, p95 = np.percentile(np.asarray(latencies) * 1000.0, [50, 95])
                    rows.append((name, clients, rate, p50, p95, batch, rate / floors[name]))
                    print(f"{name:16s} {clients:3d} clients: {rate:7.1f} req/s  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
                          f"mean batch {batch:5.1f}  {rate / floors[name]:.0%} of the batched floor", flush=True)
        finally:
            server.terminate()
            server.wait(60)
    print("\n| route | clients | requests/s | p50 ms | p95 ms | mean batch | of the batched floor |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, clients, rate, p50, p95, batch, share in rows:
        print(f"| {name} | {clients} | {rate:.1f} | {p50:.1f} | {p95:.1f} | {batch:.1f} | {share:.0%} |")
    print("\n| batched floor (pipeline, batches of 16, same model, same run) | images/s |\n|---|---:|")
    for name, value in floors.items():
        print(f"| {name} | {value:.1f} |")
    print(f"\n{os.cpu_count()} CPUs; load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
          "(other processes on the machine take their share of the cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

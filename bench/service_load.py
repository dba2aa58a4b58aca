"""Loopback load test of ``POST /v1/predict``: latency and throughput with micro-batching on and off.

One server process loads the model once and serves two apps on two loopback ports: one batching
up to ``--max-batch`` images per model call, one with batching off (one request per call). This
process then sends the same fixed number of one-image requests to each at a fixed concurrency
(after an untimed warm-up) and stops by itself. A run at concurrency 1 gives the single-request
latency. Every non-200 answer counts as an error.

Image: the first HAM10000 photo of ../shared/data when present, else a random-pixel 600×450 JPEG.
The server gets a similar-case index of ``--index-cases`` random unit vectors, so every request
also pays for the search.

With ``--ddx-model DIR`` (a ``dermkit train ddx`` folder) the differential comes from that model,
at its stored number of test-time views, and each request is one case of ``--images-per-case``
photos (default 2 there) with a history (age, sex, body site, Fitzpatrick type); the result goes
to ``bench/results/service_load_ddx.json``.

    python bench/service_load.py [--model dermlip-lite] [--requests 200] [--concurrency 8]
    python bench/service_load.py --ddx-model RUN/model [--images-per-case 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dermkit.core.atomic import atomic_write_text
from dermkit.core.precision import precision_record, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
HAM_IMAGES = ROOT.parent / "shared" / "data" / "ham10000" / "images"
RESULT = ROOT / "bench" / "results" / "service_load.json"
RESULT_DDX = ROOT / "bench" / "results" / "service_load_ddx.json"
HISTORY = {"age": "55", "sex": "female", "site": "back", "fitzpatrick": "3"}
TARGET_P50_MS = 50.0
TARGET_RATIO = 2.0


def photo() -> tuple[bytes, str]:
    """The request image and where it came from."""
    if HAM_IMAGES.is_dir():
        first = min(HAM_IMAGES.glob("*.jpg"), default=None)
        if first is not None:
            return first.read_bytes(), f"ham10000 ({first.name})"
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, size=(450, 600, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), "synthetic 600x450 JPEG"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def serve_both(model: str, ports: tuple[int, int], max_batch: int, max_wait_ms: float, threads: int | None,
               index_cases: int, ddx_model: str | None = None) -> None:
    """Server process: one engine, a batching app on ``ports[0]`` and a non-batching one on ``ports[1]``."""
    import pandas as pd
    import uvicorn

    from dermkit.serve.app import create_app
    from dermkit.serve.config import ServeConfig
    from dermkit.serve.engine import Engine
    from dermkit.serve.index import build
    from dermkit.serve.server import configure_threads
    from dermkit.serve.similar import SimilarCases

    configure_threads(threads)
    config = ServeConfig(model=model, ddx_model=ddx_model, max_batch=max_batch, max_wait_ms=max_wait_ms,
                         threads=threads)
    loaded = Engine.load(config)
    vectors = np.random.default_rng(0).normal(size=(index_cases, loaded.vlm.embed_dim)).astype(np.float32)
    cases = pd.DataFrame({"case_id": [f"case-{i}" for i in range(index_cases)], "diagnosis_id": "melanoma"})
    similar = SimilarCases(build(vectors, cases, model=loaded.vlm.name))

    def app(settings: ServeConfig) -> Any:
        return create_app(Engine(loaded.vlm, loaded.bank, loaded.differential, similar, settings))

    servers = [uvicorn.Server(uvicorn.Config(app(settings), host="127.0.0.1", port=port, log_level="warning",
                                             access_log=False))
               for settings, port in ((config, ports[0]), (replace(config, max_batch=1), ports[1]))]

    async def run() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(run())


async def wait_ready(url: str, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")


async def load(url: str, image: bytes, requests: int, concurrency: int, images: int = 1,
               history: dict[str, str] | None = None) -> dict[str, Any]:
    """Send ``requests`` predictions of ``images`` photos (and ``history``) with ``concurrency`` in
    flight; latency and throughput."""
    import httpx

    latencies: list[float] = []
    errors = 0
    remaining = requests

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                response = await client.post(f"{url}/v1/predict", data=history or {},
                                             files=[("images", (f"photo{i}.jpg", image, "image/jpeg"))
                                                    for i in range(images)])
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    cuts = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    return {"requests": requests, "concurrency": concurrency, "p50_ms": round(float(cuts[0]), 1),
            "p95_ms": round(float(cuts[1]), 1), "p99_ms": round(float(cuts[2]), 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1), "rps": round(requests / elapsed, 2),
            "seconds": round(elapsed, 2), "errors": errors}


async def measure(args: argparse.Namespace, urls: tuple[str, str], image: bytes) -> dict[str, Any]:
    case = {"images": args.images_per_case, "history": HISTORY if args.ddx_model else None}
    for url in urls:
        await wait_ready(url, args.start_timeout)
        await load(url, image, args.warmup, args.concurrency, **case)  # untimed: first calls allocate and tune
    return {
        "single": await load(urls[1], image, args.single_requests, 1, **case),
        "batching_on": await load(urls[0], image, args.requests, args.concurrency, **case),
        "batching_off": await load(urls[1], image, args.requests, args.concurrency, **case),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dermlip-lite")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per mode")
    parser.add_argument("--single-requests", type=int, default=50, help="timed requests at concurrency 1")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the server (default: torch's)")
    parser.add_argument("--index-cases", type=int, default=10_000)
    parser.add_argument("--start-timeout", type=float, default=300)
    parser.add_argument("--ddx-model", help="a dermkit train ddx folder: it ranks the differential")
    parser.add_argument("--images-per-case", type=int, help="photos per request (default 1; 2 with --ddx-model)")
    parser.add_argument("--out", type=Path, help=f"default {RESULT.name}; {RESULT_DDX.name} with --ddx-model")
    args = parser.parse_args()
    args.images_per_case = args.images_per_case or (2 if args.ddx_model else 1)
    args.out = args.out or (RESULT_DDX if args.ddx_model else RESULT)

    image, image_source = photo()
    load_before = os.getloadavg()[0]  # other processes on the cores: batching only pays when the model has them
    ports = tuple(free_ports(2))
    context = mp.get_context("spawn")
    server = context.Process(target=serve_both, daemon=True,
                             args=(args.model, ports, args.max_batch, args.max_wait_ms, args.threads, args.index_cases,
                                   args.ddx_model))
    server.start()
    try:
        urls = (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
        runs = asyncio.run(measure(args, urls, image))  # type: ignore[arg-type]
    finally:
        server.terminate()
        server.join(timeout=30)

    on, off = runs["batching_on"], runs["batching_off"]
    from dermkit.models.families.ddx import load_ddx

    result = {
        "model": args.model,
        "ddx_model": None if args.ddx_model is None else {"path": args.ddx_model,
                                                          "test_time_views": load_ddx(args.ddx_model).tta},
        "images_per_case": args.images_per_case,
        "image": image_source,
        "p50_ms": runs["single"]["p50_ms"],
        "p99_ms": runs["single"]["p99_ms"],
        "rps": on["rps"],
        "errors": on["errors"] + off["errors"] + runs["single"]["errors"],
        "ratio": round(on["rps"] / off["rps"], 3),
        "note": "p50_ms/p99_ms: one request at a time; rps: batching on at the given concurrency; "
                "ratio: rps with batching over rps without",
        "targets": {"p50_ms": TARGET_P50_MS, "ratio": TARGET_RATIO},
        **precision_record(resolve_precision("auto")),  # the servers' --precision auto, decided on this machine
        **runs,
        "settings": {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "threads": args.threads,
                     "index_cases": args.index_cases, "warmup": args.warmup, "cpu_count": os.cpu_count(),
                     "load_1min_before": round(load_before, 2),
                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "machine": platform.machine(),
                     "python": platform.python_version()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("p50_ms", "p99_ms", "rps", "errors", "ratio")}))


if __name__ == "__main__":
    main()

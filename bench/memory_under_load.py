"""Peak memory of ``dermkit serve`` and ``dermkit collect serve`` under large-photo load, ours against today's.

Starts each real server as a subprocess on loopback (the CLI, as a user would), warms it with one
small request, then sends one fixed burst and stops by itself:

- ``serve``: ``--parallel`` (8) concurrent ``/v1/predict`` requests, each with ``--images`` (6)
  JPEGs of ``--serve-side``² (7000²) pixels;
- ``collect``: ``--parallel`` (8) concurrent ``/contribute`` posts (CSRF token and consent as the
  form sends them), each with one ``--collect-side``² (6300²) photo.

The server's RSS (``/proc/PID/status``) is sampled every 20 ms from before the burst until
``--settle`` seconds after it; the result has its peak growth over the pre-burst RSS, the RSS
growth left after the settle time, and the count of 200/201, 503 and other answers.

The baseline is the code at ``--baseline-ref`` (the merge base, default ``7a41653``), extracted
with ``git archive`` into a temporary folder and run the same way with ``PYTHONPATH`` pointing
there. A baseline server whose RSS grows past ``--baseline-cap-gb`` is killed (the machine is
shared): its peak is then a lower bound and ``killed_at_cap`` says so.

    python bench/memory_under_load.py [--model tiny-clip] [--parallel 8]

Writes ``bench/results/memory_under_load.json``: ours, baseline, ``ratio`` (baseline peak growth
over ours: higher is better), ``cpu_capability`` and ``precision``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dermkit.core.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "memory_under_load.json"
MEBIBYTE = 1024 * 1024
TARGET_PEAK_GROWTH_MB = 1536  # the issue: under 1.5 GB
TARGET_SETTLED_MB = 200  # and back to within 200 MB of the start
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def smooth_photo(side: int, seed: int, cell: int = 100) -> bytes:
    """A ``side``² JPEG of colour noise smoothed over ``cell`` pixels (about 2.3 MB at 7000², sharp enough
    for collect's blur check)."""
    from PIL import Image

    coarse = np.random.default_rng(seed).integers(0, 255, size=(side // cell, side // cell, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class Sampler:
    """Samples a process's RSS in a thread; kills the process if it grows past ``cap`` bytes."""

    pid: int
    start: int
    cap: int | None
    peak: int = 0
    killed: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:  # noqa: PYI034
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = rss_bytes(self.pid)
            if rss is None:
                return
            self.peak = max(self.peak, rss)
            if self.cap is not None and rss - self.start > self.cap and not self.killed:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)
                return
            time.sleep(0.02)


def start_server(command: list[str], pythonpath: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "dermkit.cli", *command], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=log.parent)


async def wait_until(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode} before {url} answered")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


async def predict_burst(base: str, warmed: asyncio.Event, go: asyncio.Event, photo: bytes, images: int,
                        parallel: int, warm: bytes) -> list[int | str]:
    """Warm up with one small request, signal ``warmed``, then on ``go`` send the burst; the statuses."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        warmup = await client.post("/v1/predict", files=[("images", ("w.jpg", warm, "image/jpeg"))])
        assert warmup.status_code == 200, warmup.text
        warmed.set()  # the caller reads the start RSS now

        async def one() -> int | str:
            try:
                files = [("images", (f"p{i}.jpg", photo, "image/jpeg")) for i in range(images)]
                return (await client.post("/v1/predict", files=files)).status_code
            except httpx.TransportError as error:
                return type(error).__name__

        await go.wait()
        return list(await asyncio.gather(*(one() for _ in range(parallel))))


async def contribute_burst(base: str, warmed: asyncio.Event, go: asyncio.Event, photo: bytes, parallel: int,
                           warm: bytes) -> list[int | str]:
    """As :func:`predict_burst`, each post from its own browser (cookie-bound CSRF token)."""
    import httpx

    from_form = await _form_fields(base)

    async def one(client: httpx.AsyncClient, fields: dict[str, str], data: bytes) -> int | str:
        try:
            return (await client.post("/contribute", data=fields, files={"image_1": ("p.jpg", data, "image/jpeg")})
                    ).status_code
        except httpx.TransportError as error:
            return type(error).__name__

    clients = [httpx.AsyncClient(base_url=base, timeout=300) for _ in range(parallel + 1)]
    try:
        fields = [await from_form(client) for client in clients]
        warmup = await one(clients[-1], fields[-1], warm)
        assert warmup == 201, warmup
        warmed.set()
        await go.wait()
        return list(await asyncio.gather(*(one(c, f, photo) for c, f in zip(clients[:-1], fields[:-1]))))
    finally:
        for client in clients:
            await client.aclose()


async def _form_fields(base: str) -> Any:
    """A function giving one browser's form fields: its CSRF token (cookie-bound) and the consent."""
    from dermkit.collect.questionnaire import CONSENT_VERSION

    async def fields(client: Any) -> dict[str, str]:
        page = await client.get("/contribute")
        match = TOKEN.search(page.text)
        assert page.status_code == 200 and match, page.text[:300]
        return {"csrf_token": match.group(1), "consent": "yes", "consent_version": CONSENT_VERSION}

    return fields


def measure(name: str, command: list[str], ready_path: str, port: int, pythonpath: Path, workdir: Path,
            burst: Any, settle_s: float, cap: int | None, ready_timeout_s: float) -> dict[str, Any]:
    """Start one server, burst it while sampling RSS, settle, stop it; the figures."""
    process = start_server(command, pythonpath, workdir / f"{name}.log")
    base = f"http://127.0.0.1:{port}"

    async def run() -> dict[str, Any]:
        warmed, go = asyncio.Event(), asyncio.Event()
        await wait_until(base + ready_path, process, ready_timeout_s)
        task = asyncio.create_task(burst(base, warmed, go))
        await asyncio.wait({task, asyncio.create_task(warmed.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the warm-up failed: raise its error
        await asyncio.sleep(1.0)  # let the warm-up's allocations settle
        start = rss_bytes(process.pid) or 0
        began = time.monotonic()
        with Sampler(process.pid, start, cap) as sampler:
            go.set()
            statuses = await task
            seconds = time.monotonic() - began
            await asyncio.sleep(settle_s)
        after = rss_bytes(process.pid)
        counts = Counter("ok" if s in (200, 201) else "503" if s == 503 else "other" for s in statuses)
        return {
            "requests": len(statuses), "ok": counts["ok"], "503": counts["503"], "other": counts["other"],
            "statuses": sorted(map(str, set(statuses))), "burst_seconds": round(seconds, 1),
            "start_rss_mb": round(start / MEBIBYTE), "peak_rss_mb": round(sampler.peak / MEBIBYTE),
            "peak_growth_mb": round((sampler.peak - start) / MEBIBYTE),
            "rss_after_mb": None if after is None else round(after / MEBIBYTE),
            "growth_after_mb": None if after is None else round((after - start) / MEBIBYTE),
            "settle_s": settle_s, "killed_at_cap": sampler.killed, "crashed": process.poll() is not None,
        }

    try:
        return asyncio.run(run())
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def baseline_tree(ref: str, into: Path) -> Path:
    """``src/`` of ``ref`` extracted with ``git archive`` (read-only on the repository)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_arm(name: str, pythonpath: Path, args: argparse.Namespace, work: Path, serve_photo: bytes,
            collect_photo: bytes, warm: bytes, cap: int | None) -> dict[str, Any]:
    arm = work / name
    arm.mkdir()
    serve_port, collect_port = free_port(), free_port()
    serve_cmd = ["serve", "--model", args.model, "--port", str(serve_port), "--cache-dir", str(work / "textbank")]
    collect_cmd = ["collect", "serve", "--db", f"sqlite:///{arm / 'collect.db'}", "--media", str(arm / "media"),
                   "--port", str(collect_port)]
    serve = measure(f"{name}-serve", serve_cmd, "/readyz", serve_port, pythonpath, arm,
                    lambda base, warmed, go: predict_burst(base, warmed, go, serve_photo, args.images, args.parallel, warm),
                    args.settle, cap, args.ready_timeout)
    print(f"{name} serve: {json.dumps(serve)}", flush=True)
    collect = measure(f"{name}-collect", collect_cmd, "/contribute", collect_port, pythonpath, arm,
                      lambda base, warmed, go: contribute_burst(base, warmed, go, collect_photo, args.parallel, warm),
                      args.settle, cap, args.ready_timeout)
    print(f"{name} collect: {json.dumps(collect)}", flush=True)
    return {"serve": serve, "collect": collect}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny-clip", help="served model (small: the load is the images)")
    parser.add_argument("--parallel", type=int, default=8, help="concurrent requests of each burst")
    parser.add_argument("--images", type=int, default=6, help="JPEGs per /v1/predict request")
    parser.add_argument("--serve-side", type=int, default=7000)
    parser.add_argument("--collect-side", type=int, default=6300)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the burst before the RSS is read")
    parser.add_argument("--baseline-ref", default="7a41653", help="git ref of today's behaviour")
    parser.add_argument("--baseline-cap-gb", type=float, default=6.0,
                        help="kill a baseline server whose RSS grows past this (shared machine)")
    parser.add_argument("--ready-timeout", type=float, default=240.0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    import torch

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dermkit-memory-bench-") as tmp:
        work = Path(tmp)
        serve_photo, collect_photo = smooth_photo(args.serve_side, 0), smooth_photo(args.collect_side, 1)
        warm = smooth_photo(600, 2, cell=10)
        ours = run_arm("ours", ROOT / "src", args, work, serve_photo, collect_photo, warm, cap=None)
        baseline_src = baseline_tree(args.baseline_ref, work / "baseline-tree")
        baseline = run_arm("baseline", baseline_src, args, work, serve_photo, collect_photo, warm,
                           cap=int(args.baseline_cap_gb * 1024 * MEBIBYTE))

    ratios = {server: round(baseline[server]["peak_growth_mb"] / max(1, ours[server]["peak_growth_mb"]), 2)
              for server in ("serve", "collect")}

    result = {
        "what": (f"{args.parallel} parallel /v1/predict requests of {args.images} x {args.serve_side}^2 JPEGs "
                 f"({len(serve_photo) / MEBIBYTE:.1f} MB each) to dermkit serve --model {args.model}, and "
                 f"{args.parallel} parallel /contribute posts of one {args.collect_side}^2 JPEG "
                 f"({len(collect_photo) / MEBIBYTE:.1f} MB) to dermkit collect serve; RSS of each server process"),
        "ours": ours,
        "baseline": {"ref": args.baseline_ref, "cap_mb": round(args.baseline_cap_gb * 1024), **baseline},
        "ratio": min(ratios.values()),
        "ratios": ratios,
        "note": "ratios: baseline peak RSS growth over ours per server (higher is better; a lower bound where the "
                "baseline was killed at its cap); ratio: the smaller of the two",
        "targets": {"peak_growth_mb": TARGET_PEAK_GROWTH_MB, "growth_after_mb": TARGET_SETTLED_MB},
        "met": all(ours[s]["peak_growth_mb"] < TARGET_PEAK_GROWTH_MB
                   and (ours[s]["growth_after_mb"] or 0) < TARGET_SETTLED_MB
                   and ours[s]["other"] == 0 and not ours[s]["crashed"] for s in ("serve", "collect")),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "precision": "auto (the service's default; bf16 only where the CPU runs it natively)",
        "settings": {"model": args.model, "parallel": args.parallel, "images": args.images,
                     "serve_side": args.serve_side, "collect_side": args.collect_side, "settle_s": args.settle,
                     "cpu_count": os.cpu_count(), "machine": platform.machine(),
                     "python": platform.python_version()},
        "seconds": round(time.monotonic() - began),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({"ratio": result["ratio"], "met": result["met"]}))


if __name__ == "__main__":
    main()

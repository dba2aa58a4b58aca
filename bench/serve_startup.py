"""Time from ``dermkit serve`` starting to ``/healthz`` and to ``/readyz`` answering 200, with and
without a prompt bank stored by ``dermkit index build``.

The baseline is the start without a stored bank (a fresh machine, empty prompt cache): before
the background loading, ``/healthz`` answered only once the whole bank was encoded, so its ready
time is also what a health check used to wait. The other start uses the index and bank that
``dermkit index build`` wrote for a small synthetic HAM10000 table. Each start is a fresh
interpreter running the real CLI on 127.0.0.1; the script stops each server itself.

    python bench/serve_startup.py [--model dermlip-lite]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from dermkit.core.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "serve_startup.json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed_start(model: str, *args: str, timeout_s: float) -> dict[str, Any]:
    """Start ``dermkit serve``; seconds to the first /healthz 200 and to the first /readyz 200."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "dermkit.cli", "serve", "--model", model, "--port", str(port),
                                *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    healthz = None
    try:
        while time.monotonic() - started < timeout_s and process.poll() is None:
            try:
                if healthz is None and httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    healthz = time.monotonic() - started
                if healthz is not None:
                    ready = httpx.get(url + "/readyz", timeout=5)
                    if ready.status_code == 200:
                        return {"healthz_s": round(healthz, 2), "ready_s": round(time.monotonic() - started, 2),
                                "parts": ready.json()["parts"]}
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"server did not get ready within {timeout_s} s (exit code {process.poll()})")
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dermlip-lite")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds one start may take")
    args = parser.parse_args()

    import torch

    from dermkit.cli import main as cli
    from dermkit.data.importers import run_import
    from dermkit.data.synthetic import write_synthetic_ham

    with tempfile.TemporaryDirectory(prefix="serve-startup-") as work:
        root = Path(work)
        run_import("ham10000", write_synthetic_ham(root / "raw", n_cases=12), root / "table")
        began = time.monotonic()
        assert cli(["index", "build", str(root / "table"), "--model", args.model, "--out", str(root / "index"),
                    "--cache-dir", str(root / "features")]) == 0
        index_build_s = round(time.monotonic() - began, 2)
        baseline = timed_start(args.model, "--cache-dir", str(root / "empty-cache-1"), timeout_s=args.timeout)
        ours = timed_start(args.model, "--index", str(root / "index"), "--cache-dir", str(root / "empty-cache-2"),
                           timeout_s=args.timeout)
    result = {
        "model": args.model,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "precision": "auto (bf16 image tower where native; the text bank is encoded in fp32)",
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "index_build_s": index_build_s,
        "ours_stored_bank": ours,
        "baseline_no_stored_bank": baseline,
        "ratio": round(baseline["ready_s"] / ours["ready_s"], 2),
        "ratio_means": "ready time without a stored bank over ready time with it (higher is better)",
        "command": "python bench/serve_startup.py --model " + args.model,
    }
    atomic_write_text(RESULT, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

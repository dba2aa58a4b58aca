"""``dermkit serve`` as a user starts it: a fresh interpreter running the real CLI under uvicorn on
127.0.0.1, with a similar-case index and prompt bank built by ``dermkit index build``.

It must answer ``/healthz`` within 5 s of the process starting, say on ``/readyz`` that it is
loading and then that it is ready, take the prompt bank from the index instead of encoding it,
refuse a bank built for other weights, and enforce an API key and a rate limit when given them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("open_clip")
httpx = pytest.importorskip("httpx")

from dermkit.cli import main
from dermkit.data.importers import run_import
from dermkit.data.synthetic import write_synthetic_ham
from dermkit.serve.textbank import BANK_INFO

REPO = Path(__file__).resolve().parents[2]
HEALTHZ_WITHIN_S = 5.0
READY_WITHIN_S = 180.0
KEY = "live-test-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Started:
    """A ``dermkit serve`` subprocess; records when /healthz first answered and every /readyz status."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "HF_HUB_OFFLINE": "1"}
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dermkit.cli", "serve", "--model", "tiny-clip", "--port", str(self.port), *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.readyz: list[int] = []
        self.log = ""

    def wait_healthz(self, timeout_s: float) -> float:
        """Seconds from process start to the first 200 of /healthz."""
        deadline = self.started + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        pytest.fail(f"/healthz did not answer within {timeout_s} s (exit code {self.process.poll()})")

    def wait_ready(self, timeout_s: float) -> dict[str, object]:
        """Poll /readyz until 200; the last body."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            response = httpx.get(self.url + "/readyz", timeout=5)
            self.readyz.append(response.status_code)
            if response.status_code == 200:
                return response.json()
            assert response.headers["retry-after"] == "5"
            assert response.json()["status"] == "loading", response.text
            time.sleep(0.1)
        pytest.fail(f"not ready within {timeout_s} s")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        self.log = self.process.communicate(timeout=30)[0]
        return self.log


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic HAM10000 table indexed, with its prompt bank, by ``dermkit index build``."""
    root = tmp_path_factory.mktemp("served")
    run_import("ham10000", write_synthetic_ham(root / "raw", n_cases=12), root / "table")
    assert main(["index", "build", str(root / "table"), "--model", "tiny-clip", "--out", str(root / "index"),
                 "--cache-dir", str(root / "features")]) == 0
    return root / "index"


@pytest.fixture
def servers() -> Iterator[list[Started]]:
    started: list[Started] = []
    yield started
    for server in started:
        server.stop()


def test_healthz_at_once_then_ready_with_the_stored_bank_and_the_key_and_limit_enforced(
    built: Path, tmp_path: Path, servers: list[Started]
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    cache = tmp_path / "textbank"
    server = Started("--index", str(built), "--cache-dir", str(cache), "--api-key-file", str(key_file),
                     "--rate-limit", "4/min")
    servers.append(server)
    assert server.wait_healthz(HEALTHZ_WITHIN_S) < HEALTHZ_WITHIN_S
    early = httpx.post(server.url + "/v1/embed", data={"text": "a mole"}, headers={"X-API-Key": KEY})
    ready = server.wait_ready(READY_WITHIN_S)
    assert server.readyz[0] == 503 and server.readyz[-1] == 200  # loading, then ready
    assert early.status_code == 503 and early.headers["retry-after"] == "5"
    assert ready["parts"]["prompt_bank"]["source"] == "index"  # type: ignore[index]
    assert not cache.exists()  # nothing was encoded, so nothing went to the prompt cache

    # the API key
    assert httpx.post(server.url + "/v1/embed", data={"text": "a mole"}).status_code == 401
    assert httpx.get(server.url + "/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
    models = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert models.status_code == 200 and models.json()["index"]["cases"] > 0
    schema = httpx.get(server.url + "/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    # the rate limit: at most 4 requests in a burst, whatever is left of this client's allowance
    burst = [httpx.get(server.url + "/v1/vocabulary", headers={"X-API-Key": KEY}) for _ in range(5)]
    assert burst[-1].status_code == 429 and int(burst[-1].headers["retry-after"]) >= 1
    assert httpx.get(server.url + "/healthz").status_code == 200  # health checks are never limited
    log = server.stop()
    assert f"prompt bank loaded from {built}" in log and "encoding" not in log


def test_restart_is_ready_from_the_stored_bank_and_stale_bank_is_refused(
    built: Path, tmp_path: Path, servers: list[Started]
) -> None:
    cache = tmp_path / "textbank"
    restarted = Started("--index", str(built), "--cache-dir", str(cache))
    servers.append(restarted)
    restarted.wait_healthz(HEALTHZ_WITHIN_S)
    ready = restarted.wait_ready(READY_WITHIN_S)
    assert ready["parts"]["prompt_bank"]["source"] == "index"  # type: ignore[index]
    assert not cache.exists()
    restarted.stop()

    stale = tmp_path / "stale-index"
    shutil.copytree(built, stale)
    info = json.loads((stale / BANK_INFO).read_text())
    (stale / BANK_INFO).write_text(json.dumps({**info, "weights": "f" * 64}))
    refused = Started("--index", str(stale), "--cache-dir", str(cache))
    servers.append(refused)
    assert refused.process.wait(timeout=READY_WITHIN_S) == 2
    log = refused.stop()
    assert "built for other weights" in log and "dermkit index build --model tiny-clip" in log
    assert "Traceback" not in log

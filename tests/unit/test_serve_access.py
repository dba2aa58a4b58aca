"""Readiness, API key and rate limit of the service, with FastAPI's TestClient around ``tiny-clip``.

The app loads its engine in the background (as ``dermkit serve`` does); a gate holds the loader
so the test sees the not-ready answers, then releases it and sees the service become ready.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("open_clip")

from fastapi.testclient import TestClient

from dermkit.core.errors import DermkitError, InputError
from dermkit.serve.access import PUBLIC_RATE_LIMIT, Rate, RateLimiter, exposure_defaults, parse_rate
from dermkit.serve.app import create_app
from dermkit.serve.config import ServeConfig
from dermkit.serve.engine import Engine
from dermkit.serve.errors import ApiError
from dermkit.serve.readiness import Readiness

CLASSES = ("melanoma", "nevus", "acne")  # a short condition list: the prompt bank encodes in seconds
KEY = "s3cret-key-0123456789"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> ServeConfig:
    return ServeConfig(model="tiny-clip", classes=CLASSES, cache_dir=tmp_path_factory.mktemp("textbank"))


@pytest.fixture(scope="module")
def engine(config: ServeConfig) -> Engine:
    return Engine.load(config)


def wait_until(check: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_healthz_answers_while_loading_then_readyz_flips(config: ServeConfig, engine: Engine) -> None:
    gate = threading.Event()

    def gated(readiness: Readiness) -> Engine:
        gate.wait(60)
        return Engine.load(config, readiness=readiness)

    with TestClient(create_app(config, loader=gated)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        waiting = client.get("/readyz")
        assert waiting.status_code == 503 and waiting.headers["retry-after"] == "5"
        body = waiting.json()
        assert body["status"] == "loading"
        assert body["loading"] == ["model", "index", "prompt_bank", "differential", "inference"]
        early = client.post("/v1/embed", data={"text": "a mole"})
        assert early.status_code == 503 and early.headers["retry-after"] == "5"
        assert early.json()["error"]["code"] == "not_ready"
        assert "prompt_bank" in early.json()["error"]["message"]
        assert client.get("/v1/models").status_code == 503
        assert client.get("/v1/vocabulary").status_code == 200  # the page's form can be filled meanwhile
        gate.set()
        wait_until(lambda: client.get("/readyz").status_code == 200)
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["loading"] == []
        assert ready["parts"]["prompt_bank"]["source"] == "cache"  # the module fixture encoded it already
        assert ready["parts"]["model"]["id"] == "tiny-clip"
        assert client.post("/v1/embed", data={"text": "a mole"}).json()["dim"] == 32


def test_a_failed_load_is_reported_and_stops_the_server(config: ServeConfig) -> None:
    failures: list[BaseException] = []

    def broken(readiness: Readiness) -> Engine:
        readiness.loading("model")
        raise DermkitError("no such model 'nope'")

    with TestClient(create_app(config, loader=broken, on_failure=failures.append)) as client:
        wait_until(lambda: bool(failures))
        body = client.get("/readyz").json()
        assert body["status"] == "failed" and body["error"] == "no such model 'nope'"
        assert body["parts"]["model"]["state"] == "failed"
        assert client.get("/healthz").status_code == 200
        refused = client.get("/v1/models")
        assert refused.status_code == 503 and "failed to load" in refused.json()["error"]["message"]
    assert str(failures[0]) == "no such model 'nope'"


def keyed(engine: Engine, tmp_path: Path, **overrides: Any) -> TestClient:
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"\n{KEY}\nanother-key\n")
    return TestClient(create_app(Engine(engine.vlm, engine.bank, engine.differential, None,
                                        replace(engine.config, api_key_file=key_file, **overrides))))


def test_api_key_protects_inference_routes_but_not_health(engine: Engine, tmp_path: Path) -> None:
    with keyed(engine, tmp_path) as client:
        missing = client.post("/v1/embed", data={"text": "a mole"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "unauthorized"
        assert client.get("/v1/models", headers={"X-API-Key": KEY + "x"}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY[:-1]}"}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": f"Basic {KEY}"}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert client.get("/v1/vocabulary", headers={"X-API-Key": "another-key"}).status_code == 200
        embedded = client.post("/v1/embed", data={"text": "a mole"}, headers={"X-API-Key": KEY})
        assert embedded.status_code == 200 and embedded.json()["dim"] == 32
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"}
    assert schemes["APIKeyHeader"]["in"] == "header" and schemes["APIKeyHeader"]["name"] == "X-API-Key"
    for path, method in (("/v1/predict", "post"), ("/v1/embed", "post"), ("/v1/search", "post"),
                         ("/v1/models", "get"), ("/v1/vocabulary", "get"), ("/v1/cases/{case_id}/thumbnail", "get")):
        operation = schema["paths"][path][method]
        assert {"HTTPBearer": []} in operation["security"] and {"APIKeyHeader": []} in operation["security"], path
        assert "401" in operation["responses"]
    assert "security" not in schema["paths"]["/healthz"]["get"] and "security" not in schema["paths"]["/readyz"]["get"]


def test_without_flags_nothing_is_asked(engine: Engine) -> None:
    with TestClient(create_app(engine)) as client:
        assert client.get("/v1/models").status_code == 200
        schema = client.get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    assert "security" not in schema["paths"]["/v1/predict"]["post"]
    assert "429" not in schema["paths"]["/v1/predict"]["post"]["responses"]


def test_rate_limit_answers_429_with_retry_after(engine: Engine) -> None:
    config = replace(engine.config, rate_limit="3/min")
    with TestClient(create_app(Engine(engine.vlm, engine.bank, engine.differential, None, config))) as client:
        assert [client.get("/v1/vocabulary").status_code for _ in range(3)] == [200, 200, 200]
        refused = client.get("/v1/models")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 20  # one request per 20 s refills
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        assert "429" in client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["responses"]


def test_rate_limiter_buckets_are_per_client_and_refill() -> None:
    now = [0.0]
    limiter = RateLimiter(Rate(2, 60.0), clock=lambda: now[0])
    limiter.take("10.0.0.1")
    limiter.take("10.0.0.1")
    with pytest.raises(ApiError) as refused:
        limiter.take("10.0.0.1")
    assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "30"}
    limiter.take("10.0.0.2")  # another client has its own allowance
    now[0] = 29.0
    with pytest.raises(ApiError) as again:
        limiter.take("10.0.0.1")
    assert again.value.headers == {"Retry-After": "1"}
    now[0] = 30.0
    limiter.take("10.0.0.1")


@pytest.mark.parametrize(("text", "rate"), [("120/min", Rate(120, 60.0)), ("5/s", Rate(5, 1.0)),
                                            ("1000 / h", Rate(1000, 3600.0)), ("off", None)])
def test_parse_rate(text: str, rate: Rate | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0/min", "ten/min", "5/day", "5", "-1/s"])
def test_parse_rate_refuses_malformed_limits(text: str) -> None:
    with pytest.raises(InputError, match="--rate-limit"):
        parse_rate(text)


def test_exposure_defaults(tmp_path: Path) -> None:
    assert exposure_defaults(ServeConfig()) == ServeConfig()  # loopback: nothing changes
    with pytest.raises(InputError, match="--api-key-file FILE, or --no-api-key"):
        exposure_defaults(ServeConfig(host="0.0.0.0"))
    public = exposure_defaults(ServeConfig(host="0.0.0.0", no_api_key=True))
    assert public.rate_limit == PUBLIC_RATE_LIMIT
    keyed_config = exposure_defaults(ServeConfig(host="0.0.0.0", api_key_file=tmp_path / "k", rate_limit="off"))
    assert keyed_config.rate_limit == "off"
    with pytest.raises(InputError, match="--rate-limit"):
        exposure_defaults(ServeConfig(rate_limit="fast"))


def test_api_key_file_errors_name_the_file(engine: Engine, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    for path, message in ((empty, "holds no key"), (tmp_path / "absent.txt", "cannot read")):
        config = replace(engine.config, api_key_file=path)
        with pytest.raises(InputError, match=message) as error:
            create_app(Engine(engine.vlm, engine.bank, engine.differential, None, config))
        assert str(path) in str(error.value)


def test_cli_refuses_a_public_bind_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    from dermkit.cli import main

    assert main(["serve", "--model", "tiny-clip", "--host", "0.0.0.0"]) == 2
    assert "--no-api-key" in capsys.readouterr().err

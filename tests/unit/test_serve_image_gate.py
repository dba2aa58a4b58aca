"""The service's image gate and concurrency cap over HTTP: 415 naming the format, sides, bombs,
the per-request pixel budget, and 503 with Retry-After when every slot stays taken."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("open_clip")

from fastapi.testclient import TestClient
from test_serve_api import base_engine, client, error_of, make_client, png_bytes  # noqa: F401

from conftest import png_claiming  # tests/ is on sys.path under pytest
from dermkit.serve.config import ServeConfig
from dermkit.serve.uploads import decode_upload


def encoded(fmt: str, size: tuple[int, int] = (64, 64)) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def upload(*payloads: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (f"photo{i}.jpg", payload, "image/jpeg")) for i, payload in enumerate(payloads)]


@pytest.mark.parametrize("fmt", ["TIFF", "EPS", "GIF", "BMP"])
def test_other_formats_get_415_naming_the_format(client: TestClient, fmt: str) -> None:  # noqa: F811
    response = client.post("/v1/predict", files=upload(png_bytes(0), encoded(fmt)))
    error = error_of(response, 415, "images[1]")
    assert error["code"] == "unsupported_format"
    assert error["message"].startswith(f"{fmt} images are not accepted (JPEG, PNG or WebP expected)")


def test_webp_and_jpeg_are_accepted(client: TestClient) -> None:  # noqa: F811
    response = client.post("/v1/predict", files=upload(encoded("WEBP"), encoded("JPEG")))
    assert response.status_code == 200, response.text
    assert response.json()["images"] == 2


@pytest.mark.parametrize("size", [(1, 1), (1, 20_000), (20, 300)])
def test_degenerate_sides_are_refused(client: TestClient, size: tuple[int, int]) -> None:  # noqa: F811
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, format="PNG")
    error = error_of(client.post("/v1/embed", files=[("image", ("strip.png", buffer.getvalue(), "image/png"))]),
                     422, "image")
    assert f"image is {size[0]}x{size[1]}" in error["message"]


def test_a_png_bomb_says_decompression_bomb(client: TestClient) -> None:  # noqa: F811
    error = error_of(client.post("/v1/predict", files=upload(png_claiming(20_000, 20_000))), 422, "images[0]")
    assert "decompression bomb" in error["message"]


def test_the_request_pixel_budget(make_client: Callable[..., TestClient]) -> None:  # noqa: F811
    limited = make_client(max_request_pixels=2 * 48 * 48)
    assert limited.post("/v1/predict", files=upload(png_bytes(0), png_bytes(1))).status_code == 200
    error = error_of(limited.post("/v1/predict", files=upload(png_bytes(0), png_bytes(1), png_bytes(2))),
                     413, "images[2]")
    assert error["code"] == "pixel_budget" and "budget of 4608" in error["message"]


def test_uploads_are_decoded_near_the_model_size() -> None:
    x = np.linspace(0, 255, 4000, dtype=np.float32)
    pixels = np.broadcast_to(x[None, :, None], (3000, 4000, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    assert decode_upload(buffer.getvalue(), "images[0]", ServeConfig(decode_side=224)).size == (500, 375)
    assert decode_upload(buffer.getvalue(), "images[0]", ServeConfig(decode_side=448)).size == (1000, 750)


def test_over_the_concurrency_cap_a_request_waits_then_gets_503(make_client: Callable[..., TestClient]) -> None:  # noqa: F811
    capped = make_client(max_concurrent=1, queue_timeout_s=0.3)
    engine = capped.app.state.service.engine  # type: ignore[attr-defined]
    inside, release = threading.Event(), threading.Event()
    prepare = engine.prepare_case

    def held_prepare(*args: Any) -> Any:  # the first request holds the only slot until released
        inside.set()
        assert release.wait(30)
        return prepare(*args)

    engine.prepare_case = held_prepare
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(capped.post, "/v1/predict", files=upload(png_bytes(0)))
        assert inside.wait(30)
        engine.prepare_case = prepare
        busy = capped.post("/v1/predict", files=upload(png_bytes(1)))
        embed_busy = capped.post("/v1/embed", data={"text": "a brown macule"})
        release.set()
        assert first.result(timeout=60).status_code == 200
    for response in (busy, embed_busy):
        error = error_of(response, 503, None)
        assert error["code"] == "busy"
        assert response.headers["retry-after"] == "1"
    assert capped.post("/v1/predict", files=upload(png_bytes(1))).status_code == 200  # the slot was released

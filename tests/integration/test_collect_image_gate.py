"""``/contribute`` behind the shared image gate: formats refused by name, degenerate sides, bombs, and a
cap on photos checked at once (503 with Retry-After after a bounded wait)."""

from __future__ import annotations

import html
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_collect_fixtures as fixtures
from PIL import Image
from sqlalchemy import select
from test_collect_fixtures import Platform, make_platform, photo, token

from conftest import png_claiming  # tests/ is on sys.path under pytest
from dermkit.collect.grading import GradesNeeded
from dermkit.collect.models import CaseImage

sqlite_platform = fixtures.sqlite_platform


def post(client: Any, images: dict[str, tuple[str, bytes]]) -> Any:
    from dermkit.collect.questionnaire import CONSENT_VERSION

    form = {"csrf_token": token(client, "/contribute"), "consent": "yes", "consent_version": CONSENT_VERSION}
    return client.post("/contribute", data=form, files={slot: (name, data) for slot, (name, data) in images.items()})


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def refused(response: Any, *named: str) -> None:
    assert response.status_code == 400, response.text
    text = html.unescape(response.text)
    for part in named:
        assert part in text, text
    assert "Traceback" not in text


@pytest.mark.parametrize("fmt", ["TIFF", "EPS", "BMP"])
def test_other_formats_are_refused_naming_the_format(sqlite_platform: Platform, fmt: str) -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(pixels), fmt)
    refused(post(sqlite_platform.client(), {"image_1": ("lesion.jpg", data)}),
            f"{fmt} images are not accepted (JPEG, PNG or WebP expected)", "'image_1'")


def test_degenerate_sides_and_bombs_are_refused(sqlite_platform: Platform) -> None:
    client = sqlite_platform.client()
    refused(post(client, {"image_1": ("dot.png", encoded(Image.new("RGB", (1, 1)), "PNG"))}), "image is 1x1")
    refused(post(client, {"image_1": ("strip.png", encoded(Image.new("RGB", (1, 20_000)), "PNG"))}),
            "image is 1x20000")
    refused(post(client, {"image_2": ("bomb.png", png_claiming(20_000, 20_000))}), "decompression bomb", "'image_2'")
    with sqlite_platform.app.state.sessions() as session:
        assert session.scalars(select(CaseImage)).all() == []
    assert list(sqlite_platform.media.iterdir()) == []


def test_over_the_cap_a_photo_waits_then_gets_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dermkit.collect.routes import contribute as contribute_routes

    inside, release = threading.Event(), threading.Event()
    check = contribute_routes.check_upload

    def held_check(data: bytes, field: str) -> Any:  # the first upload holds the only slot until released
        if not inside.is_set():
            inside.set()
            assert release.wait(30)
        return check(data, field)

    monkeypatch.setattr(contribute_routes, "check_upload", held_check)
    with make_platform(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "media", GradesNeeded(1, 1),
                       max_concurrent_uploads=1, upload_wait_s=0.3) as capped:
        first_client, second_client = capped.client(), capped.client()
        token(first_client, "/contribute")
        token(second_client, "/contribute")
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(post, first_client, {"image_1": ("a.png", photo(1))})
            assert inside.wait(30)
            busy = post(second_client, {"image_1": ("b.png", photo(2))})
            release.set()
            assert first.result(timeout=60).status_code == 201
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"] == "1"
        assert "retry" in busy.text
        assert post(second_client, {"image_1": ("b.png", photo(2))}).status_code == 201  # the slot was released

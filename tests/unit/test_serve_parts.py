"""The service's parts alone: prompt bank vs the offline tasks, micro-batcher, body limit, ddx plug-in."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import ExifTags, Image

pytest.importorskip("fastapi")
pytest.importorskip("open_clip")

from fastapi.testclient import TestClient

from dermkit.core.errors import DermkitError
from dermkit.evaluate.concepts import concept_scores
from dermkit.evaluate.zeroshot import zero_shot_scores
from dermkit.models import load_model, register_model
from dermkit.models.embeddings import l2_normalize
from dermkit.models.names import list_models
from dermkit.ontology import default_ontology
from dermkit.serve.app import create_app
from dermkit.serve.batcher import MicroBatcher
from dermkit.serve.config import ServeConfig, condition_ids
from dermkit.serve.differential import ModelDifferential
from dermkit.serve.engine import Engine
from dermkit.serve.limits import BodyLimit
from dermkit.serve.textbank import TextBank, concept_leaves
from dermkit.serve.uploads import decode_upload

STUB_DDX = "test-serve-stub-ddx"


@pytest.fixture(scope="module")
def tiny() -> Any:
    return load_model("tiny-clip")


def test_text_bank_matches_offline_zero_shot_and_concept_scores(tiny: Any) -> None:
    classes = condition_ids(["melanoma", "nevus", "psoriasis", "acne"])
    concepts = concept_leaves()[:5]
    bank = TextBank.build(tiny, classes, concepts)
    embeddings = l2_normalize(np.random.default_rng(0).normal(size=(4, 32))).astype(np.float32)
    for acquisition in (None, "clinical", "dermoscopic"):
        cases = pd.DataFrame({"acquisition": [acquisition] * 4, "source": [None] * 4})
        np.testing.assert_allclose(bank.class_probs(embeddings, acquisition),
                                   zero_shot_scores(tiny, embeddings, cases, classes), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bank.concept_scores(embeddings), concept_scores(tiny, embeddings, concepts),
                               rtol=1e-5, atol=1e-6)


def test_text_bank_is_cached_by_weights_and_prompts(tiny: Any, tmp_path: Path) -> None:
    classes, concepts = condition_ids(["melanoma", "acne"]), concept_leaves()[:3]
    first = TextBank.cached(tiny, classes, concepts, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    again = TextBank.cached(tiny, classes, concepts, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.class_text["clinical"], first.class_text["clinical"])
    np.testing.assert_array_equal(again.concept_margins, first.concept_margins)
    assert again.scale == pytest.approx(first.scale)
    TextBank.cached(tiny, condition_ids(["melanoma", "psoriasis"]), concepts, cache_dir=tmp_path)
    TextBank.cached(load_model("tiny-clip", seed=1), classes, concepts, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3  # other prompts, other weights: new entries


def test_concepts_scored_are_leaves_not_headings() -> None:
    leaves = concept_leaves()
    assert "papule" in leaves and "primary_lesion" not in leaves and "morphology" not in leaves


def test_condition_ids_resolve_names_and_drop_repeats() -> None:
    assert condition_ids(["Melanoma", "melanoma", "nevus"]) == ["melanoma", "melanocytic_nevus"]
    defaults = condition_ids(None)
    assert defaults[:26] == default_ontology().label_set("ddx26") and len(defaults) == len(set(defaults))
    assert set(default_ontology().label_set("ham10000")) <= set(defaults)


# -- micro-batcher ------------------------------------------------------------------------------

def run_batcher(sizes: Sequence[int], max_batch: int, max_wait_ms: float) -> tuple[list[int], list[list[int]]]:
    """Submit items of the given unit counts at once; return results and the batches the function saw."""
    seen: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        seen.append(list(items))
        time.sleep(0.01)
        return [2 * item for item in items]

    async def main() -> list[int]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(double, max_batch=max_batch, max_wait_ms=max_wait_ms, units=lambda x: x)
            batcher.start(pool)
            try:
                return list(await asyncio.gather(*(batcher.submit(size) for size in sizes)))
            finally:
                await batcher.stop()

    return asyncio.run(main()), seen


def test_batcher_groups_up_to_max_units_and_keeps_order() -> None:
    results, seen = run_batcher([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], max_batch=4, max_wait_ms=50)
    assert results == [2] * 10
    assert [len(batch) for batch in seen] == [4, 4, 2]


def test_batcher_counts_units_and_never_splits_an_item() -> None:
    results, seen = run_batcher([3, 3, 6, 1], max_batch=6, max_wait_ms=50)
    assert results == [6, 6, 12, 2]
    assert seen == [[3, 3], [6], [1]]


def test_batcher_off_runs_one_item_per_call() -> None:
    _, seen = run_batcher([1, 1, 1], max_batch=1, max_wait_ms=50)
    assert seen == [[1], [1], [1]]


def test_batcher_passes_errors_to_every_waiter_and_keeps_running() -> None:
    calls = 0

    def flaky(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("boom")
        return items

    async def main() -> tuple[list[Any], int]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(flaky, max_batch=8, max_wait_ms=20)
            batcher.start(pool)
            first = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
            second = await batcher.submit(3)
            await batcher.stop()
            return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(result, ValueError) for result in first) and second == 3


# -- body limit ---------------------------------------------------------------------------------

async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def call_limited(chunks: list[bytes], content_length: int | None, limit: int) -> tuple[int, bytes, int]:
    """Drive BodyLimit(echo) by hand; returns status, body and how many chunks were read."""
    sent: list[dict[str, Any]] = []
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return queue.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    asyncio.run(BodyLimit(_echo_app, limit)({"type": "http", "headers": headers}, receive, send))
    return sent[0]["status"], sent[1]["body"], read


def test_body_limit_refuses_declared_length_without_reading() -> None:
    status, body, read = call_limited([b"x" * 10], content_length=2000, limit=1000)
    assert status == 413 and read == 0
    assert json.loads(body)["error"]["code"] == "body_too_large"


def test_body_limit_stops_a_chunked_body_at_the_limit() -> None:
    status, _, read = call_limited([b"x" * 400] * 10, content_length=None, limit=1000)
    assert status == 413 and read == 3


def test_body_limit_passes_bodies_within_it() -> None:
    assert call_limited([b"x" * 400] * 2, content_length=800, limit=1000)[:2] == (200, b"800")


# -- uploads -------------------------------------------------------------------------------------

def test_decoded_upload_is_upright_and_has_no_metadata() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # rotate 90° on display
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "S"}
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), "red").save(buffer, format="JPEG", exif=exif)
    image = decode_upload(buffer.getvalue(), "images[0]", ServeConfig(min_side=16))
    assert image.size == (20, 40)
    assert not image.info and not image.getexif()


# -- a differential-diagnosis model through the registry ----------------------------------------

class StubDdx:
    """Ranks melanoma first for patients over 60, nevus first otherwise."""

    name = STUB_DDX
    classes = ("Melanoma", "nevus", "psoriasis")
    card = None

    def preprocess_eval(self, image: Image.Image) -> Any:
        import torch

        return torch.zeros(3, 8, 8)

    def predict_proba(self, cases: Sequence[Any], histories: Sequence[dict[str, Any]]) -> np.ndarray:
        assert all(case.shape == (len(case), 3, 8, 8) for case in cases)
        old = [(history["age"] or 0) > 60 for history in histories]
        return np.array([[0.7, 0.2, 0.1] if is_old else [0.2, 0.7, 0.1] for is_old in old])


if STUB_DDX not in list_models():
    register_model(STUB_DDX)(lambda device="cpu": StubDdx())


def test_ddx_model_from_the_registry_ranks_the_differential(tmp_path: Path) -> None:
    engine = Engine.load(ServeConfig(model="tiny-clip", ddx_model=STUB_DDX, cache_dir=tmp_path))
    photo = io.BytesIO()
    Image.new("RGB", (32, 32), "brown").save(photo, format="PNG")
    with TestClient(create_app(engine)) as client:
        def top(age: str) -> dict[str, Any]:
            body = client.post("/v1/predict", files=[("images", ("a.png", photo.getvalue(), "image/png"))],
                               data={"age": age}).json()
            assert body["differential_source"] == "differential model"
            assert body["differential_model"]["id"] == STUB_DDX and body["model"]["id"] == "tiny-clip"
            assert body["concepts"]
            return body["differential"][0]

        assert top("70") == {"condition": "Melanoma", "ontology_id": "melanoma", "probability": 0.7,
                             "path": [{"id": "neoplasm", "name": "Neoplasm"},
                                      {"id": "melanocytic_neoplasm", "name": "Melanocytic neoplasm"},
                                      {"id": "melanoma", "name": "Melanoma"}]}
        assert top("30")["ontology_id"] == "melanocytic_nevus"
        roles = [model["role"] for model in client.get("/v1/models").json()["models"]]
        assert roles == ["vision-language", "differential"]


def test_a_model_without_the_ddx_interface_is_refused(tiny: Any) -> None:
    with pytest.raises(DermkitError, match="not a differential-diagnosis model"):
        ModelDifferential(tiny)


def test_bf16_image_tower_agrees_with_fp32(tiny: Any) -> None:
    import torch

    from dermkit.serve.engine import use_bf16

    assert use_bf16("bf16", torch.device("cpu")) and not use_bf16("fp32", torch.device("cpu"))
    bank = TextBank.build(tiny, condition_ids(["melanoma", "acne"]), concept_leaves()[:1])
    fp32 = Engine(tiny, bank, None, None, ServeConfig(model="tiny-clip", precision="fp32"))  # type: ignore[arg-type]
    bf16 = Engine(tiny, bank, None, None, ServeConfig(model="tiny-clip", precision="bf16"))  # type: ignore[arg-type]
    pixels = torch.randn(4, 3, 32, 32)
    cosines = (fp32.embed_pixels(pixels) * bf16.embed_pixels(pixels)).sum(axis=1)
    assert cosines.min() > 0.99 and cosines.max() < 1 - 1e-7  # close, and really computed in bf16

"""The service's HTTP API with FastAPI's TestClient: every route and every refused input.

One ``tiny-clip`` engine with a six-case similar-case index of synthetic photos is loaded per
module; each test builds its app around it with the limits it needs.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import ExifTags, Image

pytest.importorskip("fastapi")
pytest.importorskip("open_clip")

from fastapi.testclient import TestClient

from conftest import png_claiming  # tests/ is on sys.path under pytest
from dermkit.data.images import open_image
from dermkit.serve.app import create_app
from dermkit.serve.config import ServeConfig
from dermkit.serve.engine import Engine
from dermkit.serve.index import build
from dermkit.serve.similar import SimilarCases

# fp32: batched and single answers are compared exactly
LIMITS = {"max_image_bytes": 300_000, "max_body_bytes": 2_000_000, "max_pixels": 1_000_000, "precision": "fp32"}
INDEX_CASES = 6


def png_bytes(seed: int = 0, size: tuple[int, int] = (48, 48)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_with_gps(seed: int = 0) -> bytes:
    """A JPEG carrying a camera make and a GPS position, as phone photos do."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMakerXYZ"
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.0)}
    pixels = np.random.default_rng(seed).integers(0, 255, size=(40, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def files(*payloads: bytes, name: str = "images") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(name, (f"photo{i}.png", payload, "image/png")) for i, payload in enumerate(payloads)]


@pytest.fixture(scope="module")
def base_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """tiny-clip with its text bank, and an index of six synthetic photos saved as files."""
    engine = Engine.load(ServeConfig(model="tiny-clip", cache_dir=tmp_path_factory.mktemp("textbank"), **LIMITS))
    folder = tmp_path_factory.mktemp("index-images")
    cases = []
    for seed in range(INDEX_CASES):
        path = folder / f"case{seed}.png"
        path.write_bytes(png_bytes(seed))
        cases.append({"case_id": f"case-{seed}", "image_paths": [str(path)], "source": "synthetic",
                      "diagnosis": "nevus", "diagnosis_id": "melanocytic_nevus"})
    pixels = [engine.prepare_image(open_image(case["image_paths"][0])) for case in cases]
    index = build(np.stack(engine.embed_images(pixels)), pd.DataFrame(cases), model="tiny-clip")
    return Engine(engine.vlm, engine.bank, engine.differential, SimilarCases(index), engine.config)


@pytest.fixture
def make_client(base_engine: Engine) -> Iterator[Callable[..., TestClient]]:
    """A started app around the shared engine, with config overrides."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        engine = Engine(base_engine.vlm, base_engine.bank, base_engine.differential, base_engine.similar,
                        replace(base_engine.config, **overrides))
        client = TestClient(create_app(engine), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def error_of(response: Any, status: int, field: str | None) -> dict[str, Any]:
    """Assert a JSON refusal with ``status`` naming ``field``; return its error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["field"] == field, error
    assert "Traceback" not in response.text
    return error


# -- the routes -------------------------------------------------------------------------------

def test_predict_returns_ranked_differential_concepts_similar_cases_and_disclaimer(client: TestClient) -> None:
    response = client.post("/v1/predict", files=files(png_bytes(3)),
                           data={"age": "52", "sex": "female", "fitzpatrick": "3", "site": "FOREARM",
                                 "symptoms": ["itchy", "pain"], "duration": "one to four weeks"})
    assert response.status_code == 200, response.text
    body = response.json()
    probabilities = [row["probability"] for row in body["differential"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert len(body["differential"]) == 10
    assert {row["ontology_id"] for row in body["differential"]} <= set(client.app.state.service.engine.bank.classes)
    assert len(body["concepts"]) == 8 and all(0 <= row["score"] <= 1 for row in body["concepts"])
    # the uploaded photo is case-3 of the index, so it is its own nearest neighbour
    assert body["similar_cases"][0]["case_id"] == "case-3"
    assert body["similar_cases"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert body["similar_cases"][0]["diagnosis"] == "Melanocytic nevus"
    assert body["history"] == {"age": 52.0, "sex": "female", "fitzpatrick": 3, "site": "forearm",
                               "symptoms": ["itch", "pain"], "duration": "one to four weeks", "history": {},
                               "measurements": {}}
    assert body["model"]["id"] == "tiny-clip" and len(body["model"]["version"]) == 12
    assert body["differential_source"] == "zero-shot"
    # the zero-shot ranking reads none of the history: every given field is reported as ignored
    assert body["ignored"] == ["age", "sex", "fitzpatrick", "site", "symptoms", "duration"]
    assert body["disclaimer"].startswith("This is not a diagnosis")


def test_predict_pools_several_images_and_acquisition_changes_prompts(client: TestClient) -> None:
    one = client.post("/v1/predict", files=files(png_bytes(1))).json()
    two = client.post("/v1/predict", files=files(png_bytes(1), png_bytes(2))).json()
    assert two["images"] == 2
    assert two["differential"] != one["differential"]
    dermoscopic = client.post("/v1/predict", files=files(png_bytes(1)), data={"acquisition": "dermoscopic"}).json()
    assert dermoscopic["differential"] != one["differential"]


def test_default_differential_covers_ddx26_and_benchmark_classes(client: TestClient) -> None:
    classes = [row["id"] for row in client.get("/v1/models").json()["classes"]]
    assert classes[:2] == ["acne", "actinic_keratosis"]
    assert {"dermatofibroma", "vascular_neoplasm", "benign_keratosis", "seborrheic_keratosis"} <= set(classes)
    assert len(classes) == len(set(classes)) == 29


def test_models_describes_loaded_model_and_index(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert [model["role"] for model in body["models"]] == ["vision-language"]
    assert body["models"][0]["id"] == "tiny-clip"
    assert body["index"] == {"cases": INDEX_CASES, "model": "tiny-clip"}
    assert body["concepts"] > 50


def test_embed_text_and_image_are_unit_vectors(client: TestClient) -> None:
    text = client.post("/v1/embed", data={"text": "a brown macule"}).json()
    image = client.post("/v1/embed", files=files(png_bytes(0), name="image")).json()
    for body, kind in ((text, "text"), (image, "image")):
        assert body["input"] == kind and body["dim"] == 32
        assert np.linalg.norm(body["embedding"]) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("fields", [{}, {"text": "   "}])
def test_embed_needs_exactly_one_input(client: TestClient, fields: dict[str, str]) -> None:
    error_of(client.post("/v1/embed", data=fields), 422, "text")
    error_of(client.post("/v1/embed", data={"text": "x"}, files=files(png_bytes(0), name="image")), 422, "image")


def test_search_by_image_and_text_with_thumbnails(client: TestClient) -> None:
    body = client.post("/v1/search", files=files(png_bytes(4), name="image"), data={"k": "3"}).json()
    assert body["query"] == "image" and len(body["results"]) == 3
    assert body["results"][0]["case_id"] == "case-4"
    by_text = client.post("/v1/search", data={"text": "a mole", "k": "50"}).json()
    assert by_text["query"] == "text" and len(by_text["results"]) == INDEX_CASES
    thumbnail = client.get(body["results"][0]["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(thumbnail.content))
    assert max(picture.size) <= 160 and not picture.getexif()


def test_search_refuses_out_of_range_k_and_unknown_thumbnail(client: TestClient) -> None:
    error_of(client.post("/v1/search", data={"text": "a mole", "k": "51"}), 422, "k")
    error_of(client.get("/v1/cases/no-such-case/thumbnail"), 404, "case_id")


def test_search_without_index_is_409(make_client: Callable[..., TestClient], base_engine: Engine) -> None:
    engine = Engine(base_engine.vlm, base_engine.bank, base_engine.differential, None, base_engine.config)
    with TestClient(create_app(engine)) as bare:
        error_of(bare.post("/v1/search", data={"text": "a mole"}), 409, None)
        assert bare.post("/v1/predict", files=files(png_bytes(0))).json()["similar_cases"] == []
        assert bare.get("/v1/models").json()["index"] is None


def test_health_ready_vocabulary_page_and_openapi(client: TestClient, base_engine: Engine) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    vocabulary = client.get("/v1/vocabulary").json()
    assert {"id": "forearm", "name": "Forearm"} in vocabulary["body_sites"]
    assert "itch" in {term["id"] for term in vocabulary["symptoms"]}
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text and "Not a diagnosis" in page.text
    assert client.get("/static/app.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/embed", "/v1/search", "/v1/models", "/healthz", "/readyz"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["PredictResponse"]["examples"][0]["differential"]
    # before the lifespan starts the batchers, the app is alive but not ready
    unstarted = TestClient(create_app(base_engine), raise_server_exceptions=False)
    assert unstarted.get("/healthz").status_code == 200
    assert unstarted.get("/readyz").status_code == 503
    error_of(unstarted.post("/v1/predict", files=files(png_bytes(0))), 503, None)


def test_default_bind_is_loopback() -> None:
    from dermkit.cli import build_parser

    assert ServeConfig().host == "127.0.0.1"
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


# -- micro-batching -----------------------------------------------------------------------------

def test_concurrent_requests_share_batches_and_get_their_own_answers(make_client: Callable[..., TestClient]) -> None:
    batched = make_client(max_batch=8, max_wait_ms=200)
    alone = make_client(max_batch=1)
    payloads = [png_bytes(seed) for seed in range(8)]

    def ask(client: TestClient, payload: bytes) -> list[str]:
        response = client.post("/v1/predict", files=files(payload))
        assert response.status_code == 200, response.text
        return [row["case_id"] for row in response.json()["similar_cases"]] + [
            f"{row['ontology_id']}:{row['probability']:.5f}" for row in response.json()["differential"]]

    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda p: ask(batched, p), payloads))
    separately = [ask(alone, payload) for payload in payloads]
    assert together == separately
    assert max(batched.app.state.service.predict.batch_sizes) > 1
    assert set(alone.app.state.service.predict.batch_sizes) == {1}


# -- refused input ------------------------------------------------------------------------------

def test_not_an_image(client: TestClient) -> None:
    error = error_of(client.post("/v1/predict", files=files(png_bytes(0), b"hello, not a photo")), 422, "images[1]")
    assert error["code"] == "invalid_image"


def test_truncated_image(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    error_of(client.post("/v1/predict", files=files(data[: len(data) // 2])), 422, "images[0]")


def test_corrupt_image(client: TestClient) -> None:
    data = bytearray(png_bytes(0))
    data[60:400] = bytes(340)  # zero the compressed pixel data, keep the header
    error_of(client.post("/v1/predict", files=files(bytes(data))), 422, "images[0]")


@pytest.mark.parametrize("side", [2_000, 100_000])  # over our pixel limit; over PIL's bomb limit
def test_decompression_bomb(client: TestClient, side: int) -> None:
    error = error_of(client.post("/v1/predict", files=files(png_claiming(side, side))), 422, "images[0]")
    assert "pixels" in error["message"] or "bomb" in error["message"]


def test_image_over_size_limit(client: TestClient) -> None:
    big = png_bytes(0, size=(400, 400))
    assert len(big) > LIMITS["max_image_bytes"]
    error = error_of(client.post("/v1/predict", files=files(png_bytes(1), big)), 413, "images[1]")
    assert error["code"] == "image_too_large"


def test_more_than_six_images(client: TestClient) -> None:
    error = error_of(client.post("/v1/predict", files=files(*[png_bytes(i) for i in range(7)])), 422, "images")
    assert error["code"] == "too_many_images"


def test_no_images(client: TestClient) -> None:
    error_of(client.post("/v1/predict", data={"age": "40"}), 422, "images")


@pytest.mark.parametrize(("field", "value"), [("age", "forty"), ("age", "-3"), ("fitzpatrick", "7"),
                                              ("fitzpatrick", "II"), ("sex", "robot"), ("acquisition", "x-ray"),
                                              ("duration", "x" * 101), ("fitzpatrick", "²"), ("fitzpatrick", "٥"),
                                              ("fitzpatrick", "9" * 25)])
def test_wrong_field_types(client: TestClient, field: str, value: str) -> None:
    error_of(client.post("/v1/predict", files=files(png_bytes(0)), data={field: value}), 422, field)


def test_images_field_must_be_files(client: TestClient) -> None:
    error_of(client.post("/v1/predict", data={"images": "not a file"}), 422, "images.0")


def test_unknown_site_and_symptom_with_suggestions(client: TestClient) -> None:
    site = error_of(client.post("/v1/predict", files=files(png_bytes(0)), data={"site": "forarm"}), 422, "site")
    assert site["code"] == "unknown_body_site" and "Forearm" in site["suggestions"]
    symptom = error_of(client.post("/v1/predict", files=files(png_bytes(0)),
                                   data={"symptoms": ["itch", "itchiness of doom"]}), 422, "symptoms[1]")
    assert symptom["code"] == "unknown_symptom"


def test_body_over_limit(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_body_bytes=50_000)
    error = error_of(small.post("/v1/predict", files=files(png_bytes(0, size=(150, 150)))), 413, "body")
    assert error["code"] == "body_too_large"


def test_internal_errors_hide_the_trace(make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch) -> None:
    broken = make_client()
    engine = broken.app.state.service.engine

    def explode(cases: Any) -> Any:
        raise RuntimeError("secret internal detail /srv/model.pt")

    monkeypatch.setattr(engine, "predict", explode)
    broken.app.state.service.predict.run = explode
    response = broken.post("/v1/predict", files=files(png_bytes(0)))
    error_of(response, 500, None)
    assert "secret" not in response.text and "RuntimeError" not in response.text


# -- privacy ------------------------------------------------------------------------------------

def test_uploads_not_stored_by_default_and_stored_without_exif(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    photo = jpeg_with_gps()
    assert Image.open(io.BytesIO(photo)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    store = tmp_path / "uploads"
    assert make_client().post("/v1/predict", files=files(photo)).status_code == 200
    assert not store.exists()
    keeper = make_client(store_uploads=store)
    assert keeper.post("/v1/predict", files=files(photo)).status_code == 200
    stored = list(store.iterdir())
    assert len(stored) == 1
    data = stored[0].read_bytes()
    assert b"PhoneMakerXYZ" not in data and b"Exif" not in data
    kept = Image.open(stored[0])
    assert not kept.getexif() and "exif" not in kept.info


def test_an_app_can_be_started_again_after_stopping(base_engine: Engine) -> None:
    app = create_app(base_engine)
    for _ in range(2):
        with TestClient(app) as again:
            assert again.post("/v1/embed", data={"text": "a mole"}).status_code == 200
    deadline = time.monotonic() + 5
    while any(t.name.startswith("dermkit-model") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("dermkit-model") for t in threading.enumerate())  # released on stop


def test_thumbnail_of_a_case_id_with_a_slash(base_engine: Engine, tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(png_bytes(9))
    pixels = [base_engine.prepare_image(open_image(photo))]
    index = build(np.stack(base_engine.embed_images(pixels)),
                  pd.DataFrame([{"case_id": "site/a b", "image_paths": [str(photo)]}]), model="tiny-clip")
    engine = Engine(base_engine.vlm, base_engine.bank, base_engine.differential, SimilarCases(index),
                    base_engine.config)
    with TestClient(create_app(engine)) as client:
        hit = client.post("/v1/search", data={"text": "a mole", "k": "1"}).json()["results"][0]
        assert hit["case_id"] == "site/a b" and hit["diagnosis"] is None
        assert client.get(hit["thumbnail_url"]).headers["content-type"] == "image/jpeg"

"""The service on a real loopback socket: a schemathesis run against its OpenAPI schema, and the
web page in Debian's headless Chromium (through Playwright, with the system browser).

The server runs ``tiny-clip`` under uvicorn in a thread, with a similar-case index of HAM10000
photos from ../shared/data when present (synthetic photos otherwise).
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("open_clip")

from conftest import SHARED_DATA, serve_in_thread  # tests/ is on sys.path under pytest
from dermkit.data.images import open_image
from dermkit.ontology import default_ontology
from dermkit.serve.app import create_app
from dermkit.serve.config import ServeConfig
from dermkit.serve.engine import Engine
from dermkit.serve.index import build
from dermkit.serve.similar import SimilarCases

HAM = SHARED_DATA / "ham10000"
INDEX_CASES = 12
EXAMPLES_PER_OPERATION = 25
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def ham_cases(count: int) -> list[dict[str, object]]:
    """The first ``count`` HAM10000 rows whose image is present, with ontology diagnoses."""
    ontology = default_ontology()
    cases = []
    with open(HAM / "metadata.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            path = HAM / "images" / f"{row['image_id']}.jpg"
            if path.exists():
                cases.append({"case_id": row["image_id"], "image_paths": [str(path)], "source": "ham10000",
                              "diagnosis": row["dx"], "diagnosis_id": ontology.map_label("ham10000", row["dx"])})
            if len(cases) == count:
                break
    return cases


def synthetic_cases(folder: Path, count: int) -> list[dict[str, object]]:
    cases = []
    for seed in range(count):
        path = folder / f"synthetic{seed}.png"
        pixels = np.random.default_rng(seed).integers(0, 255, size=(48, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        cases.append({"case_id": f"synthetic-{seed}", "image_paths": [str(path)], "source": "synthetic",
                      "diagnosis": "nevus", "diagnosis_id": "melanocytic_nevus"})
    return cases


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a started server on 127.0.0.1; stopped after the module."""
    loaded = Engine.load(ServeConfig(model="tiny-clip", cache_dir=tmp_path_factory.mktemp("textbank")))
    have_ham = (HAM / "metadata.csv").exists()
    cases = ham_cases(INDEX_CASES) if have_ham else synthetic_cases(tmp_path_factory.mktemp("photos"), INDEX_CASES)
    pixels = [loaded.prepare_image(open_image(case["image_paths"][0])) for case in cases]
    index = build(np.stack(loaded.embed_images(pixels)), pd.DataFrame(cases), model="tiny-clip")
    engine = Engine(loaded.vlm, loaded.bank, loaded.differential, SimilarCases(index), loaded.config)
    with serve_in_thread(create_app(engine)) as url:
        yield url


# -- schemathesis -------------------------------------------------------------------------------

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error


def test_no_server_errors_for_generated_requests(server: str) -> None:
    """Every operation, with examples generated from its schema (bounded), is answered below 500."""
    api = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 7
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: object) -> None:
            case.call_and_validate(checks=[not_a_server_error])  # type: ignore[attr-defined]

        check()


# -- the web page in Chromium ------------------------------------------------------------------

@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_page_uploads_a_photo_and_shows_differential_and_similar_cases(server: str, tmp_path: Path) -> None:
    if not (HAM / "images").is_dir():
        pytest.skip(f"real data {HAM} is absent (tests read ../shared/data beside the checkout)")
    sync_api = pytest.importorskip("playwright.sync_api")
    photo = Path(ham_cases(1)[0]["image_paths"][0])  # type: ignore[index]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone's width
            page.goto(server + "/")
            page.wait_for_selector('input[name="symptoms"][value="itch"]')
            page.set_input_files("#images", str(photo))
            page.fill('input[name="age"]', "45")
            page.select_option('select[name="sex"]', "male")
            page.fill('input[name="site"]', "Trunk")
            page.check('input[name="symptoms"][value="itch"]')
            page.keyboard.press("Tab")
            page.focus("#submit")
            page.keyboard.press("Enter")  # keyboard-usable: submit without the mouse
            page.wait_for_selector("#results:not([hidden])", timeout=20_000)
            bars = page.locator("#differential li")
            assert bars.count() == 10
            assert page.locator("#concepts li").count() == 8
            grid = page.locator("#similar li")
            assert grid.count() == 8
            # the uploaded photo is in the index, so it leads the grid with its diagnosis and thumbnail
            assert grid.first.locator("img").get_attribute("alt") == f"similar case {photo.stem}"
            assert "Melanocytic nevus" in grid.first.inner_text()
            page.wait_for_function("document.querySelector('#similar img').naturalWidth > 0")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
            page.screenshot(path=str(ARTIFACTS / "serve_page.png"), full_page=True)

            # a bad field is reported beside it, with the server's suggestion
            page.fill('input[name="site"]', "forarm")
            page.click("#submit")
            page.wait_for_selector('input[name="site"][aria-invalid="true"]')
            assert "Forearm" in page.inner_text('.field-error[data-for~="site"]')
        finally:
            browser.close()
    shutil.copy(ARTIFACTS / "serve_page.png", tmp_path / "serve_page.png")
    with Image.open(io.BytesIO((tmp_path / "serve_page.png").read_bytes())) as shot:
        assert shot.width == 390

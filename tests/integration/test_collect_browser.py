"""Headless Chromium against a real server: contribute a real photo, grade it as a dermatologist with
the search-as-you-type picker, download the export. Screenshots go to test-artifacts/collect/."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_collect_fixtures import PASSWORD, free_port

from dermkit.cli import main

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "collect"


@pytest.fixture
def server(tmp_path: Path, pad_ufes_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``dermkit collect serve`` on 127.0.0.1 with an admin account (made by ``collect add-user``)."""
    db = f"sqlite:///{tmp_path / 'collect.db'}"
    common = ["--db", db, "--media", str(tmp_path / "media")]
    monkeypatch.setenv("DERMKIT_COLLECT_PASSWORD", PASSWORD)
    assert main(["collect", "add-user", *common, "--username", "admin", "--role", "admin"]) == 0
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dermkit.cli", "collect", "serve", *common, "--port", str(port),
                                "--dermatologist-grades", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/", timeout=2, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(timeout=30)


def test_contribute_grade_and_export_in_chromium(server: str, pad_ufes_dir: Path, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    image = min((pad_ufes_dir / "images").glob("*.png"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            admin = browser.new_context(accept_downloads=True).new_page()
            admin.goto(server + "/login")
            admin.fill("#username", "admin")
            admin.fill("#password", PASSWORD)
            admin.click("#sign-in")
            admin.fill("input[name=username]", "derm")
            admin.fill("input[name=password]", PASSWORD)
            admin.select_option("select[name=role]", "dermatologist")
            admin.click("#add-user")

            contributor = browser.new_page()
            contributor.goto(server + "/contribute")
            contributor.check("#consent")
            contributor.set_input_files("#image_1", str(image))
            contributor.select_option("#image_1_shot_type", "CLOSE_UP")
            contributor.select_option("#age_group", "AGE_50_TO_59")
            contributor.select_option("#sex_at_birth", "MALE")
            contributor.check("input[name=body_parts][value=arm]")
            contributor.check("input[name=condition_symptoms][value=bleeding]")
            contributor.click("#submit")
            receipt = contributor.locator("#receipt-code").inner_text().strip()
            assert len(receipt) >= 12
            contributor.screenshot(path=str(ARTIFACTS / "1-receipt.png"))

            dermatologist = browser.new_context().new_page()
            dermatologist.goto(server + "/login")
            dermatologist.fill("#username", "derm")
            dermatologist.fill("#password", PASSWORD)
            dermatologist.click("#sign-in")
            dermatologist.click("#next-case")
            # Wait for the photo to finish loading (slow under load) before checking it is the upload.
            dermatologist.wait_for_function(
                "() => { const img = document.querySelector('.images img'); return img && img.complete; }"
            )
            assert dermatologist.locator(".images img").evaluate("img => img.naturalWidth") == 300
            dermatologist.check("#gradable-yes")
            dermatologist.locator("#condition_1").press_sequentially("basal c", delay=30)
            suggestion = dermatologist.locator("#suggestions_1 option").first
            suggestion.wait_for(state="attached", timeout=10_000)
            assert suggestion.get_attribute("value") == "Basal cell carcinoma"
            dermatologist.fill("#condition_1", "Basal cell carcinoma")
            dermatologist.select_option("#confidence_1", "4")
            dermatologist.select_option("#fitzpatrick", "2")
            dermatologist.screenshot(path=str(ARTIFACTS / "2-grading.png"), full_page=True)
            dermatologist.click("#submit-grade")
            assert dermatologist.locator("#waiting").inner_text() == "0"

            admin.goto(server + "/admin")
            assert admin.locator("#case-count").inner_text() == "1"
            admin.wait_for_load_state("networkidle")
            admin.screenshot(path=str(ARTIFACTS / "3-dashboard.png"), full_page=True)
            with admin.expect_download() as download_info:
                admin.click("#export-scin")
            archive = tmp_path / "export.zip"
            download_info.value.save_as(archive)
        finally:
            browser.close()
    with zipfile.ZipFile(archive) as bundle:
        cases = list(csv.DictReader(io.StringIO(bundle.read("scin_cases.csv").decode())))
        labels = list(csv.DictReader(io.StringIO(bundle.read("scin_labels.csv").decode())))
        assert len(cases) == 1 and cases[0]["age_group"] == "AGE_50_TO_59" and cases[0]["body_parts_arm"] == "YES"
        assert labels[0]["dermatologist_skin_condition_on_label_name"] == "['Basal cell carcinoma']"
        assert labels[0]["dermatologist_fitzpatrick_skin_type_label_1"] == "FST2"
        assert bundle.read(cases[0]["image_1_path"]).startswith(b"\xff\xd8")  # re-encoded JPEG
    assert (ARTIFACTS / "3-dashboard.png").stat().st_size > 10_000

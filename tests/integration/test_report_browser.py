"""The HTML report opened in headless Chromium: every plot decodes and renders, with no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dermkit.data.predictions import Predictions, write_predictions
from dermkit.evaluate.report import write_report
from dermkit.evaluate.runner import run_suite

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
CLASSES = ("melanoma", "melanocytic_nevus", "seborrheic_keratosis", "basal_cell_carcinoma")


def _report(root: Path) -> Path:
    """A report of a model-free run: a binary-capable classification table with skin types."""
    rng = np.random.default_rng(1)
    n = 120
    labels = rng.integers(0, len(CLASSES), n)
    logits = rng.normal(size=(n, len(CLASSES))) + 1.5 * np.eye(len(CLASSES))[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cases = pd.DataFrame({"case_id": [f"c{i}" for i in range(n)], "patient_id": [f"p{i // 3}" for i in range(n)],
                          "fitzpatrick": rng.integers(1, 7, n), "split": "test", "source": "browser"})
    write_predictions(Predictions.from_cases(cases, probs, labels, model_id="m", classes=CLASSES), root / "p.parquet")
    (root / "suite.yaml").write_text(
        "options: {bootstrap: 20, strata: [fitzpatrick], min_stratum: 5, hierarchy_levels: [2]}\n"
        "tasks:\n  ddx: {type: classification, predictions: p.parquet}\n"
    )
    run_suite(root / "suite.yaml", root / "run", progress=False)
    html, _ = write_report(root / "run", root / "report.html")
    return html


def test_every_plot_renders_in_chromium(tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    html = _report(tmp_path)
    requests: list[str] = []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(html.resolve().as_uri(), wait_until="load")
            sizes = page.eval_on_selector_all(
                "img, svg", "nodes => nodes.map(n => n.tagName === 'IMG' ? "
                "[n.complete, n.naturalWidth, n.getBoundingClientRect().width] : "
                "[true, n.getBoundingClientRect().width, n.getBoundingClientRect().width])")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert len(sizes) >= 3, "confusion matrix, reliability diagram and skin-type bars at least"
    assert all(complete and natural > 0 and shown > 0 for complete, natural, shown in sizes), sizes
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert (tmp_path / "report.png").stat().st_size > 10_000

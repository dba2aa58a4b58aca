"""Service settings: which models and index to load, request limits, batching and privacy options.

One frozen object, built by the CLI or by a test, so every limit the service enforces is visible
in one place and the same in the API, the web page and the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dermkit.data.images import MAX_PIXELS, MAX_SIDE
from dermkit.data.schema import MAX_IMAGES_PER_CASE
from dermkit.ontology import Ontology, default_ontology

# The default differential: the 26 common conditions of the differential-diagnosis system, then
# the lesion classes of the two dermoscopy/smartphone benchmarks that it lacks.
DEFAULT_LABEL_SETS = ("ddx26", "ham10000", "pad-ufes-20")
MEBIBYTE = 1024 * 1024
MAX_SEARCH_RESULTS = 50


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``dermkit serve`` can be told. Defaults are safe for a laptop on loopback."""

    model: str = "dermlip-lite"
    ddx_model: str | None = None
    index: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    classes: tuple[str, ...] | None = None  # condition ids or names; None: DEFAULT_LABEL_SETS
    max_images: int = MAX_IMAGES_PER_CASE
    max_image_bytes: int = 10 * MEBIBYTE
    max_body_bytes: int = MAX_IMAGES_PER_CASE * 10 * MEBIBYTE + MEBIBYTE
    max_pixels: int = MAX_PIXELS  # per image, as its header declares it
    min_side: int = 32  # refuses 1x1 and 1x20000 strips
    max_side: int = MAX_SIDE
    max_request_pixels: int = 100_000_000  # decoded pixels of one request's images (JPEGs after draft)
    decode_side: int = 448  # JPEGs decoded at the smallest DCT scale keeping both sides >= this (>= model input)
    decode_threads: int = 2  # images decoded at once, across all requests: bounds decoding memory
    max_concurrent: int = 8  # requests decoding or waiting for inference at once
    queue_timeout_s: float = 10.0  # how long a request over max_concurrent waits before a 503 with Retry-After
    max_batch: int = 8  # images per model call; 1 turns micro-batching off
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    threads: int | None = None  # torch intra-op threads; None: torch's default
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 where the CPU/GPU runs it natively
    store_uploads: Path | None = None  # keep (EXIF-free) uploads here; None: never stored
    cache_dir: Path | None = None  # prompt-embedding cache; None: ~/.cache/dermkit/textbank
    top_conditions: int = 10
    top_concepts: int = 8
    similar_cases: int = 8
    api_key_file: Path | None = None  # keys, one per line; None: no key asked (see serve/access.py)
    no_api_key: bool = False  # serve a non-loopback address without a key, on purpose
    rate_limit: str | None = None  # "N/min" per client, "off"; None: off on loopback, 120/min elsewhere


def condition_ids(classes: Sequence[str] | None, ontology: Ontology | None = None) -> list[str]:
    """The differential's condition ids, in order, without repeats (names and synonyms resolved)."""
    ontology = ontology or default_ontology()
    if classes is None:
        ids = [cid for name in DEFAULT_LABEL_SETS for cid in ontology.label_set(name)]
    else:
        ids = [ontology.conditions.get(term).id for term in classes]
    return list(dict.fromkeys(ids))

"""``dermkit index build``: embed a case table with a model and save it as a similar-case index.

The embeddings come from :func:`dermkit.evaluate.features.extract_image_features`, so a table
already embedded for an evaluation is not embedded again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dermkit.data.table import read_table
from dermkit.evaluate.features import extract_image_features, resolve_model


def build_index(
    model: str,
    table: str | Path,
    out: str | Path,
    *,
    images: str = "all",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build and save the index of every case of ``table``; a summary of what was written."""
    from dermkit.serve.index import build as build_case_index  # the similar-case index module

    loaded = resolve_model(model)
    frame = read_table(table)
    features = extract_image_features(loaded, frame, images=images, cache_dir=cache_dir, progress=progress)
    embeddings = features.by_case(frame["case_id"].tolist())
    index = build_case_index(embeddings, frame, model=loaded.name)
    index.save(out)
    return {"out": str(out), "cases": len(frame), "model": loaded.name, "dim": int(embeddings.shape[1])}

"""``dermkit index build``: embed case tables with a model and save them as one similar-case index.

The embeddings come from :func:`dermkit.models.encoding.extract_image_features`, so a table
already embedded for an evaluation is not embedded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dermkit.core.errors import InputError
from dermkit.data.table import read_table
from dermkit.models.encoding import ImageMode, extract_image_features, resolve_model


def build_index(
    model: str,
    tables: Sequence[str | Path],
    out: str | Path,
    *,
    images: ImageMode = "all",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Index every case of ``tables`` (one embedding per case) into ``out``, with the prompt bank
    the server needs for ``classes`` (its ``--classes``; default list when None); a summary of it.

    Storing the bank beside the index means a server started with ``--index out`` loads it in
    milliseconds instead of encoding thousands of prompts at every fresh start.
    """
    from dermkit.ontology import default_ontology
    from dermkit.serve.config import condition_ids
    from dermkit.serve.index import build
    from dermkit.serve.textbank import TextBank, bank_key, concept_leaves, prompt_count

    if not tables:
        raise InputError("give at least one case table", field="table")
    loaded = resolve_model(model)
    frames, embeddings = [], []
    for table in tables:
        frame = read_table(table)
        features = extract_image_features(loaded, frame, images=images, cache_dir=cache_dir, progress=progress)
        frames.append(frame)
        embeddings.append(features.by_case(frame["case_id"].tolist()))
    cases = pd.concat(frames, ignore_index=True)
    if cases["case_id"].duplicated().any():
        duplicate = cases.loc[cases["case_id"].duplicated(), "case_id"].iloc[0]
        raise InputError(f"case id {duplicate!r} is in more than one table", field="case_id")
    vectors = np.concatenate(embeddings)
    build(vectors, cases, model=loaded.name).save(out)
    ontology = default_ontology()
    class_ids, concepts = condition_ids(classes, ontology), concept_leaves(ontology)
    key = bank_key(loaded, class_ids, concepts, ontology)
    TextBank.build(loaded, class_ids, concepts, ontology).save(out, key)
    return {"out": str(out), "cases": len(cases), "model": loaded.name, "dim": int(vectors.shape[1]),
            "prompts": prompt_count(key)}

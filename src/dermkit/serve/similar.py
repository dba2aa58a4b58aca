"""The similar-case index as the service shows it: JSON-ready hits with diagnoses, and thumbnails.

The index itself (build, save, load, search) is :mod:`dermkit.serve.index`; this module adds what
a client needs to display a hit, and serves a small metadata-free JPEG of each indexed case's
first image, looked up by case id only (never by a client-supplied path).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from dermkit.core.errors import DermkitError
from dermkit.data.images import open_image
from dermkit.ontology import default_ontology
from dermkit.serve.errors import ApiError
from dermkit.serve.uploads import strip_metadata

THUMBNAIL_PX = 160
THUMBNAIL_CACHE = 2048


class SimilarCases:
    """Search results with case metadata, and cached thumbnails of the indexed cases."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.model: str | None = getattr(index, "model", None)
        self.thumbnail = lru_cache(maxsize=THUMBNAIL_CACHE)(self._thumbnail)

    @classmethod
    def load(cls, path: str | Path, model_name: str) -> SimilarCases:
        """Load the index at ``path``; refuse one built with another model (its vectors mean nothing here)."""
        from dermkit.serve.index import load

        index = load(path)
        if getattr(index, "model", None) not in (None, model_name):
            raise DermkitError(f"index {path} was built with model {index.model!r}, the server runs {model_name!r}; "
                               f"rebuild it with: dermkit index build --model {model_name} TABLE --out {path}")
        return cls(index)

    def __len__(self) -> int:
        return len(self.index)

    def search(self, embeddings: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        """The ``k`` nearest cases of each unit query, best first, ready for the response."""
        conditions = default_ontology().conditions
        out = []
        for hits in self.index.search(np.asarray(embeddings, dtype=np.float32), k):
            rows = []
            for hit in hits:
                case = self.index.case(hit.case_id)
                node = conditions.find(case.get("diagnosis_id") or "") if case.get("diagnosis_id") else None
                rows.append({
                    "case_id": str(hit.case_id),
                    "score": float(hit.score),
                    "diagnosis": node.name if node is not None else case.get("diagnosis"),
                    "ontology_id": case.get("diagnosis_id"),
                    "source": case.get("source"),
                    "thumbnail_url": f"/v1/cases/{quote(str(hit.case_id), safe='')}/thumbnail"
                    if case.get("image_paths") else None,
                })
            out.append(rows)
        return out

    def _thumbnail(self, case_id: str) -> bytes:
        try:
            case = self.index.case(case_id)
        except KeyError:
            raise ApiError(404, "unknown_case", f"no case {case_id!r} in the index", "case_id") from None
        paths = case.get("image_paths") or []
        if not paths:
            raise ApiError(404, "no_image", f"case {case_id!r} has no image", "case_id")
        image = strip_metadata(open_image(paths[0]))
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()

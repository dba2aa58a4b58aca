"""The similar-case index: unit embeddings of cases plus their metadata, searched by cosine.

Exact search (a chunked torch matrix product) is the reference and the default below
:data:`ANN_MIN_VECTORS`: at 100k vectors it already answers in a few milliseconds. Above that an
approximate index keeps interactive latency: faiss IVF-Flat (inverted lists over a k-means
coarse quantiser; a query scans ``nprobe`` of ``nlist`` lists) or HNSW. faiss is optional and
imported only when an approximate index is built or loaded.

On disk an index is a directory, written atomically: ``embeddings.npy`` (float32, unit rows),
``metadata.parquet`` (one row per embedding: ``case_id`` and the display fields of
:data:`METADATA_COLUMNS` that the table has), ``index.json`` (kind, parameters, model) and, for
approximate kinds, ``ann.faiss``. The embeddings are kept beside the faiss file so that exact
search, recall checks and rebuilding with other parameters never need the model again.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from dermkit.core.atomic import atomic_dir
from dermkit.core.errors import InputError
from dermkit.core.optional import require

Kind = Literal["auto", "exact", "ivf", "hnsw"]
EMBEDDINGS_FILE = "embeddings.npy"
METADATA_FILE = "metadata.parquet"
INFO_FILE = "index.json"
ANN_FILE = "ann.faiss"
FORMAT = "dermkit-case-index"
ANN_MIN_VECTORS = 100_000
METADATA_COLUMNS = ("case_id", "image_paths", "diagnosis", "diagnosis_id", "source", "split", "body_site",
                    "fitzpatrick", "age", "sex", "acquisition", "licence")
# IVF: nlist ≈ 2·√n lists (so a list holds ~√n/2 vectors), trained on 64 points per list; nprobe 16
# gives recall@10 ≥ 0.95 on model embeddings at 1M (bench/index_1m.py sweeps it).
IVF_TRAIN_PER_LIST = 64
DEFAULT_NPROBE = 16
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
DEFAULT_EF_SEARCH = 64
_EXACT_CHUNK = 131_072


class Hit(NamedTuple):
    """One search result: the case, its cosine similarity to the query, its row in the index."""

    case_id: str
    score: float
    row: int


class CaseIndex:
    """Unit case embeddings with metadata; build with :func:`build`, reopen with :func:`load`."""

    def __init__(self, embeddings: np.ndarray, metadata: pd.DataFrame, *, kind: str = "exact",
                 params: dict[str, Any] | None = None, model: str | None = None, ann: Any = None) -> None:
        if embeddings.ndim != 2 or len(embeddings) != len(metadata):
            raise InputError(f"{len(metadata)} metadata rows for embeddings of shape {embeddings.shape}")
        self.embeddings = embeddings
        self.metadata = metadata.reset_index(drop=True)
        self.kind = kind
        self.params = dict(params or {})
        self.model = model
        self._ann = ann
        self._positions = pd.Index(self.metadata["case_id"].astype(str))

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    # -- search -------------------------------------------------------------------------------
    def search_arrays(self, queries: np.ndarray, k: int = 10, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``, each ``(n_queries, k)``, best first; rows are -1 past the index's end.

        ``exact=True`` forces the exact search whatever the index kind (the reference for recall).
        """
        queries = _as_queries(queries, self.dim)
        k = min(k, len(self))
        if exact or self._ann is None:
            return exact_search(self.embeddings, queries, k)
        if self.kind == "ivf":
            self._ann.nprobe = int(self.params["nprobe"])
        else:
            self._ann.hnsw.efSearch = int(self.params["ef_search"])
        scores, rows = self._ann.search(queries, k)
        return scores, rows.astype(np.int64)

    def search(self, queries: np.ndarray, k: int = 10, *, exact: bool = False) -> list[list[Hit]]:
        """The ``k`` most similar cases of each query (unit vectors, or they are normalised here)."""
        scores, rows = self.search_arrays(queries, k, exact=exact)
        case_ids = self._positions
        return [[Hit(case_ids[r], float(s), int(r)) for s, r in zip(score_row, row) if r >= 0]
                for score_row, row in zip(scores, rows)]

    def case(self, case_id: str) -> dict[str, Any]:
        """The metadata of one indexed case; ``KeyError`` when it is not in the index."""
        position = self._positions.get_loc(str(case_id))
        if not isinstance(position, int):  # a case id indexed twice: the first row describes it
            position = int(np.flatnonzero(np.asarray(position))[0])
        row = self.metadata.iloc[position].to_dict()
        return {key: value.tolist() if isinstance(value, np.ndarray) else None if _is_null(value) else value
                for key, value in row.items()}

    # -- storage ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the index directory atomically (a killed save leaves the previous index)."""
        info = {"format": FORMAT, "version": 1, "kind": self.kind, "params": self.params, "model": self.model,
                "count": len(self), "dim": self.dim}
        with atomic_dir(path) as tmp:
            np.save(tmp / EMBEDDINGS_FILE, self.embeddings)
            self.metadata.to_parquet(tmp / METADATA_FILE, index=False)
            if self._ann is not None:
                _faiss().write_index(self._ann, str(tmp / ANN_FILE))
            (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        return Path(path)


def load(path: str | Path, *, mmap: bool = False) -> CaseIndex:
    """Reopen a saved index; ``mmap=True`` maps the embeddings instead of reading them."""
    path = Path(path)
    info_file = path / INFO_FILE
    if not info_file.exists():
        raise InputError("not a dermkit case index (no index.json)", file=path)
    info = json.loads(info_file.read_text())
    if info.get("format") != FORMAT:
        raise InputError(f"unknown index format {info.get('format')!r}", file=info_file)
    embeddings = np.load(path / EMBEDDINGS_FILE, mmap_mode="r" if mmap else None)
    metadata = pd.read_parquet(path / METADATA_FILE)
    ann = _faiss().read_index(str(path / ANN_FILE)) if info["kind"] in ("ivf", "hnsw") else None
    return CaseIndex(embeddings, metadata, kind=info["kind"], params=info.get("params"), model=info.get("model"),
                     ann=ann)


def build(
    embeddings: np.ndarray,
    cases: pd.DataFrame,
    *,
    model: str | None = None,
    kind: Kind = "auto",
    nlist: int | None = None,
    nprobe: int = DEFAULT_NPROBE,
    ef_search: int = DEFAULT_EF_SEARCH,
    seed: int = 0,
) -> CaseIndex:
    """Index one embedding per row of ``cases`` (which needs a ``case_id`` column).

    ``kind="auto"`` is exact below :data:`ANN_MIN_VECTORS` vectors and IVF above. Embeddings
    are normalised to unit length (a copy only if they are not float32 already unit-length).
    """
    if "case_id" not in cases.columns:
        raise InputError("the case metadata needs a case_id column", field="case_id")
    vectors = _unit_rows(np.asarray(embeddings))
    metadata = cases[[c for c in METADATA_COLUMNS if c in cases.columns]].reset_index(drop=True)
    metadata["case_id"] = metadata["case_id"].astype(str)
    if kind == "auto":
        kind = "exact" if len(vectors) < ANN_MIN_VECTORS else "ivf"
    if kind == "exact":
        return CaseIndex(vectors, metadata, kind="exact", model=model)
    faiss = _faiss()
    started = time.perf_counter()
    if kind == "ivf":
        nlist = nlist or default_nlist(len(vectors))
        quantizer = faiss.IndexFlatIP(vectors.shape[1])
        ann = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = rng.choice(len(vectors), size=min(len(vectors), nlist * IVF_TRAIN_PER_LIST), replace=False)
        ann.cp.seed = seed
        ann.train(vectors[np.sort(sample)])
        params: dict[str, Any] = {"nlist": nlist, "nprobe": min(nprobe, nlist)}
    elif kind == "hnsw":
        ann = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        ann.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        params = {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": ef_search}
    else:
        raise InputError(f"unknown index kind {kind!r}; choose auto, exact, ivf or hnsw", field="kind")
    ann.add(vectors)
    params["build_seconds"] = round(time.perf_counter() - started, 2)
    return CaseIndex(vectors, metadata, kind=kind, params=params, model=model, ann=ann)


def default_nlist(count: int) -> int:
    """IVF list count for ``count`` vectors: ~2·√n, a power of two, and at least 39 points per list."""
    return max(1, min(2 ** round(math.log2(max(2 * math.sqrt(count), 1))), count // 39))


def exact_search(embeddings: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products, chunked over the index so memory stays ~chunk × queries."""
    import torch

    query = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    best_scores = torch.full((len(query), 0), -math.inf)
    best_rows = torch.zeros((len(query), 0), dtype=torch.int64)
    with torch.inference_mode():
        for start in range(0, len(embeddings), _EXACT_CHUNK):
            chunk = np.ascontiguousarray(embeddings[start:start + _EXACT_CHUNK], dtype=np.float32)
            block = torch.from_numpy(chunk if chunk.flags.writeable else chunk.copy())  # memmaps are read-only
            scores, rows = torch.topk(query @ block.T, min(k, len(block)), dim=1)
            merged = torch.cat([best_scores, scores], dim=1)
            merged_rows = torch.cat([best_rows, rows + start], dim=1)
            best_scores, order = torch.topk(merged, min(k, merged.shape[1]), dim=1)
            best_rows = torch.gather(merged_rows, 1, order)
    return best_scores.numpy(), best_rows.numpy()


def recall_at_k(found: np.ndarray, reference: np.ndarray) -> float:
    """Mean share of each query's reference top-k rows that ``found`` also returned."""
    hits = [len(set(f[f >= 0].tolist()) & set(r.tolist())) / max(len(r), 1) for f, r in zip(found, reference)]
    return float(np.mean(hits)) if hits else 1.0


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """float32 rows of unit length (zero rows stay zero); a copy only when something changes."""
    if matrix.ndim != 2:
        raise InputError(f"embeddings must be a 2-D array, got shape {matrix.shape}")
    vectors = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.allclose(norms, 1.0, atol=1e-4):
        return np.ascontiguousarray(vectors)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12))


def _as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    array = np.asarray(queries, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise InputError(f"queries must have {dim} columns (the index's dimension), got shape {array.shape}")
    return _unit_rows(array)


def _is_null(value: Any) -> bool:
    """Parquet nulls come back as None, NaN or NaT depending on the column type."""
    return value is None or (np.isscalar(value) and bool(pd.isna(value)))


def _faiss() -> Any:
    return require("faiss", "serve", "approximate similar-case search (package faiss-cpu)")


"""The similar-case index: exact reference, IVF/HNSW recall, save/load, the service's API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from dermkit.core.errors import InputError
from dermkit.serve.index import build, default_nlist, exact_search, load, recall_at_k


def _clustered(count: int, dim: int = 32, centres: int = 50, seed: int = 0) -> np.ndarray:
    """Vectors in tight groups around random centres, like embeddings of near-identical cases."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(centres, dim))
    return (base[np.arange(count) % centres] + 0.2 * rng.normal(size=(count, dim))).astype(np.float32)


def _cases(count: int) -> pd.DataFrame:
    return pd.DataFrame({"case_id": [f"c{i}" for i in range(count)], "diagnosis_id": "melanoma",
                         "image_paths": [[f"/img/{i}.png"] for i in range(count)], "unused": 1,
                         "age": [None if i % 2 else 40.0 for i in range(count)]})


def test_exact_search_matches_brute_force() -> None:
    vectors = _clustered(1000)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:7] + 0.01
    scores, rows = exact_search(vectors, queries, 5)
    brute = queries @ vectors.T
    assert np.array_equal(rows, np.argsort(-brute, axis=1)[:, :5])
    assert np.allclose(scores, np.take_along_axis(brute, rows, axis=1), atol=1e-5)


def test_exact_index_search_and_case_lookup() -> None:
    vectors = _clustered(300)
    index = build(vectors * 3.0, _cases(300), model="tiny-clip")  # not unit: normalised on build
    assert index.kind == "exact" and len(index) == 300 and index.model == "tiny-clip"
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1, atol=1e-5)
    hits = index.search(vectors[42], k=3)[0]
    assert hits[0].case_id == "c42" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    case = index.case("c42")
    assert case["diagnosis_id"] == "melanoma" and case["image_paths"] == ["/img/42.png"] and "unused" not in case
    with pytest.raises(KeyError):
        index.case("nope")


def test_ivf_recall_grows_with_nprobe_up_to_exact() -> None:
    pytest.importorskip("faiss")
    vectors = _clustered(20_000, centres=400)
    index = build(vectors, _cases(len(vectors)), kind="ivf")
    queries = _clustered(100, centres=400, seed=1)  # fresh noisy copies of the same centres
    _, reference = index.search_arrays(queries, 10, exact=True)
    recalls = []
    for nprobe in (1, 16, index.params["nlist"]):
        index.params["nprobe"] = nprobe
        recalls.append(recall_at_k(index.search_arrays(queries, 10)[1], reference))
    assert recalls[0] < recalls[1] and recalls[1] >= 0.9 and recalls[2] >= 0.999


def test_hnsw_recall_against_exact() -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5000, 16)).astype(np.float32)
    index = build(vectors, _cases(len(vectors)), kind="hnsw", ef_search=128)
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    _, reference = index.search_arrays(queries, 10, exact=True)
    assert recall_at_k(index.search_arrays(queries, 10)[1], reference) >= 0.95


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    vectors = _clustered(5000)
    index = build(vectors, _cases(5000), kind="ivf", nlist=32, nprobe=4, model="m")
    index.save(tmp_path / "index")
    again = load(tmp_path / "index")
    assert (again.kind, again.model, again.params["nlist"], again.params["nprobe"]) == ("ivf", "m", 32, 4)
    queries = vectors[:20]
    assert np.array_equal(again.search_arrays(queries, 5)[1], index.search_arrays(queries, 5)[1])
    assert again.case("c7")["image_paths"] == ["/img/7.png"]
    assert again.case("c7")["age"] is None and again.case("c8")["age"] == 40.0  # nulls stay None
    mapped = load(tmp_path / "index", mmap=True)
    exact = index.search_arrays(queries, 5, exact=True)[1]
    assert np.array_equal(mapped.search_arrays(queries, 5, exact=True)[1], exact)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="case_id"):
        build(np.ones((2, 4)), pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(InputError, match="metadata rows"):
        build(np.ones((3, 4)), _cases(2))
    index = build(_clustered(10, dim=4), _cases(10))
    with pytest.raises(InputError, match="4 columns"):
        index.search(np.ones(5))
    with pytest.raises(InputError, match="not a dermkit case index"):
        load(tmp_path)
    assert len(index.search(np.ones(4), k=50)[0]) == 10  # k larger than the index
    assert default_nlist(1_000_000) == 2048 and default_nlist(100) == 2

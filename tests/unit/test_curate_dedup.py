"""Near-duplicate clusters (resized, recompressed, mirrored images; repeated captions) and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dermkit.cli import main
from dermkit.curate.dedup import (
    CLUSTERS_FILE,
    assign_splits_keeping_clusters,
    caption_keys,
    cluster_cases,
    cluster_leaks,
    dedup_table,
)
from dermkit.data.splits import assign_splits
from dermkit.data.table import Case, read_table, write_table


def _photo(seed: int, size: int = 128) -> Image.Image:
    """A textured photo-like image (smooth noise at four scales), distinct per seed and not symmetric.

    Texture matters: the DCT hash of a nearly flat image sits on its median and flips under JPEG.
    """
    rng = np.random.default_rng(seed)
    pixels = np.zeros((size, size, 3)) + rng.uniform(100, 180, 3)
    for cells, amplitude in ((4, 60), (8, 40), (16, 25), (32, 15)):
        grid = rng.uniform(-amplitude, amplitude, (cells, cells, 3)).astype(np.float32)
        pixels += np.stack([np.asarray(Image.fromarray(grid[..., c]).resize((size, size), Image.Resampling.BICUBIC))
                            for c in range(3)], axis=-1)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture
def table(tmp_path: Path) -> Path:
    folder = tmp_path / "img"
    folder.mkdir()
    cases = []
    for i in range(12):
        _photo(i).save(folder / f"{i}.png")
    variants = {  # case → (source image, how it was altered)
        12: (0, lambda im: im.resize((64, 64))),
        13: (1, lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        14: (2, None),  # re-saved as JPEG below
    }
    for number, (source, alter) in variants.items():
        image = Image.open(folder / f"{source}.png").convert("RGB")
        if alter is not None:
            alter(image).save(folder / f"{number}.png")
        else:
            image.save(folder / f"{number}.jpg", quality=70)
    long_caption = "Plaque psoriasis on the extensor surface of the left elbow, silvery scale."
    for i in range(15):
        path = folder / (f"{i}.jpg" if i == 14 else f"{i}.png")
        caption = long_caption if i in (5, 9) else ("melanoma" if i in (3, 4) else f"case {i}")
        cases.append(Case(case_id=f"c{i}", image_paths=[str(path)], source="derm1m", caption=caption,
                          diagnosis_id="melanoma" if i % 2 else "melanocytic_nevus", lesion_id=f"L{i}",
                          patient_id=f"P{i}"))
    return write_table(cases, tmp_path / "table")


def test_clusters_find_resized_mirrored_recompressed_and_same_caption(table: Path) -> None:
    frame = read_table(table)
    clusters = cluster_cases(frame, progress=False)
    labels = clusters.labels
    groups = {frozenset(np.flatnonzero(labels == c)) for c in np.unique(labels) if (labels == c).sum() > 1}
    assert groups == {frozenset({0, 12}), frozenset({1, 13}), frozenset({2, 14}), frozenset({5, 9})}
    assert clusters.image_pairs == 3 and clusters.caption_pairs == 1 and clusters.duplicated_rows == 8
    without_captions = cluster_cases(frame, captions=False, progress=False).labels
    assert without_captions[5] != without_captions[9]


def test_short_and_empty_captions_are_not_evidence() -> None:
    keys = caption_keys(["melanoma", None, "", "A B C D E F", "a-b c d e, f!", "x"])
    assert keys[0] == keys[1] == keys[2] == keys[5] == 0
    assert keys[3] == keys[4] != 0


def test_split_keeps_every_cluster_in_one_split() -> None:
    rng = np.random.default_rng(0)
    count = 400
    frame = pd.DataFrame({
        "case_id": [f"c{i}" for i in range(count)],
        "patient_id": [f"P{i // 2}" for i in range(count)],
        "lesion_id": [None if i % 7 == 0 else f"L{i}" for i in range(count)],
        "diagnosis_id": rng.choice(["melanoma", "nevus", "bcc"], count),
        "derived_from": None, "synthetic": False, "date": None, "split": None,
    })
    labels = np.arange(count)
    for a, b in rng.integers(0, count, size=(60, 2)):  # duplicates across patients
        labels[labels == labels[b]] = labels[a]
    labels = pd.factorize(labels)[0]
    plain = assign_splits(frame, by="patient", seed=1)
    assert cluster_leaks(frame.assign(split=plain), labels)  # an ordinary split leaks them
    for by in ("patient", "lesion", "case"):
        kept = assign_splits_keeping_clusters(frame, labels, by=by, seed=1)
        assert not cluster_leaks(frame.assign(split=kept), labels)
        if by == "patient":
            assert frame.assign(split=kept).groupby("patient_id")["split"].nunique().max() == 1
        assert 0.55 < (kept == "train").mean() < 0.85


def test_dedup_table_and_cli(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = dedup_table(table, split={"by": "patient", "val": 0.3, "test": 0.3, "seed": 0}, progress=False)
    assert summary["clusters"] == 4 and summary["leaks"] == []
    sidecar = pd.read_parquet(table / CLUSTERS_FILE)
    frame = read_table(table)
    assert list(sidecar["case_id"]) == list(frame["case_id"])
    assert frame.loc[0, "split"] == frame.loc[12, "split"] and frame.loc[5, "split"] == frame.loc[9, "split"]
    assert main(["curate", "dedup", str(table), "--json"]) == 0
    assert '"clusters": 4' in capsys.readouterr().out

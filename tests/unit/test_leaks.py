"""Leak checks: shared patients, lesions, derived and near-identical images; the hash index itself."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dermkit.cli import main
from dermkit.core.errors import InputError
from dermkit.data import image_hash
from dermkit.data.image_hash import (
    HASH_BITS,
    HASH_WORDS,
    duplicate_clusters,
    hamming,
    hash_images,
    near_duplicate_pairs,
    phash,
)
from dermkit.data.leaks import DEFAULT_HASH_DISTANCE, find_leaks
from dermkit.data.splits import split_table
from dermkit.data.table import Case, cases_to_frame, read_table, update_table, write_table

LABELS = ["melanocytic_nevus", "basal_cell_carcinoma"]


@pytest.fixture
def table(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    """24 patients with one or two cases each, every case with its own random image, split cleanly."""
    cases = []
    for p in range(24):
        for j in range(1 + p % 2):
            case_id = f"c{p}-{j}"
            cases.append(Case(case_id=case_id, image_paths=[str(make_image(f"img/{case_id}.png"))], source="s",
                              patient_id=f"p{p}", lesion_id=f"p{p}-l{j}", diagnosis_id=LABELS[p % 2]))
    directory = write_table(cases, tmp_path / "cases")
    split_table(directory, by="patient", val=0.25, test=0.25, seed=0)
    return directory


def run_check(table: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main(["data", "check-leaks", str(table), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def move_case(table: Path, case_id: str, split: str) -> None:
    frame = read_table(table)
    frame.loc[frame["case_id"] == case_id, "split"] = split
    update_table(frame, table)


def split_of(table: Path, case_id: str) -> str:
    frame = read_table(table)
    return str(frame.loc[frame["case_id"] == case_id, "split"].iloc[0])


def other(split: str) -> str:
    return "test" if split != "test" else "train"


def test_clean_split_exits_zero(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_check(table, capsys)
    assert code == 0
    assert report["clean"] is True
    assert report["patients"] == report["lesions"] == report["images"] == report["derived"] == []
    assert main(["data", "check-leaks", str(table)]) == 0
    assert "no leaks" in capsys.readouterr().out


def test_shared_patient_is_reported(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Patient p1 has cases c1-0 and c1-1 (two lesions): move one lesion to another split.
    moved = other(split_of(table, "c1-0"))
    move_case(table, "c1-1", moved)
    code, report = run_check(table, capsys)
    assert code == 1 and report["clean"] is False
    assert [item["id"] for item in report["patients"]] == ["p1"]
    assert report["patients"][0]["splits"][moved] == ["c1-1"]
    assert report["lesions"] == [] and report["images"] == []


def test_shared_lesion_is_reported(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = read_table(table)
    target = frame.index[frame["case_id"] == "c3-0"][0]
    elsewhere = frame.index[frame["split"] == other(frame.loc[target, "split"])][0]
    frame.loc[elsewhere, "lesion_id"] = "p3-l0"
    update_table(frame, table)
    code, report = run_check(table, capsys, "--no-images")
    assert code == 1
    assert [item["id"] for item in report["lesions"]] == ["p3-l0"]
    assert sorted(report["lesions"][0]["splits"]) == sorted({frame.loc[target, "split"], frame.loc[elsewhere, "split"]})
    assert report["images"] is None


def test_near_identical_image_under_another_case_id(table: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    frame = read_table(table)
    original = frame[frame["case_id"] == "c4-0"].iloc[0]
    copy = tmp_path / "copy.jpg"
    Image.open(original["image_paths"][0]).resize((48, 48), Image.Resampling.BILINEAR).save(copy, quality=75)
    planted = Case(case_id="planted", image_paths=[str(copy)], source="s", patient_id="someone-else",
                   diagnosis_id=LABELS[0], split=other(original["split"]))
    write_table([*map(Case.from_row, frame.to_dict(orient="records")), planted], table)
    code, report = run_check(table, capsys)
    assert code == 1
    assert report["patients"] == report["lesions"] == []
    [leak] = report["images"]
    assert {image["case_id"] for image in leak["images"]} == {"c4-0", "planted"}
    assert leak["distance"] <= DEFAULT_HASH_DISTANCE
    code, _ = run_check(table, capsys, "--hash-distance", "0")
    assert (code == 1) == (leak["distance"] == 0)


def test_split_with_linked_images_keeps_copies_together(table: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    frame = read_table(table)
    cases = list(map(Case.from_row, frame.to_dict(orient="records")))
    for number, original in enumerate(cases[:8]):  # a re-encoded copy of 8 images, each under a new patient
        copy = tmp_path / f"copy{number}.jpg"
        Image.open(original.image_paths[0]).resize((48, 48)).save(copy, quality=75)
        cases.append(Case(case_id=f"copy{number}", image_paths=[str(copy)], source="s",
                          patient_id=f"stranger{number}", diagnosis_id=original.diagnosis_id))
    write_table(cases, table)
    assert main(["data", "split", str(table), "--link-images", "20", "--val", "0.3", "--test", "0.3"]) == 0
    capsys.readouterr()
    split = read_table(table).set_index("case_id")["split"]
    assert all(split[f"copy{n}"] == split[cases[n].case_id] for n in range(8))
    assert run_check(table, capsys)[0] == 0
    assert main(["data", "split", str(table), "--link-images", "300"]) == 2
    assert "--link-images must be in 0–255" in capsys.readouterr().err


def test_same_file_in_two_splits(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = read_table(table)
    first = frame.index[frame["split"] == "train"][0]
    second = frame.index[frame["split"] == "test"][0]
    frame.at[second, "image_paths"] = list(frame.loc[first, "image_paths"])
    update_table(frame, table)
    code, report = run_check(table, capsys, "--hash-distance", "0")
    assert code == 1
    [leak] = report["images"]
    assert leak["distance"] == 0


def test_synthetic_derived_from_other_split() -> None:
    frame = cases_to_frame([
        Case(case_id="real", image_paths=["/a.png"], source="s", split="test"),
        Case(case_id="fake", image_paths=["/b.png"], source="gan", synthetic=True, derived_from="real", split="train"),
    ])
    report = find_leaks(frame, hash_distance=None)
    assert report.derived == [{"case_id": "fake", "split": "train", "derived_from": "real", "source_split": "test"}]
    assert not report.clean


def test_unsplit_table_and_bad_distance_are_errors(tmp_path: Path, make_image: Callable[..., Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    table = write_table([Case(case_id="a", image_paths=[str(make_image())], source="s")], tmp_path / "t")
    assert main(["data", "check-leaks", str(table)]) == 2
    assert "run `dermkit data split` first" in capsys.readouterr().err
    assert main(["data", "check-leaks", str(tmp_path)]) == 2
    assert "no case table here" in capsys.readouterr().err
    split_table(table)
    assert main(["data", "check-leaks", str(table), "--hash-distance", "256"]) == 2
    assert "--hash-distance must be in 0–255" in capsys.readouterr().err


# -- the hash index -----------------------------------------------------------------------------

def brute_force(hashes: np.ndarray, k: int) -> set[tuple[int, int]]:
    distances = hamming(hashes[:, None, :], hashes[None, :, :])
    return {(i, j) for i, j in zip(*np.nonzero(distances <= k)) if i < j}


def with_neighbours(count: int, flips: range, seed: int) -> np.ndarray:
    """Random 256-bit hashes plus, for each distance in ``flips``, a copy of one of them that far away."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, size=(count, HASH_WORDS), dtype=np.uint64)
    copies = []
    for row, distance in enumerate(flips):
        bits = np.unpackbits(base[row].view(np.uint8))
        bits[rng.choice(bits.size, size=distance, replace=False)] ^= 1
        copies.append(np.packbits(bits).view(np.uint64))
    return np.concatenate([base, np.array(copies, dtype=np.uint64).reshape(-1, HASH_WORDS)])


@pytest.mark.parametrize("radius", [None, 1, 2])
@pytest.mark.parametrize("k", [0, 3, 12, 20, 40])
def test_near_duplicate_pairs_match_brute_force(k: int, radius: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if radius:  # force fewer, wider bands searched within a radius, as chosen for large n
        bands = max(HASH_WORDS, k // radius)
        monkeypatch.setattr(image_hash, "_band_count", lambda bits, count, max_distance: bands)
    hashes = with_neighbours(200, range(0, 45, 3), seed=k)
    pairs, distances = near_duplicate_pairs(hashes, k)
    assert set(map(tuple, pairs.tolist())) == brute_force(hashes, k)
    assert (distances == hamming(hashes[pairs[:, 0]], hashes[pairs[:, 1]])).all()
    assert len(pairs) >= k // 3 + 1  # the planted neighbours within k


def test_near_duplicate_pairs_on_single_words_and_edge_cases() -> None:
    words = np.array([0b0, 0b1, 0b111, 0b111 << 60], dtype=np.uint64)
    pairs, distances = near_duplicate_pairs(words, 2)
    assert pairs.tolist() == [[0, 1], [1, 2]] and distances.tolist() == [1, 2]
    pairs, distances = near_duplicate_pairs(np.empty((0, HASH_WORDS), dtype=np.uint64), 3)
    assert pairs.shape == (0, 2) and distances.shape == (0,)
    with pytest.raises(ValueError, match="max_distance"):
        near_duplicate_pairs(np.zeros((3, HASH_WORDS), dtype=np.uint64), HASH_BITS)
    same = np.full((5, HASH_WORDS), 0xDEADBEEF, dtype=np.uint64)
    assert len(near_duplicate_pairs(same, 0)[0]) == 10


def test_duplicate_clusters_link_chains() -> None:
    words = np.array([0b0, 0b1, 0b11, 0xFFFF_0000, 0xFFFF_0001, 0xF0F0_F0F0_F0F0_F0F0], dtype=np.uint64)
    clusters = duplicate_clusters(words, 1)
    assert [c.tolist() for c in clusters] == [[0, 1, 2], [3, 4]]
    copies = np.concatenate([with_neighbours(3, range(0), seed=0)] * 400)  # 1,200 rows, 3 distinct hashes
    assert [c.tolist() for c in duplicate_clusters(copies, 0)] == [list(range(r, 1200, 3)) for r in range(3)]
    assert duplicate_clusters(np.empty((0, HASH_WORDS), dtype=np.uint64), 4) == []


def test_phash_is_robust_to_resizing_but_tells_images_apart(make_image: Callable[..., Path], tmp_path: Path) -> None:
    paths = [make_image(f"{i}.png", size=(96, 96)) for i in range(6)]
    resized = tmp_path / "resized.jpg"
    Image.open(paths[0]).resize((60, 60), Image.Resampling.BICUBIC).save(resized, quality=75)
    hashes = hash_images([*paths, resized], workers=2, progress=False)
    assert hashes.dtype == np.uint64 and hashes.shape == (7, HASH_WORDS)
    assert hamming(hashes[0], hashes[6]) <= DEFAULT_HASH_DISTANCE
    assert min(int(hamming(a, b)) for a, b in itertools.combinations(hashes[:6], 2)) > 3 * DEFAULT_HASH_DISTANCE
    assert (hashes[0] == phash(Image.open(paths[0]))).all()


def test_hash_images_names_an_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="broken.png"):
        hash_images([bad], progress=False)

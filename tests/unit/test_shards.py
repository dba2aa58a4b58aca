"""Tar shards: writing, streaming, rank/worker splitting, deterministic shuffling, corrupt images."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from dermkit.cli import main
from dermkit.core.errors import InputError
from dermkit.data.shard_loader import ShardDataset
from dermkit.data.shards import INDEX_FILE, iter_shard, read_manifest, write_shards
from dermkit.data.table import Case, write_table


@pytest.fixture
def table(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    cases = []
    for i in range(23):
        paths = [str(make_image(f"img/{i}.png", size=(24, 24)))]
        if i % 5 == 0:  # some cases have a second image
            paths.append(str(make_image(f"img/{i}b.jpg", size=(20, 20))))
        caption = None if i % 4 == 0 else f"caption {i}: psoriasis"
        cases.append(Case(case_id=f"case.{i}/x", image_paths=paths, source="derm1m", caption=caption,
                          diagnosis_id="plaque_psoriasis", acquisition="clinical"))
    return write_table(cases, tmp_path / "table")


def _all_keys(dataset: ShardDataset) -> list[str]:
    return [sample["key"] for sample in dataset]


def test_write_and_read_back(table: Path, tmp_path: Path) -> None:
    manifest = write_shards(table, tmp_path / "shards", samples_per_shard=7, progress=False)
    assert manifest["samples"] == 28 and [s["samples"] for s in manifest["shards"]] == [7, 7, 7, 7]
    index = pd.read_parquet(tmp_path / "shards" / INDEX_FILE)
    assert len(index) == 28 and index["case_id"].iloc[0] == "case.0/x"
    first = next(iter_shard(tmp_path / "shards" / manifest["shards"][0]["name"]))
    assert first.key == "000000000_0" and first.extension == "png"
    assert first.image == (tmp_path / "img" / "0.png").read_bytes()
    assert "psoriasis" in first.caption.lower()  # built from the fields: case 0 has no caption
    assert first.case["case_id"] == "case.0/x" and first.case["image_index"] == 0
    row = index.iloc[1]  # the second image of case 0, read back through the index's byte offset
    assert (row["key"], row["image_index"]) == ("000000000_1", 1)
    with open(tmp_path / "shards" / row["shard"], "rb") as handle:
        handle.seek(int(row["offset"]))
        assert handle.read(int(row["size"])) == (tmp_path / "img" / "0b.jpg").read_bytes()


def test_every_sample_once_across_ranks_and_workers(table: Path, tmp_path: Path) -> None:
    write_shards(table, tmp_path / "shards", samples_per_shard=3, progress=False)
    everything = sorted(_all_keys(ShardDataset(tmp_path / "shards", shuffle=False)))
    assert len(everything) == 28
    per_rank = [ShardDataset(tmp_path / "shards", rank=r, world_size=2, seed=1) for r in range(2)]
    seen = []
    for dataset in per_rank:
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
        seen.extend(sample["key"] for sample in loader)
    assert sorted(seen) == everything


def test_shuffle_is_deterministic_per_epoch(table: Path, tmp_path: Path) -> None:
    write_shards(table, tmp_path / "shards", samples_per_shard=4, progress=False)
    dataset = ShardDataset(tmp_path / "shards", seed=3, buffer_size=5)
    epoch0 = _all_keys(dataset)
    assert epoch0 == _all_keys(ShardDataset(tmp_path / "shards", seed=3, buffer_size=5))
    dataset.set_epoch(1)
    epoch1 = _all_keys(dataset)
    assert epoch1 != epoch0 and sorted(epoch1) == sorted(epoch0)


def test_transform_and_collate(table: Path, tmp_path: Path) -> None:
    write_shards(table, tmp_path / "shards", samples_per_shard=10, progress=False)

    def to_tensor(image):
        return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32))

    loader = torch.utils.data.DataLoader(ShardDataset(tmp_path / "shards", to_tensor), batch_size=4)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 8, 8, 3) and len(batch["caption"]) == 4


def _rewrite_member(shard: Path, name: str, data: bytes) -> None:
    """Replace one member's bytes (keeping the others), as a damaged upload would."""
    with tarfile.open(shard) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]
    with tarfile.open(shard, "w") as archive:
        for member, content in members:
            content = data if member.name == name else content
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))


def test_corrupt_image_is_skipped_and_reported(table: Path, tmp_path: Path) -> None:
    manifest = write_shards(table, tmp_path / "shards", samples_per_shard=28, progress=False)
    shard = tmp_path / "shards" / manifest["shards"][0]["name"]
    _rewrite_member(shard, "000000002_0.png", b"\x89PNG\r\n\x1a\n not really a png")
    dataset = ShardDataset(tmp_path / "shards", shuffle=False)
    with pytest.warns(RuntimeWarning, match="000000002_0"):
        keys = _all_keys(dataset)
    assert len(keys) == 27 and "000000002_0" not in keys and keys[-1] == "000000022_0"
    assert dataset.skipped == [{"shard": manifest["shards"][0]["name"], "key": "000000002_0",
                                "reason": dataset.skipped[0]["reason"]}]
    assert "not a readable image" in dataset.skipped[0]["reason"]


def test_truncated_shard_keeps_samples_before_the_damage(table: Path, tmp_path: Path) -> None:
    manifest = write_shards(table, tmp_path / "shards", samples_per_shard=28, progress=False)
    shard = tmp_path / "shards" / manifest["shards"][0]["name"]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    dataset = ShardDataset(tmp_path / "shards", shuffle=False)
    with pytest.warns(RuntimeWarning, match="damaged shard"):
        keys = _all_keys(dataset)
    assert 5 < len(keys) < 28 and keys[0] == "000000000_0"
    with pytest.raises(InputError):
        list(iter_shard(shard))


def test_missing_image_is_reported_at_write_time(table: Path, tmp_path: Path) -> None:
    (table.parent / "img" / "3.png").unlink()
    manifest = write_shards(table, tmp_path / "shards", progress=False)
    assert manifest["samples"] == 27 and manifest["skipped"][0]["case_id"] == "case.3/x"
    assert read_manifest(tmp_path / "shards")["samples"] == 27


def test_not_a_shard_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a shard directory"):
        ShardDataset(tmp_path)


def test_cli_shard(table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "shard", str(table), "--out", str(tmp_path / "s"), "--samples-per-shard", "10"]) == 0
    assert "28 samples in 3 shards" in capsys.readouterr().out


@pytest.mark.parametrize("tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_reads_shards_written_by_other_tools(tmp_path: Path, tar_format: int) -> None:
    """Long names (pax records, GNU long-name entries, the ustar prefix) and directories."""
    key = "d" * 60 + "/" + "k" * 90 if tar_format == tarfile.USTAR_FORMAT else "k" * 150
    with tarfile.open(tmp_path / "other.tar", "w", format=tar_format) as archive:
        archive.addfile(_directory("somedir"))
        for suffix, data in (("jpg", b"\xff\xd8 image"), ("txt", "légende".encode()), ("json", b'{"case_id": "x"}')):
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (sample,) = list(iter_shard(tmp_path / "other.tar"))
    assert sample.key == key.rpartition("/")[2] and sample.image == b"\xff\xd8 image"
    assert sample.caption == "légende" and sample.case == {"case_id": "x"}


def _directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info

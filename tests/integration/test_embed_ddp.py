"""`dermkit embed` under torchrun: two gloo processes write parts whose union is the one-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from dermkit.cli import main
from dermkit.curate.embed import read_embeddings, share
from dermkit.data.table import Case, write_table


def embed_args(table: Path, out: Path) -> list[str]:
    return ["embed", str(table), "--model", "tiny-clip", "--out", str(out), "--images", "all",
            "--precision", "fp32", "--workers", "0", "--batch-size", "4", "--quiet", "--json"]


def test_share_covers_every_row_once() -> None:
    for count in (0, 1, 7, 100):
        for world in (1, 2, 3, 8):
            rows = [r for rank in range(world) for r in range(count)[share(count, rank, world)]]
            assert rows == list(range(count))


@pytest.mark.slow
def test_two_processes_equal_one_process(
    tmp_path: Path, make_image: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [Case(case_id=f"c{i}", source="derm1m", caption=f"caption {i}",
                  image_paths=[str(make_image(f"img/{i}_{j}.png")) for j in range(1 + i % 2)])
             for i in range(11)]
    table = write_table(cases, tmp_path / "table")
    assert main(embed_args(table, tmp_path / "single")) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["world_size"] == 1 and single["rows"] == 16

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "dermkit.cli", *embed_args(table, tmp_path / "ddp")],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    manifest = json.loads((tmp_path / "ddp" / "manifest.json").read_text())
    # cases 0-4 (7 images) on rank 0, cases 5-10 (9 images) on rank 1
    assert manifest["world_size"] == 2 and manifest["rows_per_part"] == [7, 9] and manifest["rows"] == 16
    assert sorted(p.name for p in (tmp_path / "ddp" / "img_emb").iterdir()) == ["img_emb_0000.npy", "img_emb_0001.npy"]

    one, one_meta = read_embeddings(tmp_path / "single")
    two, two_meta = read_embeddings(tmp_path / "ddp")
    assert one_meta[["case_id", "image_index", "image_path", "caption"]].equals(
        two_meta[["case_id", "image_index", "image_path", "caption"]])
    np.testing.assert_allclose(two, one, atol=1e-5)
    assert np.allclose(np.linalg.norm(one, axis=1), 1, atol=1e-5)

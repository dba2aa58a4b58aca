"""Retrieval recall on a hand-made similarity pattern, and the JSONL log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dermkit.train.run_log import MetricsLog, retrieval_recall


def test_recall_counts_a_hit_when_a_top_k_item_has_the_query_caption() -> None:
    eye = torch.eye(4)
    images = eye
    texts = eye[[1, 0, 2, 3]]  # images 0 and 1 best match each other's caption
    recall = retrieval_recall(images, texts, ["a", "b", "c", "d"], ks=(1, 2))
    assert recall["val_i2t_R@1"] == 0.5 and recall["val_t2i_R@1"] == 0.5
    same = retrieval_recall(images, texts, ["a", "a", "c", "d"], ks=(1,))  # 0 and 1 share a caption
    assert same["val_i2t_R@1"] == 1.0


def test_metrics_log_appends_json_lines_only_when_enabled(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "run")
    log.write({"event": "step", "step": 1, "loss": 0.5})
    log.close()
    MetricsLog(tmp_path / "other", enabled=False).write({"event": "step"})
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["loss"] == 0.5 and "time" in records[0]
    assert not (tmp_path / "other").exists()


def test_tensorboard_without_the_package_names_what_to_install(tmp_path: Path) -> None:
    import importlib.util

    from dermkit.core.optional import MissingDependencyError

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed")
    with pytest.raises(MissingDependencyError, match="pip install"):
        MetricsLog(tmp_path, tensorboard=True)

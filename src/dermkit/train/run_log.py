"""What a run reports: a JSONL metrics log (plus TensorBoard when installed) and retrieval recall."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dermkit.core.optional import require

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Append-only JSONL, one record per event, flushed at once so a killed run keeps its history."""

    def __init__(self, run_dir: Path, *, tensorboard: bool = False, enabled: bool = True) -> None:
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        if tensorboard:
            summary = require("torch.utils.tensorboard", "tensorboard", "TensorBoard logging")
            self.writer = summary.SummaryWriter(str(run_dir / "tensorboard"))
        run_dir.mkdir(parents=True, exist_ok=True)
        self.handle = open(run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115  (closed by close())

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        self.handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        self.handle.flush()
        if self.writer is not None and "step" in record:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{record.get('event', 'metric')}/{key}", value, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.handle.close()
            if self.writer is not None:
                self.writer.close()


def retrieval_recall(
    image_features: torch.Tensor, text_features: torch.Tensor, captions: Sequence[str], ks: Sequence[int]
) -> dict[str, float]:
    """Validation recall@k of paired, L2-normalised features; pair i is image i, caption i.

    Scored by the one retrieval metric (:mod:`dermkit.metrics.retrieval`, shared with evaluation):
    an item is relevant to a query when it carries the same caption text as the query's pair.
    """
    from dermkit.metrics.retrieval import retrieval_metrics

    labels = np.unique(np.asarray(captions, dtype=object), return_inverse=True)[1]
    relevant = labels[:, None] == labels[None, :]
    similarity = (image_features @ text_features.T).float().cpu().numpy()
    metrics = retrieval_metrics(similarity, relevant, ks)
    return {
        f"val_{short}_R@{k}": metrics[direction][f"R@{k}"]
        for short, direction in (("i2t", "image_to_text"), ("t2i", "text_to_image"))
        for k in ks
    }

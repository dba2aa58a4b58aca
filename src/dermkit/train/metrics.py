"""What a run reports: a JSONL metrics log (plus TensorBoard when installed) and retrieval recall."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
        self.handle = open(run_dir / METRICS_FILE, "a", encoding="utf-8")

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
    """Image→text and text→image recall@k of L2-normalised features; pair i is image i, caption i.

    An item is relevant to a query when it carries the same caption text as the query's pair.
    """
    ids = {caption: i for i, caption in enumerate(dict.fromkeys(captions))}
    labels = torch.tensor([ids[c] for c in captions], device=image_features.device)
    relevant = labels[:, None] == labels[None, :]
    similarity = image_features @ text_features.T
    results = {}
    for direction, scores in (("i2t", similarity), ("t2i", similarity.T)):
        for k in ks:
            top = scores.topk(min(k, scores.shape[1]), dim=1).indices
            hits = relevant.gather(1, top).any(dim=1)
            results[f"val_{direction}_R@{k}"] = float(hits.float().mean())
    return results

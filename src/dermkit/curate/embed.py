"""Distributed image embedding of a case table, written in the clip-retrieval layout.

One command for one CPU process, a multi-GPU node or a cluster: under ``torchrun`` each process
takes a contiguous share of the table's rows (rank r of w takes rows ``[r·n/w, (r+1)·n/w)``),
embeds it with :func:`dermkit.models.encoding.extract_image_features` (so batching, DataLoader
workers and the bf16 check are the evaluation's own), and writes its part:

    OUT/img_emb/img_emb_<rank>.npy         float32, unit rows, one per image
    OUT/metadata/metadata_<rank>.parquet   case_id, image_index, image_path, caption (same order)
    OUT/manifest.json                      written by rank 0 once every part exists

Parts are numbered by rank with four digits, so concatenating them in name order gives the
table's order. The manifest is the completion mark: a directory without one is unfinished.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dermkit.core import distributed as ranks
from dermkit.core.atomic import atomic_path, atomic_write_text
from dermkit.core.errors import InputError
from dermkit.core.precision import Precision
from dermkit.data.table import read_table
from dermkit.models.encoding import (
    ImageMode,
    extract_image_features,
    image_index,
    resolve_model,
)
from dermkit.train import distributed

EMB_DIR = "img_emb"
META_DIR = "metadata"
MANIFEST_FILE = "manifest.json"


def share(count: int, rank: int, world: int) -> slice:
    """The contiguous rows of ``count`` that ``rank`` of ``world`` embeds."""
    return slice(count * rank // world, count * (rank + 1) // world)


def embed_table(
    table: str | Path,
    model: str,
    out_dir: str | Path,
    *,
    images: ImageMode = "first",
    batch_size: int = 64,
    num_workers: int | None = None,
    precision: Precision = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Embed this process's share of ``table`` into ``out_dir``; rank 0 returns the manifest."""
    with distributed.process_group() as device:
        rank, world = ranks.rank(), ranks.world_size()
        frame = read_table(table)
        if frame.empty:
            raise InputError("the table has no cases to embed", file=table)
        part = frame.iloc[share(len(frame), rank, world)].reset_index(drop=True)
        out = Path(out_dir)
        loaded = resolve_model(model, str(device))
        if len(part):
            with tempfile.TemporaryDirectory(prefix="dermkit-embed-") as cache:  # the result is read into memory
                features = extract_image_features(loaded, part, images=images, cache_dir=cache,
                                                  batch_size=batch_size, num_workers=num_workers,
                                                  precision=precision, device=str(device), progress=progress)
            embeddings = features.embeddings
            metadata = image_index(part, images).rename(columns={"path": "image_path"})
            captions = dict(zip(part["case_id"], part["caption"]))
            metadata["caption"] = metadata["case_id"].map(captions)
            precision_used = features.meta.get("precision_used")
        else:
            embeddings = np.zeros((0, loaded.embed_dim), dtype=np.float32)
            metadata = pd.DataFrame(columns=["case_id", "image_index", "image_path", "caption"])
            precision_used = None
        rows = len(embeddings)
        with atomic_path(out / EMB_DIR / f"img_emb_{rank:04d}.npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, embeddings.astype(np.float32))
        with atomic_path(out / META_DIR / f"metadata_{rank:04d}.parquet") as tmp:
            metadata.to_parquet(tmp, index=False)
        counts = [int(count) for count in ranks.all_gather_objects(rows)]
        manifest = {"format": "clip-retrieval", "model": loaded.name, "embed_dim": int(loaded.embed_dim),
                    "images": images, "world_size": world, "rows_per_part": counts, "rows": sum(counts),
                    "cases": len(frame), "precision_used": precision_used, "table": str(table)}
        if ranks.is_main():
            atomic_write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
        ranks.barrier()  # the manifest exists before any rank returns
        return manifest


def read_embeddings(out_dir: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """All parts of a finished embedding directory, concatenated in rank order."""
    out = Path(out_dir)
    if not (out / MANIFEST_FILE).exists():
        raise InputError("no manifest.json: the embedding run did not finish", file=out)
    parts = sorted((out / EMB_DIR).glob("img_emb_*.npy"))
    embeddings = np.concatenate([np.load(p) for p in parts])
    metadata = pd.concat([pd.read_parquet(out / META_DIR / f"metadata_{p.stem.removeprefix('img_emb_')}.parquet")
                          for p in parts], ignore_index=True)
    return embeddings, metadata

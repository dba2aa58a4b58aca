"""The feature cache: one weights fingerprint, one location rule, the only writer of cached features.

``dermkit train ddx``, ``train clip``, ``eval classifier`` and ``predict`` read and write trunk
features here (:class:`FeatureCache`), so a model's frozen trunk encodes a given image under a given
view once; the evaluation tasks, the similar-case index and ``dermkit embed`` keep a table's unit
embeddings here (:class:`EmbeddingsEntry`, keyed by :mod:`dermkit.models.encoding`).

- **Fingerprint** (:class:`FeatureCache`): the model name, a digest of the trunk's weights
  (:func:`weights_fingerprint`: parameters and buffers), the
  preprocessing, the test-time view (0 is the plain view and is left out of the key), the precision
  where it matters, and the inputs. An image is identified by path, size and modification time
  (:func:`image_identity`), not a content hash: hashing would read every image on every run, and a
  replaced file changes size or mtime. A touched or copied file is encoded again, never served stale.
- **Location** (:func:`cache_directory`): the directory the user names (``--cache-dir``), else the
  user cache dir ``$DERMKIT_CACHE_DIR/features``, ``$XDG_CACHE_HOME/dermkit/features`` or
  ``~/.cache/dermkit/features``; never inside an input table.
- **Fill** (:func:`get_or_compute`): rank 0 says whether the entry exists; on a miss each rank
  encodes every world_size-th input, the main rank writes the whole entry atomically, all wait,
  all load.

Every entry is written atomically (:mod:`dermkit.core.atomic`): a killed run leaves no half entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from dermkit.core import distributed
from dermkit.core.atomic import atomic_dir, atomic_path
from dermkit.models.embeddings import ImageFeatures

if TYPE_CHECKING:  # torch is imported where used, so the location rule stays cheap to import
    import torch

    from dermkit.models.backbones import Backbone

CACHE_ENV = "DERMKIT_CACHE_DIR"
EMBEDDINGS_FILE = "embeddings.npy"
INDEX_FILE = "index.parquet"
META_FILE = "meta.json"


def user_cache_root() -> Path:
    """``$DERMKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/dermkit``, else ``~/.cache/dermkit``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dermkit"


def default_cache_dir() -> Path:
    """Where cached features go when the user names no directory."""
    return user_cache_root() / "features"


def cache_directory(cache_dir: str | Path | None) -> Path:
    """The location rule: the directory the user named, else :func:`default_cache_dir`."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


def weights_fingerprint(weights: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """Hash of every parameter and buffer (name, dtype, shape, bytes): equal weights, equal fingerprint.

    Buffers count because BatchNorm running statistics change what a network computes in eval mode;
    ``weights`` is a module or the named tensors of part of one (a tower's trunk).
    """
    import torch

    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def image_identity(path: str) -> list[object]:
    """A changed image file (new content ⇒ new size or modification time) changes the key."""
    stat = Path(path).stat()
    return [path, stat.st_size, stat.st_mtime_ns]


@dataclass
class FeatureCache:
    """Trunk features of one frozen tower for a list of inputs, stored under ``directory``."""

    directory: Path
    kind: str
    fingerprint: dict[str, object]

    @property
    def path(self) -> Path:
        text = json.dumps(self.fingerprint, sort_keys=True, default=str)
        return self.directory / f"{self.kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}.pt"

    def load(self) -> dict[str, torch.Tensor] | None:
        import torch

        if not self.path.exists():
            return None
        stored = torch.load(self.path, map_location="cpu", weights_only=True)
        return dict(zip(stored["keys"], stored["features"], strict=True))

    def save(self, keys: Sequence[str], features: torch.Tensor) -> None:
        import torch

        with atomic_path(self.path) as tmp:
            torch.save({"keys": list(keys), "features": features.cpu()}, tmp)


@dataclass(frozen=True)
class EmbeddingsEntry:
    """A table's embeddings (one row per image, with its ``case_id`` and ``image_index``) and their
    metadata, stored as a directory under ``directory`` named by ``name`` and a digest of ``key``."""

    directory: Path
    name: str
    key: dict[str, Any]

    @property
    def path(self) -> Path:
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:20]
        return self.directory / f"{_slug(self.name)}-{digest}"

    def load(self) -> ImageFeatures | None:
        if not (self.path / META_FILE).exists():
            return None
        index = pd.read_parquet(self.path / INDEX_FILE)
        return ImageFeatures(
            case_ids=index["case_id"].to_numpy(dtype=object),
            image_index=index["image_index"].to_numpy(),
            embeddings=np.load(self.path / EMBEDDINGS_FILE),
            meta=json.loads((self.path / META_FILE).read_text()),
        )

    def save(self, embeddings: np.ndarray, index: pd.DataFrame, meta: dict[str, Any]) -> None:
        with atomic_dir(self.path) as tmp:
            np.save(tmp / EMBEDDINGS_FILE, embeddings)
            index.to_parquet(tmp / INDEX_FILE, index=False)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:60]


def trunk_cache(backbone: Backbone, paths: Sequence[str], directory: str | Path | None,
                view: int = 0) -> FeatureCache:
    """The entry of a frozen trunk's features for ``paths``: keyed by weights, preprocessing and files,
    so ``train ddx``, ``eval classifier`` and ``predict`` with the same trunk share it; ``view`` > 0 is
    a test-time view (``models.transforms.dihedral_view``), an entry of its own."""
    key: dict[str, object] = {"model": backbone.name, "weights": weights_fingerprint(backbone.module),
                              "preprocessing": json.dumps(backbone.preprocess, sort_keys=True),
                              "items": [image_identity(p) for p in paths]}
    return FeatureCache(cache_directory(directory), "image", {**key, "view": view} if view else key)


def get_or_compute(
    cache: FeatureCache,
    keys: Sequence[str],
    load: Callable[[str], torch.Tensor],
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    description: str = "features",
) -> tuple[dict[str, torch.Tensor], bool]:
    """The features of ``keys`` (key → row) and whether they were already cached.

    Every rank must call this together: the hit is rank 0's answer, a miss is encoded across the
    ranks (each takes every world_size-th key) and written once by the main rank.
    """
    import torch

    hit = bool(distributed.broadcast_object(cache.path.exists()))
    if not hit:
        size, rank = distributed.world_size(), distributed.rank()
        shard = compute_features(keys[rank::size], load, encode, Batching(batch_size, device, workers, description))
        shards = distributed.all_gather_objects(shard)
        if distributed.is_main():
            features = torch.empty(len(keys), shard.shape[1])
            for index, part in enumerate(shards):
                features[index::size] = part
            cache.save(keys, features)
    distributed.barrier()
    loaded = cache.load()
    assert loaded is not None
    return loaded, hit


class _Loaded:
    """``keys`` turned into input tensors one at a time, so loader workers can decode in parallel."""

    def __init__(self, keys: Sequence[str], load: Callable[[str], torch.Tensor]) -> None:
        self.keys, self.load = keys, load

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.load(self.keys[index])


def _channels_last(batch: torch.Tensor) -> torch.Tensor:
    """Image batches in channels-last layout, which CPU convolutions run markedly faster on."""
    import torch

    return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch


@dataclass(frozen=True)
class Batching:
    """How :func:`compute_features` runs: batch size, device, loader workers and the progress bar's label."""

    batch_size: int
    device: torch.device
    workers: int = 0
    description: str = "features"


def compute_features(
    keys: Sequence[str],
    load: Callable[[str], torch.Tensor],
    encode: Callable[[torch.Tensor], torch.Tensor],
    batching: Batching,
) -> torch.Tensor:
    """Encode ``keys`` in batches, in order; ``load`` turns one key into one input tensor."""
    import torch
    from tqdm.auto import tqdm

    dataset = cast("torch.utils.data.Dataset[torch.Tensor]", _Loaded(keys, load))  # a map-style dataset
    loader = torch.utils.data.DataLoader(dataset, batch_size=batching.batch_size, num_workers=batching.workers)
    # The loader draws its worker seed from the global RNG: fork it, so that a run that fills the
    # cache and a run that finds it consume the same random numbers afterwards.
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        chunks = [encode(_channels_last(batch.to(batching.device))).float().cpu()
                  for batch in tqdm(loader, desc=batching.description, leave=False)]
    return torch.cat(chunks)

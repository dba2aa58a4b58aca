"""Frozen towers: split a tower at its projection and cache the frozen trunk's features on disk.

When a tower's trunk is frozen, its output for a given input never changes, so it is computed
once (without augmentation: the frozen side sees the evaluation preprocessing) and only the
projection head runs during training. The cache file is keyed by the trunk's weights, the
preprocessing and the inputs (image path, size and modification time, or the caption text), so
changing any of them computes a fresh cache instead of reusing a stale one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dermkit.core import distributed as ranks
from dermkit.core.atomic import atomic_path
from dermkit.core.errors import DermkitError

# Where open_clip keeps each tower's projection: timm image towers (``head``), vision and HF text
# transformers (``proj``), open_clip's built-in text transformer (``text_projection``).
PROJECTION_ATTRS = {"image": ("head", "proj"), "text": ("proj", "text_projection")}
# Parameters of the model itself that belong to neither tower.
SHARED_PARAMETERS = ("logit_scale", "logit_bias")


class MatrixProjection(nn.Module):
    """A bare projection matrix (``x @ W``) as a module, sharing the tower's parameter."""

    def __init__(self, weight: nn.Parameter) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


@dataclass
class Tower:
    """One side of an open_clip model, split into a trunk and the projection head after it."""

    side: str
    holder: nn.Module  # the module whose attribute ``projection`` is the head
    projection: str
    encode: Callable[[torch.Tensor], torch.Tensor]
    parameters: list[nn.Parameter]

    @classmethod
    def of(cls, model: nn.Module, side: str) -> Tower:
        if side == "image":
            holder, encode, params = model.visual, model.encode_image, list(model.visual.parameters())
        elif hasattr(model, "text"):  # open_clip's CustomTextCLIP
            holder, encode, params = model.text, model.encode_text, list(model.text.parameters())
        else:  # open_clip's CLIP keeps the text transformer's modules on the model itself
            holder, encode = model, model.encode_text
            params = [p for name, p in model.named_parameters()
                      if not name.startswith("visual.") and name not in SHARED_PARAMETERS]
        for name in PROJECTION_ATTRS[side]:
            if getattr(holder, name, None) is not None:
                return cls(side, holder, name, encode, params)
        raise DermkitError(f"cannot find the {side} projection of {type(holder).__name__} "
                           f"(looked for {PROJECTION_ATTRS[side]})")

    def head(self) -> nn.Module:
        """The projection as a module mapping trunk features to the joint embedding space."""
        value = getattr(self.holder, self.projection)
        return value if isinstance(value, nn.Module) else MatrixProjection(value)

    def trunk_parameters(self) -> list[nn.Parameter]:
        head_ids = {id(p) for p in self.head().parameters()}
        return [p for p in self.parameters if id(p) not in head_ids]

    @contextlib.contextmanager
    def without_projection(self) -> Iterator[None]:
        """Temporarily remove the head so the tower's own forward returns trunk features."""
        value = getattr(self.holder, self.projection)
        # open_clip skips a ``None`` matrix projection but calls a module head unconditionally.
        setattr(self.holder, self.projection, nn.Identity() if isinstance(value, nn.Module) else None)
        try:
            yield
        finally:
            setattr(self.holder, self.projection, value)

    def encode_trunk(self, inputs: torch.Tensor) -> torch.Tensor:
        with self.without_projection():
            return self.encode(inputs)


def weights_digest(parameters: Sequence[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in parameters:
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


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
        if not self.path.exists():
            return None
        stored = torch.load(self.path, map_location="cpu", weights_only=True)
        return dict(zip(stored["keys"], stored["features"], strict=True))

    def save(self, keys: Sequence[str], features: torch.Tensor) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({"keys": list(keys), "features": features.cpu()}, tmp)


class _Loaded(torch.utils.data.Dataset):
    """``keys`` turned into input tensors one at a time, so loader workers can decode in parallel."""

    def __init__(self, keys: Sequence[str], load: Callable[[str], torch.Tensor]) -> None:
        self.keys, self.load = keys, load

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.load(self.keys[index])


def fill_cache(
    cache: FeatureCache,
    keys: Sequence[str],
    load: Callable[[str], torch.Tensor],
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    description: str = "features",
) -> None:
    """Encode ``keys`` across ranks (each takes every world_size-th) and let the main rank save them all."""
    size, rank = ranks.world_size(), ranks.rank()
    shard = compute_features(keys[rank::size], load, encode, batch_size=batch_size, device=device,
                             workers=workers, description=description)
    shards = ranks.all_gather_objects(shard)
    if ranks.is_main():
        features = torch.empty(len(keys), shard.shape[1])
        for index, part in enumerate(shards):
            features[index::size] = part
        cache.save(keys, features)


def _channels_last(batch: torch.Tensor) -> torch.Tensor:
    """Image batches in channels-last layout, which CPU convolutions run markedly faster on."""
    return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch


@torch.no_grad()
def compute_features(
    keys: Sequence[str],
    load: Callable[[str], torch.Tensor],
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    description: str = "features",
) -> torch.Tensor:
    """Encode ``keys`` in batches, in order; ``load`` turns one key into one input tensor."""
    from tqdm.auto import tqdm

    loader = torch.utils.data.DataLoader(_Loaded(keys, load), batch_size=batch_size, num_workers=workers)
    # The loader draws its worker seed from the global RNG: fork it, so that a run that fills the
    # cache and a run that finds it consume the same random numbers afterwards.
    with torch.random.fork_rng(devices=[]):
        chunks = [encode(_channels_last(batch.to(device))).float().cpu()
                  for batch in tqdm(loader, desc=description, leave=False)]
    return torch.cat(chunks)

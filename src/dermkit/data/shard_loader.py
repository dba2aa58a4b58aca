"""Streaming shards into training: a torch ``IterableDataset`` split by rank and worker.

Every epoch the shard list is shuffled with ``(seed, epoch)``, so all ranks agree on the order
without talking; global worker ``rank * num_workers + worker_id`` then takes every
``world_size * num_workers``-th shard, so no sample is read twice and none is missed. Within a
worker, samples pass through a shuffle buffer seeded by ``(seed, epoch, global worker)``: the same
seed, epoch, world size and worker count give the same stream, a new epoch a new one.

Ranks can receive different sample counts (shards are whole units); with DDP, cap the steps per
epoch at the smallest rank's share, or write a shard count that is a multiple of
``world_size * num_workers``. An image that fails to decode is skipped with a warning naming the
shard and key, and recorded in ``skipped`` (in-process; a DataLoader worker's list stays in the
worker, its warning reaches stderr); a damaged tar is reported the same way and the samples
before the damage are kept.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from dermkit.core import distributed as ranks
from dermkit.core.errors import InputError
from dermkit.data.images import open_image
from dermkit.data.shards import RawSample, iter_shard, read_manifest

DEFAULT_BUFFER = 1000


class ShardDataset(IterableDataset):
    """Decoded samples ``{"image", "caption", "case_id", "key"}`` from a shard directory.

    (The full case record stays in each sample's ``.json`` member; it is not collated here
    because its nulls and maps would break torch's default collate.)

    ``transform`` maps a PIL image to what the model eats (e.g. ``LoadedModel.preprocess_train``).
    ``rank``/``world_size`` default to ``torch.distributed``'s when it is initialised, else 0/1.
    """

    def __init__(
        self,
        shard_dir: str | Path,
        transform: Callable[[Any], Any] | None = None,
        *,
        shuffle: bool = True,
        seed: int = 0,
        buffer_size: int = DEFAULT_BUFFER,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.shard_dir = Path(shard_dir)
        self.manifest = read_manifest(self.shard_dir)
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.buffer_size = max(1, buffer_size)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skipped: list[dict[str, str]] = []

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch (as with ``DistributedSampler``) to reshuffle."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Samples in all shards (this rank sees roughly ``len / world_size``)."""
        return int(self.manifest["samples"])

    def shards_for(self, worker_id: int = 0, num_workers: int = 1) -> list[str]:
        """The shard names one (rank, worker) reads this epoch, in reading order."""
        rank, world = self._rank_world()
        names = [shard["name"] for shard in self.manifest["shards"]]
        if self.shuffle:
            random.Random(f"{self.seed}:{self.epoch}").shuffle(names)
        return names[rank * num_workers + worker_id::world * num_workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker_id, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        rank, _ = self._rank_world()
        rng = random.Random(f"{self.seed}:{self.epoch}:{rank}:{worker_id}")
        for item in self._shuffled(self._raw_samples(self.shards_for(worker_id, num_workers)), rng):
            sample = self._decode(item)
            if sample is not None:
                yield sample

    def _shuffled(self, items: Iterator[tuple[str, RawSample]], rng: random.Random) -> Iterator[tuple[str, RawSample]]:
        """A shuffle buffer of undecoded samples (compressed bytes: ~20x less memory than tensors)."""
        if not self.shuffle:
            yield from items
            return
        buffer: list[tuple[str, RawSample]] = []
        for item in items:
            buffer.append(item)
            if len(buffer) >= self.buffer_size:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer

    def _rank_world(self) -> tuple[int, int]:
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        return ranks.rank(), ranks.world_size()

    def _raw_samples(self, names: list[str]) -> Iterator[tuple[str, RawSample]]:
        for name in names:
            try:
                for raw in iter_shard(self.shard_dir / name):
                    yield name, raw
            except InputError as error:
                self._skip(name, "*", str(error))

    def _decode(self, item: tuple[str, RawSample]) -> dict[str, Any] | None:
        shard, raw = item
        if raw.image is None:
            self._skip(shard, raw.key, "sample has no image member")
            return None
        try:
            image = open_image(raw.image, name=f"{shard}:{raw.key}.{raw.extension}")
        except InputError as error:
            self._skip(shard, raw.key, error.message)
            return None
        return {"image": self.transform(image) if self.transform else image, "caption": raw.caption,
                "case_id": str(raw.case.get("case_id", "")), "key": raw.key}

    def _skip(self, shard: str, key: str, reason: str) -> None:
        self.skipped.append({"shard": shard, "key": key, "reason": reason})
        warnings.warn(f"skipped {shard}:{key}: {reason}", RuntimeWarning, stacklevel=3)

"""Epoch order and rank sharding: deterministic, resumable, and the ranks rebuild each global batch."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from dermkit.train import distributed
from dermkit.train.distributed import ShardedBatches, epoch_order


def test_epoch_order_depends_only_on_seed_and_epoch() -> None:
    assert epoch_order(50, seed=1, epoch=3) == epoch_order(50, seed=1, epoch=3)
    assert epoch_order(50, seed=1, epoch=3) != epoch_order(50, seed=1, epoch=4)
    assert sorted(epoch_order(50, seed=1, epoch=3)) == list(range(50))


def test_resumed_sampler_yields_the_remaining_batches() -> None:
    full = list(ShardedBatches(23, 4, seed=0, epoch=2))
    assert len(full) == 5 and all(len(b) == 4 for b in full)  # the partial sixth batch is dropped
    assert list(ShardedBatches(23, 4, seed=0, epoch=2, start=3)) == full[3:]
    assert list(ShardedBatches(23, 4, seed=0, epoch=2, count=4)) == full[:4]


def test_rank_slices_concatenate_to_the_single_process_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    single = list(ShardedBatches(24, 6, seed=0, epoch=0))
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    shards = []
    for rank in range(3):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        shards.append(list(ShardedBatches(24, 6, seed=0, epoch=0)))
    for step, batch in enumerate(single):
        assert shards[0][step] + shards[1][step] + shards[2][step] == batch
    with pytest.raises(ValueError, match="divisible"):
        ShardedBatches(24, 4, seed=0, epoch=0)

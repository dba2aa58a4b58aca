"""CLIP and SigLIP losses against hand-written formulas, and their gradient under two gloo processes."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dermkit.train import distributed
from dermkit.train.losses import clip_loss, siglip_loss


def features() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(4, 3, generator=generator), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(4, 3, generator=generator), dim=-1)
    return image, text


def test_clip_loss_is_the_mean_of_both_cross_entropies() -> None:
    image, text = features()
    scale = 10.0
    sims = [[scale * float(image[i] @ text[j]) for j in range(4)] for i in range(4)]

    def ce(row: list[float], target: int) -> float:
        return -row[target] + math.log(sum(math.exp(v) for v in row))

    image_to_text = sum(ce(sims[i], i) for i in range(4)) / 4
    text_to_image = sum(ce([sims[i][j] for i in range(4)], j) for j in range(4)) / 4
    got = clip_loss(image, text, torch.tensor(scale))
    assert float(got) == pytest.approx((image_to_text + text_to_image) / 2, rel=1e-6)


def test_clip_loss_is_low_for_matching_pairs() -> None:
    image, _ = features()
    assert float(clip_loss(image, image, torch.tensor(100.0))) < 1e-3


def test_siglip_loss_sums_pairwise_log_sigmoids_over_images() -> None:
    image, text = features()
    scale, bias = 10.0, -2.0
    total = 0.0
    for i in range(4):
        for j in range(4):
            z = scale * float(image[i] @ text[j]) + bias
            label = 1.0 if i == j else -1.0
            total += math.log(1 + math.exp(-label * z))
    got = siglip_loss(image, text, torch.tensor(scale), torch.tensor(bias))
    assert float(got) == pytest.approx(total / 4, rel=1e-6)


def test_siglip_loss_needs_a_bias() -> None:
    image, text = features()
    with pytest.raises(ValueError, match="bias"):
        siglip_loss(image, text, torch.tensor(1.0))


def _gradients(world_size: int, rank: int) -> dict[str, torch.Tensor]:
    """Gradients of a linear 'tower' + logit scale under the CLIP loss of the 8-sample global batch."""
    torch.manual_seed(0)
    tower = torch.nn.Linear(5, 3)
    log_scale = torch.nn.Parameter(torch.tensor(2.0))
    inputs = torch.randn(8, 5)
    texts = torch.nn.functional.normalize(torch.randn(8, 3), dim=-1)
    local = slice(rank * 8 // world_size, (rank + 1) * 8 // world_size)
    image = torch.nn.functional.normalize(tower(inputs[local]), dim=-1)
    clip_loss(image, texts[local], log_scale.exp()).backward()
    parameters = [tower.weight, tower.bias, log_scale]
    distributed.average_gradients(parameters)
    return {"weight": tower.weight.grad, "bias": tower.bias.grad, "scale": log_scale.grad}


def _worker(rank: int, port: int, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    with distributed.process_group():
        grads = _gradients(2, rank)
        if rank == 0:
            torch.save(grads, out)


@pytest.mark.slow
def test_two_process_gradients_equal_single_process_gradients(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_worker, args=(port, tmp_path / "grads.pt"), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "grads.pt")
    single = _gradients(1, 0)
    for name, grad in single.items():
        torch.testing.assert_close(ddp[name], grad, atol=1e-6, rtol=1e-5, msg=name)

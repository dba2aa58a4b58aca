"""CycleGAN for unpaired image translation between two lesion classes (MelaNet's benign → malignant).

U-Net generators (skip connections keep the lesion's layout, so a translated nevus stays the same
lesion with malignant-looking texture and colour) and PatchGAN discriminators (each output judges
one receptive-field patch, which suits texture). Images are in [-1, 1].
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from dermkit.core.atomic import atomic_dir
from dermkit.core.errors import InputError

CONFIG_FILE = "cyclegan_config.json"
WEIGHTS_FILE = "cyclegan.safetensors"


def _down(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
                         nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True))


class UNetGenerator(nn.Module):
    """Encoder of ``depth`` stride-2 convolutions, mirrored decoder with skip connections, tanh output."""

    def __init__(self, channels: int = 3, base: int = 32, depth: int = 4) -> None:
        super().__init__()
        widths = [min(base * 2 ** i, base * 8) for i in range(depth)]
        self.down = nn.ModuleList(_down(c_in, c_out, norm=i > 0)
                                  for i, (c_in, c_out) in enumerate(zip([channels, *widths[:-1]], widths, strict=True)))
        self.up = nn.ModuleList(_up(widths[i] * (1 if i == depth - 1 else 2), widths[i - 1])
                                for i in range(depth - 1, 0, -1))
        self.out = nn.Sequential(nn.ConvTranspose2d(widths[0] * 2, channels, 4, stride=2, padding=1), nn.Tanh())
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 ** self.depth or x.shape[-2] % 2 ** self.depth:
            raise InputError(f"image sides must be multiples of {2 ** self.depth}, got {tuple(x.shape[-2:])}")
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()
        for layer in self.up:
            x = torch.cat([layer(x), skips.pop()], dim=1)
        return self.out(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake scores, one per overlapping patch (LSGAN targets 1 and 0)."""

    def __init__(self, channels: int = 3, base: int = 32, layers: int = 3) -> None:
        super().__init__()
        widths = [min(base * 2 ** i, base * 8) for i in range(layers)]
        blocks = [_down(c_in, c_out, norm=i > 0)
                  for i, (c_in, c_out) in enumerate(zip([channels, *widths[:-1]], widths, strict=True))]
        self.net = nn.Sequential(*blocks, nn.Conv2d(widths[-1], 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class CycleGanConfig:
    """Architecture and the two classes (ontology ids) it translates between: A = source, B = target."""

    class_a: str
    class_b: str
    image_size: int = 64
    base: int = 32
    depth: int = 4
    disc_layers: int = 3


class CycleGan(nn.Module):
    """Both generators (A→B, B→A) and both discriminators."""

    def __init__(self, config: CycleGanConfig) -> None:
        super().__init__()
        self.config = config
        self.g_ab = UNetGenerator(base=config.base, depth=config.depth)
        self.g_ba = UNetGenerator(base=config.base, depth=config.depth)
        self.d_a = PatchDiscriminator(base=config.base, layers=config.disc_layers)
        self.d_b = PatchDiscriminator(base=config.base, layers=config.disc_layers)

    def generators(self) -> list[nn.Parameter]:
        return [*self.g_ab.parameters(), *self.g_ba.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        return [*self.d_a.parameters(), *self.d_b.parameters()]


def save_cyclegan(model: CycleGan, out: str | Path) -> Path:
    from dermkit.models.weights import save_weights

    with atomic_dir(out) as tmp:
        save_weights(model, tmp / WEIGHTS_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=2) + "\n")
    return Path(out)


def load_cyclegan(path: str | Path) -> CycleGan:
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / CONFIG_FILE).exists():
        raise InputError(f"not a CycleGAN directory (no {CONFIG_FILE})", file=path)
    model = CycleGan(CycleGanConfig(**json.loads((path / CONFIG_FILE).read_text())))
    model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
    return model.eval()

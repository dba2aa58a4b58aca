"""CycleGAN training between two classes of a case table, and synthesis of new training cases.

Training uses only the table's training split (a generator that saw validation or test images
would leak them into the synthetic cases), LSGAN losses, cycle loss weight 10 and an identity term,
writes a PNG grid of translations every ``sample_every`` steps, and checkpoints with the same
atomic, exactly-resumable machinery as the other trainers. :func:`synthesize` translates training
cases of class A into class B and writes them as a new case table (``synthetic=True``,
``derived_from`` the source case, split ``train``), which ``dermkit train ddx --synthetic`` mixes
in at a chosen ratio.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dermkit.core import distributed as ranks
from dermkit.core.atomic import atomic_dir, atomic_path, atomic_write_text
from dermkit.core.errors import InputError
from dermkit.data.images import open_image
from dermkit.data.table import Case, frame_to_cases, read_table, write_table
from dermkit.models.ddx_net import LabelSpace
from dermkit.models.gan import CycleGan, CycleGanConfig, load_cyclegan, save_cyclegan
from dermkit.train import distributed
from dermkit.train.checkpoint import (
    all_rng_states,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from dermkit.train.run_log import MetricsLog

GAN_BETAS = (0.5, 0.999)  # the CycleGAN paper's Adam settings


@dataclass
class GanTrainConfig:
    data: str
    out: str
    class_a: str = "melanocytic_nevus"
    class_b: str = "melanoma"
    image_size: int = 64
    base: int = 32
    depth: int = 4
    epochs: int = 10
    batch_size: int = 4
    lr: float = 2e-4
    cycle_weight: float = 10.0
    identity_weight: float = 0.5  # × cycle_weight, as in the CycleGAN paper
    seed: int = 0
    # Run control.
    sample_every: int = 100
    max_steps: int | None = None
    resume: bool = False

    RUN_CONTROL = ("sample_every", "max_steps", "resume")

    def recipe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in self.RUN_CONTROL}


def gan_transform(size: int, train: bool) -> Any:
    """Resize to ``size`` and scale to [-1, 1]; training adds flips (lesions have no orientation)."""
    from torchvision import transforms as T

    steps: list[Any] = [T.Resize(size), T.CenterCrop(size)]
    if train:
        steps += [T.RandomHorizontalFlip(), T.RandomVerticalFlip()]
    return T.Compose([*steps, T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])


def class_cases(cases: list[Case], class_a: str, class_b: str) -> tuple[list[Case], list[Case]]:
    """Training cases of each class (descendants folded in through the ontology), real ones only."""
    space = LabelSpace.build([class_a, class_b], other=False)
    groups: tuple[list[Case], list[Case]] = ([], [])
    for case in cases:
        if case.split == "train" and not case.synthetic and case.diagnosis_id:
            index = space.index_of(case.diagnosis_id)
            if index is not None:
                groups[index].append(case)
    for name, group in zip((class_a, class_b), groups, strict=True):
        if not group:
            raise InputError(f"no real training case of class {name!r} (is the table split?)", field="class")
    return groups


class CycleGanTrainer:
    """One run: state is the model, both optimisers, the step counter and the RNGs."""

    def __init__(self, config: GanTrainConfig, device: torch.device) -> None:
        self.config, self.device, self.out = config, device, Path(config.out)
        distributed.seed_everything(config.seed + ranks.rank())
        cases = list(frame_to_cases(read_table(config.data)))
        self.cases_a, self.cases_b = class_cases(cases, config.class_a, config.class_b)
        self.transform = gan_transform(config.image_size, train=True)
        self.model = CycleGan(CycleGanConfig(config.class_a, config.class_b, config.image_size, config.base,
                                             config.depth)).to(device)
        distributed.broadcast_parameters(self.model.state_dict().values())
        self.opt_g = torch.optim.Adam(self.model.generators(), lr=config.lr, betas=GAN_BETAS)
        self.opt_d = torch.optim.Adam(self.model.discriminators(), lr=config.lr, betas=GAN_BETAS)
        self.steps_per_epoch = max(len(self.cases_a), len(self.cases_b)) // config.batch_size
        self.step = 0
        self.log = MetricsLog(self.out, enabled=ranks.is_main())
        fixed = np.linspace(0, 1, 4, endpoint=False)
        self.fixed_a = self._load([self.cases_a[int(f * len(self.cases_a))] for f in fixed], train=False)
        self.fixed_b = self._load([self.cases_b[int(f * len(self.cases_b))] for f in fixed], train=False)

    def _load(self, cases: list[Case], train: bool = True) -> torch.Tensor:
        transform = self.transform if train else gan_transform(self.config.image_size, train=False)
        return torch.stack([transform(open_image(c.image_paths[0])) for c in cases]).to(self.device)

    def _batch(self, cases: list[Case], salt: int) -> torch.Tensor:
        """This rank's share of the step's global batch: a permutation per (seed, step), no state."""
        size = self.config.batch_size
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step * 2 + salt)
        order = torch.randint(len(cases), (size,), generator=generator).tolist()
        local = size // ranks.world_size()
        mine = order[ranks.rank() * local:(ranks.rank() + 1) * local]
        return self._load([cases[i] for i in mine])

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        """One generator step then one discriminator step (LSGAN); returns the losses."""
        model, config = self.model, self.config
        fake_b, fake_a = model.g_ab(real_a), model.g_ba(real_b)
        adversarial = _lsgan(model.d_b(fake_b), True) + _lsgan(model.d_a(fake_a), True)
        cycle = F.l1_loss(model.g_ba(fake_b), real_a) + F.l1_loss(model.g_ab(fake_a), real_b)
        identity = F.l1_loss(model.g_ab(real_b), real_b) + F.l1_loss(model.g_ba(real_a), real_a)
        loss_g = adversarial + config.cycle_weight * (cycle + config.identity_weight * identity)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        distributed.average_gradients(model.generators())
        self.opt_g.step()
        loss_d = 0.5 * (_lsgan(model.d_b(real_b), True) + _lsgan(model.d_b(fake_b.detach()), False)
                        + _lsgan(model.d_a(real_a), True) + _lsgan(model.d_a(fake_a.detach()), False))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        distributed.average_gradients(model.discriminators())
        self.opt_d.step()
        self.step += 1
        losses = {"loss_g": loss_g, "loss_d": loss_d, "cycle": cycle, "adversarial": adversarial, "identity": identity}
        return {name: float(value.detach()) for name, value in losses.items()}

    def run(self) -> dict[str, Any] | None:
        config = self.config
        if config.resume:
            self._resume()
        total = config.epochs * self.steps_per_epoch
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        started = time.perf_counter()
        while self.step < total:
            self.model.train()
            record = self.train_step(self._batch(self.cases_a, 0), self._batch(self.cases_b, 1))
            self.log.write({"event": "step", "step": self.step, **record})
            if self.step % config.sample_every == 0 or self.step == total:
                self._samples()
            if self.step % self.steps_per_epoch == 0 or self.step == total:
                self._save()
        summary = {"out": str(self.out), "step": self.step, "steps_total": config.epochs * self.steps_per_epoch,
                   "cases_a": len(self.cases_a), "cases_b": len(self.cases_b),
                   "seconds": round(time.perf_counter() - started, 1)}
        if ranks.is_main():
            save_cyclegan(self.model, self.out / "model")
            atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        self.log.close()
        ranks.barrier()
        return summary if ranks.is_main() else None

    @torch.no_grad()
    def _samples(self) -> None:
        """PNG grid: row 1 real A, row 2 A→B, row 3 real B, row 4 B→A."""
        if not ranks.is_main():
            return
        from torchvision.utils import save_image

        self.model.eval()
        grid = torch.cat([self.fixed_a, self.model.g_ab(self.fixed_a), self.fixed_b, self.model.g_ba(self.fixed_b)])
        target = self.out / "samples" / f"step_{self.step:07d}.png"
        with atomic_path(target) as tmp:
            save_image(grid * 0.5 + 0.5, tmp, nrow=len(self.fixed_a), format="png")
        self.model.train()

    def _save(self) -> None:
        rng = all_rng_states(self.device)
        if ranks.is_main():
            save_checkpoint(self.out, {"model": self.model.state_dict(), "opt_g": self.opt_g.state_dict(),
                                       "opt_d": self.opt_d.state_dict(), "step": self.step,
                                       "config": self.config.recipe(), "rng": rng})
        ranks.barrier()

    def _resume(self) -> None:
        state = load_checkpoint(self.out, recipe=self.config.recipe())
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step = state["step"]
        restore_rng(state["rng"], self.device)


def _lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if real else 0.0))


def train_gan(config: GanTrainConfig) -> dict[str, Any] | None:
    if config.batch_size < 1 or config.batch_size % ranks.world_size():
        raise InputError("--batch-size must be a positive multiple of the number of processes", field="batch_size")
    with distributed.process_group() as device:
        return CycleGanTrainer(config, device).run()


@torch.no_grad()
def synthesize(gan: str | Path, table: str | Path, out: str | Path, limit: int | None = None,
               seed: int = 0) -> dict[str, Any]:
    """Translate the table's real training cases of the GAN's class A into class B.

    Images go to ``OUT-images/`` (written first, atomically), the cases to the case table ``OUT``.
    """
    from torchvision.utils import save_image

    model = load_cyclegan(gan)
    config = model.config
    cases = list(frame_to_cases(read_table(table)))
    sources, _ = class_cases(cases, config.class_a, config.class_b)
    if limit is not None:
        order = np.random.default_rng(seed).permutation(len(sources))[:limit]
        sources = [sources[i] for i in sorted(order)]
    out = Path(out).resolve()
    image_dir = out.with_name(f"{out.name}-images")
    transform = gan_transform(config.image_size, train=False)
    made = []
    with atomic_dir(image_dir) as tmp:
        for case in sources:
            fake = model.g_ab(transform(open_image(case.image_paths[0])).unsqueeze(0))[0]
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", case.case_id) + ".png"
            save_image(fake * 0.5 + 0.5, tmp / name, format="png")
            made.append(Case(
                case_id=f"synthetic-{config.class_b}:{case.case_id}", image_paths=[str(image_dir / name)],
                source=f"{case.source}+cyclegan", diagnosis=config.class_b, diagnosis_id=config.class_b,
                differential={config.class_b: 1.0}, patient_id=case.patient_id, lesion_id=case.lesion_id,
                acquisition=case.acquisition, licence=case.licence, split="train", synthetic=True,
                derived_from=case.case_id))
    write_table(made, out, manifest={"source": "cyclegan", "gan": str(gan), "from_table": str(table),
                                     "class_a": config.class_a, "class_b": config.class_b, "images": str(image_dir)})
    return {"table": str(out), "images": str(image_dir), "cases": len(made), "class": config.class_b}

"""Training images/s of dermkit's fine-tuning loop against the plain timm loop, one run, fp32 on the CPU.

Both arms train every layer of the same model (EfficientNet-Lite0 with the offline ImageNet
weights, a linear head) on the same images (the first ``--images`` of ../shared/data HAM10000, one
image per case) at the same side and batch size, in fp32, for ``--epochs`` epochs each:

- baseline: :func:`ham_recipe.plain_loop` / :func:`ham_recipe.plain_epoch`, the loop a user would
  write (``timm`` model, torchvision transforms decoding every JPEG every epoch in the loop, Adam,
  contiguous NCHW tensors);
- dermkit: ``DdxTrainer`` fine-tuning from epoch 0 (``--unfreeze-epoch 0 --unfreeze-groups -1``)
  with its speed options (see docs/ddx.md, "Fine-tuning speed"): channels-last trunk, freed
  memory kept for reuse, the fused AdamW kernel, the decoded-image cache, ``--workers``
  data-loading processes (0, its default); ``--compile-trunk`` adds ``torch.compile``.

Each run is a fresh process (no allocator, oneDNN or inductor state carries over; compilation is
cold). Every optimiser step is timestamped (a global ``torch.optim`` step post-hook, the same for both).
Images/s = images of the steps after the first ``--warmup-steps`` / the training time after them,
summed over the epochs: each epoch from its start (data-loader start-up, cache filling included)
to its last step, the first epoch from the end of the last warm-up step (``images_per_s_with_warmup``
counts every step from the first epoch's start: compilation included). dermkit's validation pass
after each epoch is outside its training time, and so is the model set-up of both arms. The arms
run ``--repeats`` times, interleaved, each from a fresh model; the fastest run of each counts (the
timeit rule: the slower runs measure the other work on the machine, not the code).

    python bench/finetune_throughput.py [--images 512] [--epochs 3] [--repeats 2] [--image-size 160]
                                        [--batch-size 32] [--warmup-steps 2] [--workers 0] [--image-cache-mb 2048]
                                        [--no-keep-freed-memory] [--compile-trunk]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _real_sample import SHARED_DATA, ham_table
from dermkit.core.atomic import atomic_write_text
from dermkit.core.precision import precision_record
from dermkit.data.table import frame_to_cases, read_manifest, write_table
from dermkit.models.ddx_net import LabelSpace
from dermkit.train.ddx_trainer import DdxTrainConfig, DdxTrainer
from ham_recipe import plain_epoch, plain_loop

RESULT = Path(__file__).resolve().parent / "results" / "finetune_throughput.json"
PRECISION = "fp32"
VAL_IMAGES = 64  # dermkit validates every epoch (outside its timing); the baseline does not


class Epochs:
    """Start time and optimiser-step end times of each epoch of one arm."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.steps: list[list[float]] = []

    def start(self) -> None:
        self.starts.append(time.perf_counter())
        self.steps.append([])

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        handle = register_optimizer_step_post_hook(lambda *_: self.steps[-1].append(time.perf_counter()))
        try:
            yield
        finally:
            handle.remove()

    def images_per_s(self, batch_size: int, warmup: int) -> dict[str, Any]:
        """Images/s after ``warmup`` steps (and with them: compilation, first-touch allocations), and per epoch."""
        if len(self.steps[0]) <= warmup:
            raise SystemExit(f"the first epoch has {len(self.steps[0])} steps, not more than --warmup-steps {warmup}")
        whole = [steps[-1] - start for start, steps in zip(self.starts, self.steps, strict=True)]
        seconds = [self.steps[0][-1] - self.steps[0][warmup - 1] if warmup else whole[0], *whole[1:]]
        counts = [len(self.steps[0]) - warmup, *map(len, self.steps[1:])]
        return {"images_per_s": round(sum(counts) * batch_size / sum(seconds), 2),
                "images_per_s_with_warmup": round(sum(map(len, self.steps)) * batch_size / sum(whole), 2),
                "epoch_images_per_s": [round(n * batch_size / t, 2) for n, t in zip(counts, seconds, strict=True)],
                "measured_steps": sum(counts), "measured_seconds": round(sum(seconds), 2)}


class TimedTrainer(DdxTrainer):
    """dermkit's trainer with each training epoch's start recorded (validation stays outside it)."""

    epochs: Epochs

    def _train_epoch(self) -> float:
        self.epochs.start()
        return super()._train_epoch()


def subset_table(work: Path, n_train: int) -> Path:
    """The first ``n_train`` HAM10000 images as the training split and the next ``VAL_IMAGES`` as validation."""
    imported, frame = ham_table(work, limit=n_train + VAL_IMAGES)
    if len(frame) < n_train + VAL_IMAGES:
        raise SystemExit(f"only {len(frame)} HAM10000 images, {n_train + VAL_IMAGES} needed")
    frame["split"] = ["train"] * n_train + ["val"] * VAL_IMAGES
    return write_table(frame, work / "subset", manifest=read_manifest(imported))


def baseline(table: Path, args: argparse.Namespace) -> dict[str, Any]:
    """ham_recipe's plain loop for ``--epochs`` epochs on the training split."""
    from dermkit.data.table import read_table

    torch.manual_seed(0)
    space = LabelSpace.build("ham10000", other=False)
    train = [c for c in frame_to_cases(read_table(table)) if c.split == "train"]
    labels = [space.index_of(c.diagnosis_id) for c in train]
    loop = plain_loop(np.bincount(labels, minlength=len(space.classes)), args.image_size)
    epochs, rng = Epochs(), np.random.default_rng(0)
    with epochs.recording():
        for _ in range(args.epochs):
            epochs.start()
            plain_epoch(loop, train, labels, args.batch_size, rng)
    return {"optimizer": "Adam", "memory_format": "contiguous", "data_loading": "in the loop, every epoch",
            **epochs.images_per_s(args.batch_size, args.warmup_steps)}


def dermkit(table: Path, out: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``DdxTrainer`` fine-tuning every trunk layer from the first epoch with its speed options."""
    config = DdxTrainConfig(
        data=[str(table)], out=str(out), labels="ham10000", other=False, inputs="images",
        image_size=args.image_size, batch_size=args.batch_size, epochs=args.epochs, patience=args.epochs,
        unfreeze_epoch=0, unfreeze_groups=-1, finetune_lr=1e-4, precision=PRECISION, export=False,
        workers=args.workers, image_cache_mb=args.image_cache_mb, keep_freed_memory=not args.no_keep_freed_memory,
        compile_trunk=args.compile_trunk, cache_dir=str(work / "feature-cache"))
    trainer = TimedTrainer(config, torch.device("cpu"))
    trainer.epochs = Epochs()
    with trainer.epochs.recording():
        trainer.run()
    speed = {name: getattr(config, name) for name in ("workers", "image_cache_mb", "keep_freed_memory",
                                                       "fused_optimizer", "compile_trunk")}
    return {"optimizer": "AdamW", "memory_format": "channels_last", "settings": speed,
            **trainer.epochs.images_per_s(args.batch_size, args.warmup_steps)}


def arm_command(arm: str, table: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """The child process that runs one arm and writes its figures to ``out``."""
    command = [sys.executable, __file__, "--arm", arm, "--table", str(table), "--arm-out", str(out),
               "--work", str(args.work), "--epochs", str(args.epochs), "--image-size", str(args.image_size),
               "--batch-size", str(args.batch_size), "--warmup-steps", str(args.warmup_steps),
               "--workers", str(args.workers), "--image-cache-mb", str(args.image_cache_mb)]
    switches = {"--compile-trunk": args.compile_trunk, "--no-keep-freed-memory": args.no_keep_freed_memory}
    return command + [flag for flag, on in switches.items() if on]


def run_arm(args: argparse.Namespace) -> None:
    """In the child: one arm, its figures to ``--arm-out``."""
    if args.arm == "baseline":
        figures = baseline(args.table, args)
    else:
        figures = dermkit(args.table, args.arm_out.with_suffix(".run"), args.work, args)
    args.arm_out.write_text(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="training images (a multiple of --batch-size)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each arm")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each arm; the fastest counts")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup-steps", type=int, default=2, help="first optimiser steps left out of the timing")
    parser.add_argument("--workers", type=int, default=0, help=(
        "dermkit arm's data-loading processes (default 0, dermkit's: with the decoded images in memory a "
        "batch loads in about 25 ms, less than a worker's start-up every epoch costs on 2 cores)"))
    parser.add_argument("--image-cache-mb", type=int, default=2048, help="dermkit arm's --image-cache-mb (0: off)")
    parser.add_argument("--no-keep-freed-memory", action="store_true", help="dermkit arm: glibc's allocator defaults")
    parser.add_argument("--compile-trunk", action="store_true", help=(
        "dermkit arm: torch.compile the trunk (compiled cold: a fresh inductor cache each run)"))
    parser.add_argument("--work", type=Path, help="work folder (tables, runs); default a temporary one")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--arm", choices=("baseline", "dermkit"), help=argparse.SUPPRESS)  # the child's
    parser.add_argument("--table", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--arm-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        return run_arm(args)
    if not (SHARED_DATA / "ham10000" / "metadata.csv").exists():
        sys.exit(f"skipped: {SHARED_DATA / 'ham10000'} is absent; this benchmark needs ../shared/data beside "
                 "the checkout (HAM10000 images)")
    if args.images % args.batch_size:
        sys.exit(f"--images {args.images} must be a multiple of --batch-size {args.batch_size}")
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="finetune-throughput-"))).resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    table = subset_table(args.work, args.images)
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "dermkit": []}
    for repeat in range(args.repeats):
        for arm in ("baseline", "dermkit"):
            out = args.work / f"{arm}-{repeat}.json"
            # A fresh process per run: no allocator, oneDNN or inductor state carries from one arm to the other.
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(args.work / f"inductor-{repeat}")}
            subprocess.run(arm_command(arm, table, out, args), check=True, env=env)
            runs[arm].append(json.loads(out.read_text()))
    base, ours = (max(arm_runs, key=lambda run: run["images_per_s"]) for arm_runs in runs.values())
    result = {
        "benchmark": "finetune_throughput", "model": "timm:efficientnet_lite0 (offline ImageNet weights)",
        "images": args.images, "image_source": f"ham10000 ({SHARED_DATA / 'ham10000'}), first {args.images} images",
        "image_size": args.image_size, "batch_size": args.batch_size, "epochs": args.epochs,
        "warmup_steps": args.warmup_steps, "repeats": args.repeats,
        "baseline_images_per_s": base["images_per_s"], "dermkit_images_per_s": ours["images_per_s"],
        "ratio": round(ours["images_per_s"] / base["images_per_s"], 3),
        "ratio_with_warmup": round(ours["images_per_s_with_warmup"] / base["images_per_s_with_warmup"], 3),
        "baseline": base, "dermkit": ours,
        "baseline_images_per_s_runs": [run["images_per_s"] for run in runs["baseline"]],
        "dermkit_images_per_s_runs": [run["images_per_s"] for run in runs["dermkit"]],
        **precision_record(PRECISION),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "platform": platform.platform(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return None


if __name__ == "__main__":
    main()

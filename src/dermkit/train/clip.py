"""Contrastive (CLIP / SigLIP) training over case tables: one loop for one process or many.

Under ``torchrun`` each rank encodes its contiguous slice of every global batch, the loss is
computed on the gathered global batch and gradients are averaged by hand (see ``losses`` and
``distributed``), so N processes train the same weights as one process given the same global
batch. Frozen trunks are encoded once into a feature cache; only heads and the logit scale (and
bias) then run per step, which makes frozen-trunk training of a real model feasible on a CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from dermkit.core import distributed as ranks
from dermkit.core.atomic import atomic_write_text
from dermkit.core.errors import InputError
from dermkit.core.precision import (
    PRECISION_HELP,
    PRECISIONS,
    precision_record,
    resolve_precision,
)
from dermkit.data.images import open_image
from dermkit.data.table import Case
from dermkit.models.feature_cache import (
    FeatureCache,
    cache_directory,
    get_or_compute,
    image_identity,
    weights_fingerprint,
)
from dermkit.models.text_padding import text_padding_id, trim_padding
from dermkit.train import distributed
from dermkit.train.checkpoint import (
    all_rng_states,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from dermkit.train.data import (
    CaptionedImages,
    all_captions,
    all_image_paths,
    caption_candidates,
    read_splits,
)
from dermkit.train.losses import LOSSES
from dermkit.train.run_log import MetricsLog, retrieval_recall
from dermkit.train.schedule import warmup_cosine
from dermkit.train.towers import Tower

SIGLIP_INIT_BIAS = -10.0
MAX_LOGIT_SCALE = math.log(100)  # CLIP's clamp: a temperature below 0.01 destabilises training
RECALL_AT = (1, 5, 10)


@dataclass
class ClipTrainConfig:
    """Everything that defines a run; defaults follow the DermLIP recipe (batch and epochs aside)."""

    model: str = field(metadata={"default": "dermlip-lite", "help": "model name for dermkit.models.load_model"})
    data: list[str] = field(metadata={"path": True, "metavar": "TABLE_DIR", "help": (
        "case table (repeatable); trains on split 'train', validates on 'val'")})
    out: str = field(metadata={"path": True, "help": "run directory (checkpoints, metrics, export)"})
    epochs: int = field(default=30, metadata={"help": "epochs over the training split"})
    batch_size: int = field(default=2048, metadata={"help": "global batch over all processes"})
    lr: float = field(default=1e-4, metadata={"help": "AdamW peak rate"})
    wd: float = field(default=0.1, metadata={"help": "AdamW weight decay (matrices only)"})
    warmup: int = field(default=1000, metadata={"help": "linear warm-up steps before cosine decay"})
    accum: int = field(default=1, metadata={"help": "batches per optimiser step"})
    precision: str = field(default="auto", metadata={"choices": PRECISIONS, "help": PRECISION_HELP})
    lock_image: bool = field(default=False, metadata={"help": "freeze the image trunk (features cached)"})
    lock_text: bool = field(default=False, metadata={"help": "freeze the text trunk (features cached)"})
    unlock_image_groups: int = field(default=0, metadata={"metavar": "N", "help": (
        "with --lock-image: train the last N layer groups (open_clip's numbering)")})
    unlock_text_layers: int = field(default=0, metadata={"metavar": "N", "help": (
        "with --lock-text: train the last N layers (open_clip's numbering)")})
    loss: str = field(default="clip", metadata={"choices": tuple(LOSSES), "help": "contrastive loss"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    grad_checkpointing: bool = field(default=False, metadata={"help": "trade compute for activation memory"})
    # Run control: these may differ between a run and its resumption.
    resume: bool = field(default=False, metadata={"help": "continue from OUT/checkpoints/last.pt if present"})
    workers: int = field(default=0, metadata={"help": "data-loading processes per training process"})
    save_every: int = field(default=0, metadata={"metavar": "STEPS", "help": (
        "also checkpoint every STEPS optimiser steps (default: each epoch's end)")})
    max_steps: int | None = field(default=None, metadata={"help": (
        "stop with a checkpoint after this many steps in total")})
    cache_dir: str | None = field(default=None, metadata={"path": True, "help": (
        "feature cache of frozen trunks (default $DERMKIT_CACHE_DIR/features)")})
    tensorboard: bool = field(default=False, metadata={"help": "also log to OUT/tensorboard"})
    export: bool = field(default=True, metadata={"help": "skip exporting the final model to OUT/model"})

    RUN_CONTROL = ("resume", "workers", "save_every", "max_steps", "cache_dir", "tensorboard", "export")

    def recipe(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run it continues."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.RUN_CONTROL}


def train_clip(config: ClipTrainConfig) -> dict[str, Any] | None:
    """Train (or resume) a run; the main process returns its summary (also in ``OUT/summary.json``),
    the other processes of a multi-process run return None."""
    with distributed.process_group() as device:
        return ClipTrainer(config, device).run()


class ClipTrainer:
    """One training run; attributes hold the live state a checkpoint saves and restores."""

    def __init__(self, config: ClipTrainConfig, device: torch.device) -> None:
        _check(config)
        from dermkit.models import load_model

        self.config, self.device, self.out = config, device, Path(config.out)
        self.precision = resolve_precision(config.precision, device)
        distributed.seed_everything(config.seed + ranks.rank())
        self.loaded = load_model(config.model)
        self.model = self.loaded.model.to(device)
        distributed.broadcast_parameters(self.model.state_dict().values())
        if config.grad_checkpointing:
            self.model.set_grad_checkpointing(True)
        self.towers = {side: Tower.of(self.model, side) for side in ("image", "text")}
        self.cached = self._lock_towers()
        self.logit_bias = self._logit_bias()
        self.log = MetricsLog(self.out, tensorboard=config.tensorboard, enabled=ranks.is_main())

        train, val, self.manifests = read_splits(config.data)
        self.has_val = bool(val)
        train_captions = [caption_candidates(c) for c in train]
        val_captions = [caption_candidates(c)[:1] for c in val]
        caches = {side: self._cached_features(side, train + val, train_captions + val_captions)
                  for side in ("image", "text") if self.cached[side]}
        make = {"tokenize": self.loaded.tokenizer, "seed": config.seed,
                    "image_features": caches.get("image"), "text_features": caches.get("text")}
        self.train_set = CaptionedImages(train, train_captions, image_transform=self.loaded.preprocess_train, **make)
        self.val_set = CaptionedImages(val, val_captions, image_transform=self.loaded.preprocess_eval, **make)

        self.batches_per_epoch = len(train) // config.batch_size // config.accum * config.accum
        if self.batches_per_epoch == 0:
            raise InputError(f"{len(train)} training cases cannot fill one step of "
                             f"{config.accum} × {config.batch_size}; lower --batch-size or --accum")
        self.total_steps = config.epochs * self.batches_per_epoch // config.accum
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        if self.logit_bias is not None and all(self.logit_bias is not p for p in self.parameters):
            self.parameters.append(self.logit_bias)
        self.optimizer = _adamw(self.parameters, lr=config.lr, wd=config.wd)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(config.warmup, self.total_steps))
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.results: dict[str, Any] = {}

    # -- set-up -------------------------------------------------------------------------------

    def _lock_towers(self) -> dict[str, bool]:
        """Freeze the locked trunks (projections keep training); return which sides are wholly
        frozen and so served from the feature cache.

        Unlocking the last blocks of a locked tower passes N to open_clip unchanged
        (``lock_image_tower(unlocked_groups=N)``, ``lock_text_tower(unlocked_layers=N)``), so N means
        what open_clip's ``--lock-image-unlocked-groups`` / ``--lock-text-unlocked-layers`` mean; for
        open_clip's own transformers the projection is the last of those groups.
        """
        config = self.config
        unlock = {"image": config.unlock_image_groups, "text": config.unlock_text_layers}
        locked = {"image": config.lock_image, "text": config.lock_text}
        for side, tower in self.towers.items():
            if unlock[side] and not locked[side]:
                raise InputError(f"unlocking the last blocks of the {side} tower needs --lock-{side}")
            if unlock[side]:
                lock = self.model.lock_image_tower if side == "image" else self.model.lock_text_tower
                lock(unlock[side])
            elif locked[side]:
                for parameter in tower.trunk_parameters():
                    parameter.requires_grad_(False)
            for parameter in tower.head().parameters():
                parameter.requires_grad_(True)
        return {side: locked[side] and not unlock[side] for side in locked}

    def _logit_bias(self) -> nn.Parameter | None:
        """SigLIP's learned bias: the model's own when it has one, else a new one saved with the run."""
        if self.config.loss != "siglip":
            return None
        own = getattr(self.model, "logit_bias", None)
        if own is not None:
            return own
        return nn.Parameter(torch.tensor(SIGLIP_INIT_BIAS, device=self.device))

    def _cached_features(
        self, side: str, cases: list[Case], captions: list[list[str]]
    ) -> dict[str, torch.Tensor]:
        """Trunk features of a frozen side: from the cache, or computed once (split over the ranks)."""
        tower = self.towers[side]
        if side == "image":
            keys = all_image_paths(cases)
            items: list[Any] = [image_identity(p) for p in keys]
            preprocessing = repr(self.loaded.preprocess_eval)

            def load(key: str) -> torch.Tensor:
                return self.loaded.preprocess_eval(open_image(key))
        else:
            keys = all_captions(captions)
            items = keys
            tokenizer = self.loaded.tokenizer
            preprocessing = f"{type(tokenizer).__name__}:{getattr(tokenizer, 'context_length', '')}"

            def load(key: str) -> torch.Tensor:
                return self.loaded.tokenizer([key])[0]

        cache = FeatureCache(
            cache_directory(self.config.cache_dir),
            side,
            {"model": self.loaded.name, "weights": weights_fingerprint(tower.trunk_state()),
             "preprocessing": preprocessing, "items": items, "precision": self.precision},
        )
        # Each rank encodes every world_size-th key on a miss; the main rank writes them all.
        started = time.perf_counter()
        self.model.eval()
        with self._autocast():  # bf16 runs cache bf16 trunk features (about 3x faster on CPU)
            pad = text_padding_id(tower.holder) if side == "text" else None
            encode = tower.encode_trunk if pad is None else trim_padding(tower.encode_trunk, pad)
            features, hit = get_or_compute(cache, keys, load, encode, batch_size=min(self.config.batch_size, 256),
                                           device=self.device, workers=self.config.workers,
                                           description=f"caching {side} features")
        record: dict[str, Any] = {"event": "feature_cache", "side": side, "hit": hit, "items": len(keys),
                                  "file": str(cache.path)}
        if not hit:
            record["seconds"] = round(time.perf_counter() - started, 3)
        self.log.write(record)
        return features  # stays on the CPU: loader workers cannot share accelerator tensors

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any] | None:
        if self.config.resume:
            self._resume()
        while self.epoch < self.config.epochs and not self._at_max_steps():
            if self._train_epoch():
                break
            self.results = self._validate()
            self.log.write({"event": "val", "epoch": self.epoch, "step": self.step, **self.results})
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            self._save()
        summary = {"out": str(self.out), "epoch": self.epoch, "step": self.step,
                   "finished": self.epoch >= self.config.epochs, "results": self.results,
                   **precision_record(self.precision)}
        if summary["finished"] and self.config.export:
            self._export()
        self.log.close()
        if not ranks.is_main():
            return None
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _train_epoch(self) -> bool:
        """Train the rest of the current epoch; True when ``max_steps`` stopped it early."""
        config = self.config
        self.model.train()
        self.train_set.epoch = self.epoch
        sampler = distributed.ShardedBatches(len(self.train_set), config.batch_size, seed=config.seed,
                                             epoch=self.epoch, start=self.batch_in_epoch,
                                             count=self.batches_per_epoch)
        loader = DataLoader(self.train_set, batch_sampler=sampler, num_workers=config.workers,
                            generator=torch.Generator().manual_seed(config.seed))
        progress = _progress(len(sampler), f"epoch {self.epoch + 1}/{config.epochs}")
        losses: list[torch.Tensor] = []
        started = time.perf_counter()
        for images, texts in loader:
            loss = self._loss(images.to(self.device), texts.to(self.device))
            (loss / config.accum).backward()
            losses.append(loss.detach())
            self.batch_in_epoch += 1
            progress.update(1)
            if self.batch_in_epoch % config.accum:
                continue
            self._optimiser_step()
            elapsed, started = time.perf_counter() - started, time.perf_counter()
            record = {"event": "step", "epoch": self.epoch, "step": self.step,
                      "loss": float(torch.stack(losses).mean()), "lr": self.scheduler.get_last_lr()[0],
                      "logit_scale": float(self.model.logit_scale.detach().exp()),
                      "images_per_s": round(config.batch_size * config.accum / elapsed, 1)}
            losses.clear()
            self.log.write(record)
            progress.set_postfix(loss=f"{record['loss']:.4f}")
            if self._at_max_steps():
                progress.close()
                self._save()
                return True
            if config.save_every and self.step % config.save_every == 0:
                self._save()
        progress.close()
        return False

    def _at_max_steps(self) -> bool:
        return self.config.max_steps is not None and self.step >= self.config.max_steps

    def _loss(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            image_features = self._encode("image", images)
            text_features = self._encode("text", texts)
        image_features = F.normalize(image_features.float(), dim=-1)
        text_features = F.normalize(text_features.float(), dim=-1)
        return LOSSES[self.config.loss](image_features, text_features, self.model.logit_scale.exp(), self.logit_bias)

    def _encode(self, side: str, inputs: torch.Tensor) -> torch.Tensor:
        tower = self.towers[side]
        return tower.head()(inputs) if self.cached[side] else tower.encode(inputs)

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _optimiser_step(self) -> None:
        distributed.average_gradients(self.parameters)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        self.step += 1

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """Val loss (mean over global-batch-sized chunks) and image↔text recall@k, on the main rank.

        A retrieved item counts as a hit when its caption equals the query's: structured captions
        repeat across cases, so demanding the very same case would punish correct retrievals.
        """
        if not self.has_val or not ranks.is_main():
            ranks.barrier()
            return {}
        self.model.eval()
        loader = DataLoader(self.val_set, batch_size=min(self.config.batch_size, 256), num_workers=self.config.workers)
        image_chunks, text_chunks = [], []
        for images, texts in loader:
            with self._autocast():
                image_chunks.append(self._encode("image", images.to(self.device)).float())
                text_chunks.append(self._encode("text", texts.to(self.device)).float())
        image_features = F.normalize(torch.cat(image_chunks), dim=-1)
        text_features = F.normalize(torch.cat(text_chunks), dim=-1)
        loss_fn, scale = LOSSES[self.config.loss], self.model.logit_scale.exp()
        size = self.config.batch_size
        chunk_losses = [loss_fn(image_features[i : i + size], text_features[i : i + size], scale, self.logit_bias,
                                gather=False) for i in range(0, len(image_features), size)]
        captions = [self.val_set.pick(i)[1] for i in range(len(self.val_set))]
        results = {"val_loss": float(torch.stack(chunk_losses).mean()), "val_cases": len(captions)}
        results.update(retrieval_recall(image_features, text_features, captions, RECALL_AT))
        ranks.barrier()
        return results

    # -- checkpoints and export -----------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "logit_bias": self.logit_bias.detach() if self.logit_bias is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "results": self.results,
            "config": self.config.recipe(),
        }

    def _save(self) -> None:
        rng = all_rng_states(self.device)  # collective: every rank takes part
        if ranks.is_main():
            path = save_checkpoint(self.out, {**self._state(), "rng": rng})
            self.log.write({"event": "checkpoint", "epoch": self.epoch, "step": self.step, "file": str(path)})
        ranks.barrier()

    def _resume(self) -> None:
        state = load_checkpoint(self.out, recipe=self.config.recipe())
        if state is None:
            if ranks.is_main():
                self.log.write({"event": "resume", "found": False})
            return
        self.model.load_state_dict(state["model"])
        if self.logit_bias is not None and state["logit_bias"] is not None:
            with torch.no_grad():
                self.logit_bias.copy_(state["logit_bias"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.results = state["results"]
        restore_rng(state["rng"], self.device)
        self.log.write({"event": "resume", "found": True, "epoch": self.epoch, "step": self.step})

    def _export(self) -> None:
        if ranks.is_main():
            from dermkit.models import ModelCard, export_model
            from dermkit.models.card import (
                license_of_trained_weights,
                training_data_entries,
            )

            training_data = training_data_entries(self.manifests)
            licences = ", ".join(sorted({entry["license"] for entry in training_data}))
            card = ModelCard(
                model_id=self.out.name,
                description=(f"Contrastively trained ({self.config.loss}) from {self.config.model} with dermkit. "
                             f"The weights derive from training data under {licences}; their terms "
                             "(e.g. non-commercial use, attribution) may bind uses of this model."),
                base_model=self.config.model,
                license=license_of_trained_weights(training_data),
                training_data=training_data,
                results={"validation": self.results, "training": self.config.recipe()},
                **precision_record(self.precision),
            )
            export_model(self.loaded, self.out / "model", card)
        ranks.barrier()


def _check(config: ClipTrainConfig) -> None:
    if config.loss not in LOSSES:
        raise InputError(f"unknown loss {config.loss!r}; choose from {sorted(LOSSES)}")
    if config.precision not in PRECISIONS:
        raise InputError(f"unknown precision {config.precision!r}; choose from {', '.join(PRECISIONS)}")
    for name in ("epochs", "batch_size", "accum"):
        if getattr(config, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if config.batch_size % ranks.world_size():
        raise InputError(f"--batch-size {config.batch_size} must be divisible by the "
                         f"{ranks.world_size()} processes")


def _adamw(parameters: list[nn.Parameter], *, lr: float, wd: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: decaying gains, biases or the logit scale hurts CLIP."""
    decay = [p for p in parameters if p.ndim >= 2]
    rest = [p for p in parameters if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}], lr=lr)


def _progress(total: int, description: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, disable=not ranks.is_main(), leave=False)

"""Training the differential-diagnosis model (and any image/metadata classifier) on case tables.

The CPU recipe: the backbone starts frozen and its features are cached once (evaluation
preprocessing), so the heads train in seconds; with ``unfreeze_epoch`` the last trunk groups are
opened at that epoch and trained on augmented images (``light``: crops, flips and quarter turns
with mild brightness/contrast; ``strong``: DermLIP's crops, colour jitter and grayscale plus
rotation; see :mod:`dermkit.models.transforms`) with channels-last and optional bf16 autocast,
under a constant rate or a warm-up + cosine schedule over the fine-tuning epochs. Fine-tuning
decodes each image once (``image_cache_mb``), keeps freed memory for reuse on a CPU
(``keep_freed_memory``), steps the fused AdamW kernel where torch has one (``fused_optimizer``) and
may compile the trunk (``compile_trunk``); docs/ddx.md, "Fine-tuning speed". With a time
budget the number of epochs is fitted to it after the first fine-tuning epoch, so the cosine
reaches zero when the budget does, and an epoch is not started when the last one's length would
overrun it. The checkpoint kept, and early stopping, follow one validation criterion,
``select_on``: the validation loss under inverse-frequency class weights (class-balanced, and
steady on small validation splits), or the validation balanced accuracy (the figure a classifier is
judged by, worth its noise once the validation split has some hundreds of cases); the test split is
never read here. Under ``torchrun`` each rank takes its slice of every global batch and
gradients are averaged by hand, with the CLIP trainer's checkpoint and resume machinery.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dermkit.core import distributed as ranks
from dermkit.core.atomic import atomic_write_text
from dermkit.core.errors import InputError
from dermkit.core.memory import keep_freed_memory
from dermkit.core.precision import (
    PRECISION_HELP,
    PRECISIONS,
    precision_record,
    resolve_precision,
)
from dermkit.data.image_cache import DecodedImages
from dermkit.data.images import open_image
from dermkit.data.table import Case, frame_to_cases, read_table
from dermkit.metrics import balanced_accuracy
from dermkit.models.backbones import Backbone
from dermkit.models.card import (
    ModelCard,
    case_composition,
    license_of_trained_weights,
    training_data_entries,
)
from dermkit.models.colour import PREPROCESS_KEY as COLOUR_KEY
from dermkit.models.ddx_net import (
    POOLINGS,
    DdxNet,
    LabelSpace,
    MetadataSpec,
    collate_metadata,
)
from dermkit.models.factory import DEFAULT_BACKBONE, build_backbone
from dermkit.models.families.ddx import DdxModel, pad_images, save_ddx
from dermkit.models.feature_cache import cache_directory, get_or_compute, trunk_cache
from dermkit.models.transforms import AUGMENTATIONS, TTA_VIEW_COUNTS
from dermkit.train import distributed
from dermkit.train.checkpoint import (
    all_rng_states,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from dermkit.train.data import read_splits
from dermkit.train.decision import fit_logit_adjustment, training_prior
from dermkit.train.imbalance import choose_synthetic, epoch_indices, synthetic_quota
from dermkit.train.losses_supervised import (
    class_balanced_weights,
    focal_loss,
    smooth,
    soft_cross_entropy,
)
from dermkit.train.optim import adamw
from dermkit.train.run_log import MetricsLog
from dermkit.train.schedule import warmup_cosine

INPUTS = ("images", "metadata", "images+metadata")
LOSS_NAMES = ("soft-ce", "focal")
DECISIONS = ("argmax", "balanced")
SCHEDULES = ("constant", "cosine")
SELECTION_CRITERIA = ("loss", "balanced-accuracy")
WEIGHT_AVERAGES = ("none", "ema")
CLASS_WEIGHTS = ("none", "inverse", "effective")
SAMPLINGS = ("natural", "balanced")


def _label_list(labels: str) -> str | list[str]:
    """``--labels``: a label-set name, or a comma list of condition ids."""
    return labels if "," not in labels else [x.strip() for x in labels.split(",")]


def _minutes_to_seconds(minutes: float) -> float:
    return minutes * 60


@dataclass
class DdxTrainConfig:
    """A run's recipe; the defaults are the CPU recipe (frozen EfficientNet-Lite0, cached features)."""

    data: list[str] = field(metadata={"path": True, "metavar": "TABLE_DIR", "help": (
        "case table (repeatable); trains on 'train', chooses the checkpoint on 'val'")})
    out: str = field(metadata={"path": True, "help": "run directory (checkpoints, metrics, model)"})
    labels: str | list[str] = field(default="ddx26", metadata={"parse": _label_list, "help": (
        "label-set name (ddx26, ham10000, ...) or comma list")})
    other: bool = field(default=True, metadata={"help": "no 'other' class: drop cases outside the labels"})
    aux_level: int | None = field(default=None, metadata={"help": "auxiliary head at this ontology level"})
    aux_weight: float = field(default=0.3, metadata={"help": "weight of the auxiliary head's loss (default 0.3)"})
    inputs: str = field(default="images+metadata", metadata={"choices": INPUTS, "help": "what the model reads"})
    backbone: str = field(default=DEFAULT_BACKBONE, metadata={"help": (
        "timm:ARCH, clip:MODEL, or ddx:DIR (the trunk of a trained ddx model)")})
    pretrained: bool = field(default=True, metadata={"help": "random backbone weights (tests, ablations)"})
    image_size: int | None = field(default=None, metadata={"help": "input side (default: the backbone's)"})
    pooling: str = field(default="mean", metadata={"choices": POOLINGS, "help": "how a case's images are pooled"})
    loss: str = field(default="soft-ce", metadata={"choices": LOSS_NAMES, "help": "training loss"})
    class_weights: str = field(default="effective", metadata={"choices": CLASS_WEIGHTS, "help": (
        "loss weights per class: none, inverse frequency or effective number")})
    beta: float = field(default=0.999, metadata={"help": "effective-number beta"})
    focal_gamma: float = field(default=2.0, metadata={"help": "focal-loss gamma"})
    focal_alpha: float | None = field(default=None, metadata={"help": (
        "binary focal alpha (positive class), e.g. 0.25")})
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the soft targets"})
    sampling: str = field(default="natural", metadata={"choices": SAMPLINGS, "help": (
        "draw cases at their natural rates or class-balanced")})
    field_dropout: float = field(default=0.2, metadata={"help": "chance to hide each metadata field"})
    synthetic: list[str] = field(default_factory=list, metadata={"path": True, "metavar": "TABLE_DIR", "help": (
        "synthetic case table to mix into training (repeatable)")})
    synthetic_ratio: float = field(default=1.0, metadata={"help": "synthetic per real case of a class"})
    epochs: int = field(default=60, metadata={"help": "most epochs (early stopping may end sooner)"})
    batch_size: int = field(default=32, metadata={"help": "global batch over all processes"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW rate of the heads"})
    wd: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    hidden: int = field(default=256, metadata={"help": "width of the joint layer"})
    dropout: float = field(default=0.3, metadata={"help": "dropout before the output layer"})
    unfreeze_epoch: int | None = field(default=None, metadata={"help": (
        "open the last trunk groups from this epoch")})
    unfreeze_groups: int = field(default=2, metadata={"help": (
        "trunk groups to open, counted from the output (-1: all)")})
    finetune_lr: float = field(default=1e-4, metadata={"help": "base rate of the opened trunk groups"})
    schedule: str = field(default="constant", metadata={"choices": SCHEDULES, "help": (
        "fine-tuning rates: constant, or one warm-up epoch then cosine decay to zero")})
    augment: str = field(default="light", metadata={"choices": AUGMENTATIONS, "help": (
        "fine-tuning augmentation: light (crops, flips, quarter turns, mild brightness/contrast; "
        "colour kept) or strong (DermLIP's colour jitter and grayscale, 45-degree rotation)")})
    patience: int = field(default=10, metadata={"help": "epochs without validation gain before stopping"})
    select_on: str = field(default="loss", metadata={"choices": SELECTION_CRITERIA, "help": (
        "validation criterion of the checkpoint kept and of early stopping: the class-balanced "
        "loss (steady on small splits) or balanced accuracy (some hundreds of cases or more)")})
    decision: str = field(default="argmax", metadata={"choices": DECISIONS, "help": (
        "balanced: correct the logits for the training class mix (tau chosen on validation), "
        "for balanced accuracy on imbalanced data")})
    precision: str = field(default="auto", metadata={"choices": PRECISIONS, "help": PRECISION_HELP})
    seed: int = field(default=0, metadata={"help": "random seed"})
    # Run control: may differ between a run and its resumption.
    resume: bool = field(default=False, metadata={"help": "continue from OUT/checkpoints/last.pt if present"})
    workers: int = field(default=0, metadata={"help": "data-loading processes per training process"})
    image_cache_mb: int = field(default=2048, metadata={"metavar": "MIB", "help": (
        "fine-tuning: memory (MiB, per training process) for training and validation images decoded "
        "once and reused every epoch, the same pixels as decoding again (0: decode every epoch)")})
    keep_freed_memory: bool = field(default=True, metadata={"help": (
        "glibc's defaults for freed memory rather than keeping it for reuse when fine-tuning on a CPU "
        "(otherwise each step maps and unmaps its large activations again: 1.4x slower steps on 2 cores; "
        "kept, the process stays at its peak resident size)")})
    fused_optimizer: bool = field(default=True, metadata={"help": (
        "fine-tuning: AdamW's default kernel rather than the fused one that is used where this torch has "
        "it for the device (they agree to rounding, not bit for bit; a resumed run keeps its checkpoint's)")})
    compile_trunk: bool = field(default=False, metadata={"help": (
        "torch.compile the trunk for fine-tuning (off by default: on a 2-core CPU, EfficientNet-Lite0 "
        "took about a minute to compile and then stepped no faster in fp32)")})
    cache_dir: str | None = field(default=None, metadata={"path": True, "help": (
        "frozen-trunk feature cache (default $DERMKIT_CACHE_DIR/features)")})
    export: bool = field(default=True, metadata={"help": "skip writing the trained model to OUT/model"})
    time_budget_s: float | None = field(default=None, metadata={
        "flag": "--time-budget-min", "metavar": "MINUTES", "parse": _minutes_to_seconds, "help": (
            "wall-time budget (caching included): the fine-tuning epochs are fitted to it")})
    shades_of_gray: float | None = field(default=None, metadata={"metavar": "P", "help": (
        "Shades of Gray colour constancy of norm P (6 in the ISIC literature) before every image "
        "transform, at training and, stored in the model's preprocessing, at eval/predict/serve time "
        "(models.colour)")})
    weight_average: str = field(default="none", metadata={"choices": WEIGHT_AVERAGES, "help": (
        "ema: an exponential moving average of the fine-tuned weights, validated beside the plain "
        "weights every epoch; the better of the two on the selection criterion is the epoch's candidate")})
    ema_decay: float = field(default=0.998, metadata={"help": "per-step decay of --weight-average ema"})
    tta: str = field(default="1", metadata={"choices": ("auto", *map(str, TTA_VIEW_COUNTS)), "help": (
        "test-time views stored with the model (predict, eval and serve use them); "
        "auto: the count of best validation balanced accuracy")})

    RUN_CONTROL = ("resume", "workers", "image_cache_mb", "keep_freed_memory", "fused_optimizer", "compile_trunk",
                   "cache_dir", "export", "time_budget_s", "tta")

    def recipe(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.RUN_CONTROL}


def train_ddx(config: DdxTrainConfig) -> dict[str, Any] | None:
    """Train (or resume) a run; the main process returns the summary (also ``OUT/summary.json``)."""
    with distributed.process_group() as device:
        return DdxTrainer(config, device).run()


@dataclass
class Split:
    """One split's cases with their encoded inputs, all as tensors (cheap to slice into batches)."""

    cases: list[Case]
    target: torch.Tensor
    metadata: dict[str, torch.Tensor] | None
    features: torch.Tensor | None = None  # N×K×D trunk features (frozen phase)
    mask: torch.Tensor | None = None

    def labels(self) -> np.ndarray:
        return self.target.argmax(dim=1).numpy()

    def inputs(self, rows: torch.Tensor, cached: bool = True) -> dict[str, Any]:
        """The batch's model inputs; ``cached=False`` leaves out the features (the trunk is training)."""
        out: dict[str, Any] = {}
        if cached and self.features is not None:
            assert self.mask is not None
            out["features"], out["mask"] = self.features[rows], self.mask[rows]
        if self.metadata is not None:
            out["metadata"] = {key: value[rows] for key, value in self.metadata.items()}
        return out


class CaseImages(Dataset):
    """A case's images (decoded ones from memory) through a transform, for the fine-tuning phase."""

    def __init__(self, cases: list[Case], transform: Any, images: DecodedImages) -> None:
        self.cases, self.transform, self.images = cases, transform, images

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> tuple[int, list[torch.Tensor]]:
        return index, [self.transform(self.images.open(path)) for path in self.cases[index].image_paths]


def _collate(items: list[tuple[int, list[torch.Tensor]]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, mask = pad_images([images for _, images in items])
    return torch.tensor([index for index, _ in items]), images, mask


class DdxTrainer:
    """One run; attributes hold the live state a checkpoint saves and restores."""

    def __init__(self, config: DdxTrainConfig, device: torch.device) -> None:
        _check(config)
        self.started = time.perf_counter()
        self.config, self.device, self.out = config, device, Path(config.out)
        self.precision = resolve_precision(config.precision, device)
        distributed.seed_everything(config.seed + ranks.rank())
        self.log = MetricsLog(self.out, enabled=ranks.is_main())
        self.labels = LabelSpace.build(config.labels, config.other, config.aux_level)
        train, val, self.manifests = read_splits(config.data)
        # Synthetic cases never validate: a generated image would score its own source's label.
        train, val = self._labelled(train), self._labelled([c for c in val if not c.synthetic])
        synthetic = self._synthetic(train)
        if not val:
            raise InputError("no labelled validation cases: the checkpoint is chosen on split 'val' "
                             "(run `dermkit data split` with --val > 0)")
        self.uses_images = "images" in config.inputs
        self.metadata_spec = MetadataSpec.fit(train) if "metadata" in config.inputs else None
        self.backbone: Backbone | None = (build_backbone(config.backbone, config.pretrained, config.image_size)
                                          if self.uses_images else None)
        self.net = DdxNet(len(self.labels.classes), feature_dim=self.backbone.dim if self.backbone else 0,
                          trunk=self.backbone.module if self.backbone else None, metadata=self.metadata_spec,
                          pooling=config.pooling, hidden=config.hidden, dropout=config.dropout,
                          field_dropout=config.field_dropout,
                          n_aux=len(self.labels.aux_classes())).to(device)
        distributed.broadcast_parameters(self.net.state_dict().values())
        if self.backbone is not None:
            self.backbone.set_trainable(0)
            if config.shades_of_gray is not None:  # part of the preprocessing: cached, exported, applied at eval
                self.backbone.preprocess[COLOUR_KEY] = config.shades_of_gray
        features = None
        if self.uses_images:  # one cache entry per source, so mixing in synthetic cases reuses the real ones'
            features = {**self._cached_features(train + val), **self._cached_features(synthetic)}
        self.train, self.val = self._split(train + synthetic, features), self._split(val, features)
        counts = self.train_counts = np.bincount(self.train.labels(), minlength=len(self.labels.classes))
        self.class_weight = torch.tensor(class_balanced_weights(counts, config.beta, config.class_weights),
                                         dtype=torch.float32, device=device)
        # The loss criterion's weights: a class-balanced validation loss, whatever the training loss.
        self.val_weight = torch.tensor(class_balanced_weights(counts, kind="inverse"), dtype=torch.float32)
        self.aux_matrix = torch.from_numpy(self.labels.aux_matrix()).to(device) if config.aux_level else None
        self.epoch, self.best_epoch, self.best_score = 0, -1, -float("inf")  # higher is better
        self.planned_epochs = config.epochs  # fitted to the time budget after the first fine-tuning epoch
        self.optimizer = self._optimizer()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.ema: dict[str, torch.Tensor] | None = None  # --weight-average ema, from the first fine-tuning step
        self.decoded: DecodedImages | None = None  # filled when fine-tuning first reads images
        self.history: list[dict[str, Any]] = []

    # -- data ---------------------------------------------------------------------------------

    def _labelled(self, cases: list[Case]) -> list[Case]:
        return [c for c in cases if self.labels.target(c.differential) is not None]

    def _target(self, case: Case) -> np.ndarray:
        """A kept case's soft target over the label space (``_labelled`` dropped the others)."""
        target = self.labels.target(case.differential)
        if target is None:
            raise InputError(f"case {case.case_id}: no label is in the model's label space", field="differential")
        return target

    def _synthetic(self, real: list[Case]) -> list[Case]:
        """Synthetic cases of the given tables, ``synthetic_ratio`` × each class's real count."""
        if not self.config.synthetic:
            return []
        pool = []
        for table in self.config.synthetic:
            cases = list(frame_to_cases(read_table(table)))
            if not all(c.synthetic and c.split in (None, "train") for c in cases):
                raise InputError("a synthetic table must hold only synthetic training cases", file=table)
            pool += self._labelled(cases)
        real_labels = [int(np.argmax(self._target(c))) for c in real]
        pool_labels = [int(np.argmax(self._target(c))) for c in pool]
        chosen = choose_synthetic(pool_labels, synthetic_quota(real_labels, pool_labels, self.config.synthetic_ratio),
                                  self.config.seed)
        return [pool[i] for i in chosen]

    def _split(self, cases: list[Case], features: dict[str, torch.Tensor] | None) -> Split:
        target = torch.from_numpy(np.stack([self._target(c) for c in cases]))
        metadata = None
        if self.metadata_spec is not None:
            metadata = collate_metadata([self.metadata_spec.encode(c) for c in cases])
        split = Split(cases, target, metadata)
        if features is not None:
            split.features, split.mask = pad_images([[features[p] for p in c.image_paths] for c in cases])
        return split

    def _cached_features(self, cases: list[Case]) -> dict[str, torch.Tensor]:
        """Frozen-trunk features of every image, from the cache or computed once (split over ranks)."""
        assert self.backbone is not None
        paths = list(dict.fromkeys(p for c in cases for p in c.image_paths))
        if not paths:
            return {}
        _, evaluate = self.backbone.transforms()
        cache = trunk_cache(self.backbone, paths, self.config.cache_dir)
        started = time.perf_counter()
        self.backbone.module.eval()
        # compute_features forks the RNG, so a cache miss does not shift later random draws.
        loaded, hit = get_or_compute(cache, paths, lambda p: evaluate(open_image(p)), self.backbone.module,
                                     batch_size=64, device=self.device, workers=self.config.workers,
                                     description="caching image features")
        record: dict[str, Any] = {"event": "feature_cache", "hit": hit, "items": len(paths), "file": str(cache.path)}
        if not hit:
            record["seconds"] = round(time.perf_counter() - started, 3)
        self.log.write(record)
        return loaded

    def _images(self) -> DecodedImages:
        """Fine-tuning's decoded training and validation images (up to ``image_cache_mb``), filled on
        first use, before any data-loader worker is forked, so the workers share them. Spawned workers
        would each be sent a copy every epoch, so with those the images are decoded where they are used."""
        if self.config.workers and torch.multiprocessing.get_start_method() != "fork":
            return DecodedImages(0)
        if self.decoded is None:
            started = time.perf_counter()
            self.decoded = DecodedImages(self.config.image_cache_mb * 2**20)
            self.decoded.fill(p for c in self.train.cases + self.val.cases for p in c.image_paths)
            self.log.write({"event": "image_cache", "images": len(self.decoded),
                            "mib": round(self.decoded.used_bytes / 2**20, 1),
                            "seconds": round(time.perf_counter() - started, 3)})
        return self.decoded

    # -- the loop -----------------------------------------------------------------------------

    def _finetuning(self) -> bool:
        return self.config.unfreeze_epoch is not None and self.epoch >= self.config.unfreeze_epoch

    @contextlib.contextmanager
    def _epoch_threads(self) -> Iterator[None]:
        """Heads on cached features run on one intra-op thread: their matrices are too small to share
        between threads, and on a busy CPU the threads' waiting made an epoch ten times slower (0.88 s vs
        0.07 s on PAD-UFES-20's 290 cases). The trunk's passes keep every thread."""
        threads = torch.get_num_threads()
        if self.device.type == "cpu" and not self._finetuning():
            torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def _optimizer(self) -> torch.optim.Optimizer:
        """Heads at ``lr``; once unfrozen, the opened trunk groups at ``finetune_lr``."""
        trunk_ids = {id(p) for p in self.backbone.module.parameters()} if self.backbone else set()
        groups = [{"params": [p for p in self.net.parameters() if id(p) not in trunk_ids], "lr": self.config.lr}]
        if self._finetuning():
            assert self.backbone is not None
            self.backbone.set_trainable(self.config.unfreeze_groups)
            self.backbone.module.to(memory_format=torch.channels_last)
            if self.config.keep_freed_memory and self.device.type == "cpu":
                keep_freed_memory()  # each step reuses the last one's activation pages (core/memory.py)
            if self.config.compile_trunk:
                self.backbone.module.compile()  # in place: the state dict keeps its keys
            groups.append({"params": [p for p in self.backbone.module.parameters() if p.requires_grad],
                           "lr": self.config.finetune_lr})
        for group in groups:
            group["base_lr"] = group["lr"]
        # Heads on cached features keep torch's default kernel: their few small tensors gain nothing.
        return adamw(groups, weight_decay=self.config.wd, fused=self.config.fused_optimizer and self._finetuning())

    def _set_learning_rates(self, step: int, steps_per_epoch: int) -> None:
        """Scale every group's base rate by the schedule at this step of the epoch (fine-tuning only)."""
        if self.config.schedule != "cosine" or not self._finetuning():
            return
        assert self.config.unfreeze_epoch is not None
        done = self.epoch - self.config.unfreeze_epoch
        total = max(1, self.planned_epochs - self.config.unfreeze_epoch) * steps_per_epoch
        factor = warmup_cosine(steps_per_epoch, total)(done * steps_per_epoch + step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor

    def _fit_plan_to_budget(self, epoch_seconds: float) -> None:
        """After the first fine-tuning epoch: as many more epochs as the budget's remainder holds."""
        budget = self.config.time_budget_s
        if budget is None or self.epoch != (self.config.unfreeze_epoch or 0) + 1 or not self._finetuning():
            return
        left = budget - (time.perf_counter() - self.started)
        planned = min(self.config.epochs, self.epoch + max(0, int(left // max(epoch_seconds, 1e-6))))
        self.planned_epochs = int(ranks.broadcast_object(planned))
        self.log.write({"event": "plan", "epochs": self.planned_epochs, "epoch_seconds": round(epoch_seconds, 1)})

    def run(self) -> dict[str, Any] | None:
        if self.config.resume:
            self._resume()
        while (self.epoch < self.planned_epochs and self.epoch - self.best_epoch <= self.config.patience
               and not self._out_of_time()):
            started = time.perf_counter()
            with self._epoch_threads():
                train_loss = self._train_epoch()
                validation = self._validate()
            record: dict[str, Any] = {"event": "epoch", "epoch": self.epoch, "train_loss": train_loss,
                                      **validation, "seconds": round(time.perf_counter() - started, 3)}
            score, state = self._score(validation), self.net.state_dict()
            if self.ema is not None:
                averaged = self._validate_weights(self.ema)
                record["ema"] = averaged
                if self._score(averaged) > score:
                    score, state, record["weights"] = self._score(averaged), self.ema, "ema"
            if score > self.best_score:
                self.best_score, self.best_epoch = score, self.epoch
                self.best_state = copy.deepcopy(state)
            self.history.append(record)
            self.log.write(record)
            self.epoch += 1
            self._fit_plan_to_budget(record["seconds"])
            if self.epoch == self.config.unfreeze_epoch:  # switch before saving: a checkpoint holds
                self.optimizer = self._optimizer()        # the optimiser of the epoch it resumes into
                self.log.write({"event": "unfreeze", "epoch": self.epoch, "groups": self.config.unfreeze_groups})
            self._save()
        summary = {"out": str(self.out), "epochs_run": self.epoch, "best_epoch": self.best_epoch,
                   "seconds": round(time.perf_counter() - self.started, 1), "planned_epochs": self.planned_epochs,
                   "selection": self._selection(), "classes": self.labels.classes,
                   "train_cases": len(self.train.cases), "val_cases": len(self.val.cases),
                   "synthetic_train_cases": sum(c.synthetic for c in self.train.cases),
                   **precision_record(self.precision)}
        if self.config.export and ranks.is_main():
            self._export(summary)
        self.log.close()
        if not ranks.is_main():
            return None
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _score(self, validation: dict[str, float]) -> float:
        return -validation["val_loss"] if self.config.select_on == "loss" else validation["val_balanced_accuracy"]

    def _validate_weights(self, state: dict[str, torch.Tensor]) -> dict[str, float]:
        """Validation figures of ``state``; the live weights are restored afterwards."""
        live = copy.deepcopy(self.net.state_dict())
        self.net.load_state_dict(state)
        try:
            return self._validate()
        finally:
            self.net.load_state_dict(live)

    def _update_ema(self) -> None:
        """One step of the moving average (integer buffers, e.g. batch-norm counts, are copied)."""
        state = self.net.state_dict()
        if self.ema is None:
            self.ema = {k: v.detach().clone() for k, v in state.items()}
            return
        with torch.no_grad():
            for key, value in state.items():
                if value.is_floating_point():
                    self.ema[key].lerp_(value, 1 - self.config.ema_decay)
                else:
                    self.ema[key].copy_(value)

    def _out_of_time(self) -> bool:
        """Whether another epoch as long as the last would overrun the budget; never before the first
        epoch, so that a budget spent on feature caching still yields a model."""
        budget = self.config.time_budget_s
        over = bool(self.history) and budget is not None and (
            time.perf_counter() - self.started + self.history[-1]["seconds"] > budget)
        return bool(ranks.broadcast_object(over))

    def _selection(self) -> dict[str, Any]:
        """The criterion and the chosen epoch's validation figures (its log record)."""
        chosen = next((r for r in self.history if r["epoch"] == self.best_epoch), {})
        return {"criterion": self.config.select_on, "epoch": self.best_epoch,
                **{k: v for k, v in chosen.items() if k.startswith("val_")}}

    def _loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        config = self.config
        if config.loss == "focal":
            alpha = config.focal_alpha if config.focal_alpha is not None else (
                None if config.class_weights == "none" else self.class_weight)
            loss = focal_loss(out["logits"], target, config.focal_gamma, alpha)
        else:
            weight = None if config.class_weights == "none" else self.class_weight
            normaliser = None  # one process: the batch's own total weight
            if weight is not None and ranks.world_size() > 1:
                normaliser = ranks.mean_over_ranks((smooth(target, config.label_smoothing) * weight).sum())
            loss = soft_cross_entropy(out["logits"], target, weight, config.label_smoothing, normaliser)
        if self.aux_matrix is not None:
            loss = loss + config.aux_weight * soft_cross_entropy(out["aux_logits"], target @ self.aux_matrix)
        return loss

    def _train_epoch(self) -> float:
        config = self.config
        self.net.train()
        if self.backbone is not None:  # frozen groups keep their batch-norm statistics
            for group in self.backbone.trainable_groups():
                group.train(any(p.requires_grad for p in group.parameters()))
        draw = torch.from_numpy(epoch_indices(self.train.labels(), config.sampling, config.seed, self.epoch))
        global_batch = min(config.batch_size, len(draw) // ranks.world_size() * ranks.world_size())
        sampler = distributed.ShardedBatches(len(draw), global_batch, seed=config.seed, epoch=self.epoch)
        losses = []
        steps = len(sampler)
        if self._finetuning():
            train_transform, _ = self.backbone.transforms(config.augment)  # type: ignore[union-attr]
            loader = DataLoader(CaseImages(self.train.cases, train_transform, self._images()),
                                batch_sampler=[draw[b].tolist() for b in sampler], num_workers=config.workers,
                                collate_fn=_collate)
            batches = ((rows, {"images": images, "mask": mask}) for rows, images, mask in loader)
        else:
            batches = ((draw[b], {}) for b in sampler)
        for step, (rows, images) in enumerate(batches):
            self._set_learning_rates(step, steps)
            inputs = {**self.train.inputs(rows, cached=not images), **images}
            inputs = _to(inputs, self.device)
            with self._autocast():
                out = self.net(**inputs)
            loss = self._loss(out, self.train.target[rows].to(self.device))
            loss.backward()
            distributed.average_gradients([p for p in self.net.parameters() if p.requires_grad])
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if config.weight_average == "ema" and self._finetuning():
                self._update_ema()
            losses.append(float(loss.detach()))
        # Every rank's mean of its share: their average is the one-process loss of the global batches.
        return float(ranks.mean_over_ranks(torch.tensor(np.mean(losses) if losses else float("nan"))))

    @torch.no_grad()
    def predict(self, split: Split) -> torch.Tensor:
        """Softmax probabilities of a split with the current weights (cached features when frozen)."""
        self.net.eval()
        chunks = []
        if self._finetuning():
            _, evaluate = self.backbone.transforms()  # type: ignore[union-attr]
            loader = DataLoader(CaseImages(split.cases, evaluate, self._images()), batch_size=self.config.batch_size,
                                num_workers=self.config.workers, collate_fn=_collate)
            for rows, images, mask in loader:
                inputs = _to({**split.inputs(rows, cached=False), "images": images, "mask": mask}, self.device)
                with self._autocast():
                    chunks.append(torch.softmax(self.net(**inputs)["logits"].float(), dim=1).cpu())
        else:
            for start in range(0, len(split.cases), 1024):
                rows = torch.arange(start, min(start + 1024, len(split.cases)))
                chunks.append(torch.softmax(self.net(**_to(split.inputs(rows), self.device))["logits"].float(),
                                            dim=1).cpu())
        return torch.cat(chunks)

    def _validate(self) -> dict[str, float]:
        """Class-balanced validation loss and balanced accuracy (rank 0 computes, every rank receives)."""
        values = None
        if ranks.is_main():
            probs = self.predict(self.val)
            weighted = self.val.target * self.val_weight
            values = {"val_loss": float(-(weighted * probs.clamp_min(1e-12).log()).sum() / weighted.sum()),
                      "val_balanced_accuracy": balanced_accuracy(probs.numpy(), self.val.labels())}
        return ranks.broadcast_object(values)

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- checkpoints and export -----------------------------------------------------------------

    def _save(self) -> None:
        rng = all_rng_states(self.device)
        if ranks.is_main():
            save_checkpoint(self.out, {
                "model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                "best_epoch": self.best_epoch, "best_score": self.best_score, "best_state": self.best_state,
                "ema": self.ema, "planned_epochs": self.planned_epochs,
                "history": self.history, "config": self.config.recipe(), "rng": rng})
        ranks.barrier()

    def _resume(self) -> None:
        state = load_checkpoint(self.out, recipe=self.config.recipe())
        if state is None:
            return
        self.epoch = state["epoch"]
        self.net.load_state_dict(state["model"])
        self.optimizer = self._optimizer()  # the right parameter groups for the phase resumed into
        self.optimizer.load_state_dict(state["optimizer"])
        self.best_epoch, self.best_score, self.best_state = state["best_epoch"], state["best_score"], state["best_state"]
        self.history = state["history"]
        self.planned_epochs = state["planned_epochs"]
        self.ema = state.get("ema")
        restore_rng(state["rng"], self.device)
        self.log.write({"event": "resume", "epoch": self.epoch})

    def _export(self, summary: dict[str, Any]) -> None:
        assert self.best_state is not None
        self.net.load_state_dict(self.best_state)
        config = {"backbone": self.backbone.name if self.backbone else "",
                  "feature_dim": self.backbone.dim if self.backbone else 0,
                  "preprocess": self.backbone.preprocess if self.backbone else {"size": 0},
                  "net": {"pooling": self.config.pooling, "hidden": self.config.hidden,
                          "dropout": self.config.dropout, "field_dropout": self.config.field_dropout,
                          "n_aux": len(self.labels.aux_classes())}}
        validation: dict[str, Any] = self._selection()
        if self.config.decision == "balanced":
            weight = None if self.config.class_weights == "none" else self.class_weight.cpu().numpy()
            fitted = fit_logit_adjustment(self.predict(self.val).clamp_min(1e-12).log().numpy(), self.val.labels(),
                                          training_prior(self.train_counts, weight, self.config.sampling))
            config["logit_adjustment"] = fitted["bias"]
            validation["decision"] = summary["decision"] = {"rule": "balanced", "tau": fitted["tau"],
                                                            "balanced_accuracy": fitted["validation_balanced_accuracy"]}
        training_data = training_data_entries(self.manifests)
        card = ModelCard(
            model_id=self.out.name,
            description=f"Differential diagnosis from {self.config.inputs} ({self.config.backbone}), "
                        f"trained with dermkit; checkpoint chosen on the validation split.",
            base_model=self.config.backbone if self.uses_images else "",  # ddx:DIR names the run it came from
            license=license_of_trained_weights(training_data),
            training_data=training_data,
            results={"validation": validation, "training": self.config.recipe(),
                     "training_cases": case_composition(c for c in self.train.cases if not c.synthetic)},
            **precision_record(self.precision),
        )
        model = DdxModel(self.net.cpu(), self.labels, self.metadata_spec, config, card)
        if self.config.tta != "1":
            config["tta"] = summary["tta"] = self._test_time_views(model)
        save_ddx(model, self.out / "model")
        summary["model"] = str(self.out / "model")

    def _test_time_views(self, model: DdxModel) -> dict[str, Any]:
        """``--tta N`` as given, or ``auto``: the count of best validation balanced accuracy
        (:func:`dermkit.predict.choose_tta` on the validation split of every ``--data`` table)."""
        from dermkit.models.transforms import check_tta
        from dermkit.predict import choose_tta

        if self.config.tta != "auto":
            return {"views": check_tta(int(self.config.tta)), "chosen": "given"}
        if not model.uses_images:
            return {"views": 1, "chosen": "no images"}
        return {**choose_tta(model, self.config.data, cache_dir=cache_directory(self.config.cache_dir)), "chosen": "validation"}


def _to(inputs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (_to(v, device) if isinstance(v, dict) else v.to(device)) for k, v in inputs.items()}


def _check(config: DdxTrainConfig) -> None:
    from dermkit.models.transforms import AUGMENTATIONS
    from dermkit.train.imbalance import SAMPLINGS

    choices = {"inputs": (config.inputs, INPUTS), "loss": (config.loss, LOSS_NAMES),
               "sampling": (config.sampling, SAMPLINGS), "schedule": (config.schedule, SCHEDULES),
               "decision": (config.decision, DECISIONS), "augment": (config.augment, AUGMENTATIONS),
               "select_on": (config.select_on, SELECTION_CRITERIA),
               "weight_average": (config.weight_average, WEIGHT_AVERAGES),
               "precision": (config.precision, PRECISIONS)}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise InputError(f"unknown {name} {value!r}; choose from {', '.join(allowed)}", field=name)
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1", field=name)
    if config.shades_of_gray is not None and config.shades_of_gray <= 0:
        raise InputError(f"--shades-of-gray needs a norm p > 0, got {config.shades_of_gray}", field="shades_of_gray")
    if config.unfreeze_epoch is not None and "images" not in config.inputs:
        raise InputError("--unfreeze-epoch needs image inputs", field="unfreeze_epoch")

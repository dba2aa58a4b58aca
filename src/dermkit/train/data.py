"""Image–caption pairs from case tables, with every random choice a function of (seed, epoch, index).

Seeding each sample from its own key, instead of from the global RNG, makes the pairs and their
augmentation identical whatever the number of workers or processes, and after a resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from dermkit.core.errors import InputError
from dermkit.data.images import open_image
from dermkit.data.table import Case, frame_to_cases, read_manifest, read_table

CAPTIONS_PER_CASE = 3


def read_splits(tables: Sequence[str | Path]) -> tuple[list[Case], list[Case], list[dict[str, Any]]]:
    """Train and val cases of all tables (by their ``split`` column) and the tables' manifests."""
    frames, manifests = [], []
    for table in tables:
        frames.append(read_table(table))
        manifests.append({"table": str(table), **read_manifest(table)})
    frame = pd.concat(frames, ignore_index=True)
    if frame["case_id"].duplicated().any():
        raise InputError(f"case id {frame['case_id'][frame['case_id'].duplicated()].iloc[0]!r} occurs in two tables")
    cases = list(frame_to_cases(frame))
    train = [c for c in cases if c.split == "train"]
    val = [c for c in cases if c.split == "val"]
    if not train:
        raise InputError("no case has split 'train' (run `dermkit data split` first)", file=str(tables[0]))
    return train, val, manifests


def caption_candidates(case: Case) -> list[str]:
    """The case's own caption, else a few built from its structured fields."""
    if case.caption:
        return [case.caption]
    from dermkit.data.captions import captions_for_case

    return captions_for_case(case, n=CAPTIONS_PER_CASE, seed=0)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


class CaptionedImages(Dataset):
    """Pair ``i`` of epoch ``e``: one of case ``i``'s images and one of its captions.

    A side whose trunk is frozen returns cached trunk features instead of pixels or tokens.
    """

    def __init__(
        self,
        cases: Sequence[Case],
        captions: Sequence[Sequence[str]],
        *,
        image_transform: Callable[[Any], torch.Tensor],
        tokenize: Callable[[list[str]], torch.Tensor],
        seed: int,
        image_features: dict[str, torch.Tensor] | None = None,
        text_features: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.cases, self.captions = list(cases), [list(c) for c in captions]
        self.image_transform, self.tokenize = image_transform, tokenize
        self.seed, self.epoch = seed, 0
        self.image_features, self.text_features = image_features, text_features

    def __len__(self) -> int:
        return len(self.cases)

    def pick(self, index: int) -> tuple[str, str, int]:
        """(image path, caption, augmentation seed) of pair ``index`` this epoch."""
        rng = sample_rng(self.seed, self.epoch, index)
        paths, captions = self.cases[index].image_paths, self.captions[index]
        path = paths[int(rng.integers(len(paths)))]
        caption = captions[int(rng.integers(len(captions)))]
        return path, caption, int(rng.integers(2**62))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, caption, aug_seed = self.pick(index)
        if self.image_features is not None:
            image = self.image_features[path]
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(aug_seed)
                image = self.image_transform(open_image(path))
        text = self.text_features[caption] if self.text_features is not None else self.tokenize([caption])[0]
        return image, text


def all_image_paths(cases: Sequence[Case]) -> list[str]:
    return sorted({p for case in cases for p in case.image_paths})


def all_captions(captions: Sequence[Sequence[str]]) -> list[str]:
    return sorted({c for options in captions for c in options})



"""Image and text encoding: a model's frozen embeddings of a table, computed once per (model, table).

Every model-running task (zero-shot, concepts, linear probe, retrieval) starts from these
embeddings, so extraction is the one expensive step and is never repeated to redo a cheap one.
The cache key is the model name, a fingerprint of its weights, a fingerprint of the table's
image content (case ids, image paths, file sizes and modification times), the preprocessing,
the image mode and the numeric precision: change any of them and the features are recomputed.

The entries are kept by :mod:`dermkit.models.feature_cache` (its location rule, atomic writes).
Embeddings are stored L2-normalised (:mod:`dermkit.models.embeddings`), because every task works
in cosine geometry. ``images="first"`` embeds the first image of each case; ``images="all"``
embeds every image and :meth:`ImageFeatures.by_case` pools a case's images (mean of unit vectors,
renormalised). Text embeddings (:func:`encode_texts`, :func:`encode_prompt_sets`) are cheap and
never cached.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd

from dermkit.core.errors import InputError
from dermkit.core.optional import require
from dermkit.core.precision import Precision, resolve_precision
from dermkit.data.images import open_image
from dermkit.data.schema import ALL_SPLITS
from dermkit.data.table import read_table, rows_in_splits
from dermkit.models.embeddings import ImageFeatures, l2_normalize, mean_direction
from dermkit.models.feature_cache import EmbeddingsEntry, cache_directory, weights_fingerprint
from dermkit.models.loaded import Encoder

if TYPE_CHECKING:
    import torch

    from dermkit.models.loaded import LoadedModel

ImageMode = Literal["first", "all"]

CACHE_FORMAT = 1
# Memory addresses in a transform's repr (e.g. of a Lambda) change every run; the key must not.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# A model built in code prints Normalize(mean=(...)); the same model exported and reloaded from its
# JSON config prints mean=[...]: one preprocessing, so one key (and one trunk pass).
_LIST = re.compile(r"\[([^\[\]]*)\]")
# A bf16 run is kept only if its embeddings of the first images point where fp32's do.
BF16_MIN_COSINE = 0.99
BF16_CHECK_IMAGES = 8


def resolve_model(model: str | LoadedModel, device: str = "cpu") -> LoadedModel:
    """A :class:`LoadedModel` from a model name (any name ``load_model`` accepts) or as given."""
    if isinstance(model, str):
        from dermkit.models import load_model

        return load_model(model, device=device)
    return model


def extract_image_features(
    model: str | LoadedModel,
    table: str | Path | pd.DataFrame,
    *,
    images: ImageMode = "first",
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    precision: Precision = "auto",
    device: str = "cpu",
    progress: bool = True,
) -> ImageFeatures:
    """Embeddings of every case of ``table`` (all splits), from the cache when it has them."""
    require("torch", "torch", "feature extraction")
    loaded = resolve_model(model, device)
    frame = table if isinstance(table, pd.DataFrame) else read_table(table)
    index = image_index(frame, images)
    wanted = resolve_precision(precision, _device_of(loaded.model))
    key_parts = {
        "format": CACHE_FORMAT,
        "model": loaded.name,
        "weights": weights_fingerprint(loaded.model),
        "table": table_fingerprint(index),
        "preprocess": preprocessing_key(loaded.preprocess_eval),
        "images": images,
        "precision": wanted,
    }
    root = cache_directory(cache_dir)
    entry = EmbeddingsEntry(root, loaded.name, key_parts)
    cached = entry.load()
    if cached is not None:
        return cached
    split = image_trunk(loaded.model)
    if split is None:
        embeddings, used = _embed_images(loaded, cast(Encoder, loaded.model.encode_image), index["path"].tolist(), batch_size,
                                         num_workers, wanted, progress)
    else:  # the trunk's features are shared by every model built on the same trunk; the head is cheap
        trunk, head = split
        trunk_features, used = _trunk_features(loaded, trunk, index, root, key_parts, batch_size, num_workers,
                                               progress)
        import torch

        with torch.inference_mode():
            embeddings = head.eval()(torch.from_numpy(trunk_features).to(_device_of(loaded.model))).float().cpu().numpy()
    meta = {**key_parts, "precision_used": used, "n_images": len(index), "embed_dim": embeddings.shape[1]}
    entry.save(l2_normalize(embeddings).astype(np.float32), index, meta)
    stored = entry.load()
    assert stored is not None
    return stored


def preprocessing_key(transform: Callable[[Any], Any]) -> str:
    """The transform's repr without memory addresses, sequences printed alike whether tuple or list."""
    return _LIST.sub(r"(\1)", _ADDRESS.sub("", repr(transform)))


def image_trunk(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """The image tower as (trunk, head) where it has that shape, else None.

    open_clip's timm towers compute ``visual.head(visual.trunk(x))``; an image-only backbone
    (``timm:ARCH``) is a bare ``trunk``. dermlip-lite, every model fine-tuned from it with a frozen
    image tower and ``timm:efficientnet_lite0`` share one trunk, so its features are computed once.
    """
    import torch

    visual = getattr(model, "visual", None)
    if visual is not None:
        trunk, head = getattr(visual, "trunk", None), getattr(visual, "head", None)
        if isinstance(trunk, torch.nn.Module) and isinstance(head, torch.nn.Module):
            return trunk, head
        return None
    trunk = getattr(model, "trunk", None)
    if isinstance(trunk, torch.nn.Module) and getattr(model, "encode_image", None) is not None:
        return trunk, torch.nn.Identity()
    return None


def _trunk_features(
    loaded: LoadedModel,
    trunk: torch.nn.Module,
    index: pd.DataFrame,
    root: Path,
    key_parts: dict[str, Any],
    batch_size: int,
    num_workers: int | None,
    progress: bool,
) -> tuple[np.ndarray, str]:
    """Raw (unnormalised) trunk features of ``index``'s images, cached under a key without the model's name."""
    trunk_key = {**key_parts, "model": "trunk", "weights": weights_fingerprint(trunk)}
    entry = EmbeddingsEntry(root, "trunk", trunk_key)
    cached = entry.load()
    if cached is not None:
        return cached.embeddings, cached.meta["precision_used"]
    features, used = _embed_images(loaded, trunk, index["path"].tolist(), batch_size, num_workers,
                                   key_parts["precision"], progress)
    entry.save(features, index, {**trunk_key, "precision_used": used, "n_images": len(index)})
    return features, used


def select_split(frame: pd.DataFrame, split: str | None) -> pd.DataFrame:
    """The rows of ``split`` (all rows for ``None`` or ``all``), re-indexed from 0; an empty split is an error."""
    return rows_in_splits(frame, [split or ALL_SPLITS])


def split_embeddings(
    model: str | LoadedModel,
    table: str | Path | pd.DataFrame,
    split: str | None,
    *,
    images: ImageMode = "first",
    features: ImageFeatures | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The cases of ``split`` and one unit embedding per case, the common start of every task.

    The whole table is embedded (and cached) once, so the other splits cost nothing later;
    pass ``features`` to reuse embeddings already in memory.
    """
    frame = table if isinstance(table, pd.DataFrame) else read_table(table)
    cases = select_split(frame, split)
    if features is None:
        features = extract_image_features(model, frame, images=images, cache_dir=cache_dir, progress=progress)
    return cases, features.by_case(cases["case_id"].tolist())


def encode_texts(model: str | LoadedModel, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Unit-norm fp32 text embeddings, one row per text (cheap, so never cached)."""
    torch = require("torch", "torch", "text embeddings")
    from dermkit.models.text_padding import text_padding_id, trim_padding

    loaded = resolve_model(model)
    device = _device_of(loaded.model)
    pad = text_padding_id(getattr(loaded.model, "text", None))
    text_encoder = cast(Encoder, loaded.model.encode_text)  # open_clip models are untyped modules
    encode = text_encoder if pad is None else trim_padding(text_encoder, pad)
    rows: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            tokens = loaded.tokenizer(list(texts[start:start + batch_size])).to(device)
            rows.append(encode(tokens).float().cpu().numpy())
    if not rows:
        return np.zeros((0, loaded.embed_dim), dtype=np.float32)
    return l2_normalize(np.concatenate(rows)).astype(np.float32)


def encode_prompt_sets(model: str | LoadedModel, prompt_sets: Sequence[Sequence[str]]) -> np.ndarray:
    """One unit vector per set of prompts: the renormalised mean of its prompts' unit embeddings.

    This is prompt ensembling (a class described by many templates and synonyms): normalising
    before averaging keeps one long or unusual prompt from dominating its set.
    """
    sizes = [len(prompts) for prompts in prompt_sets]
    if any(size == 0 for size in sizes):
        raise InputError("every prompt set needs at least one prompt")
    embeddings = encode_texts(model, [prompt for prompts in prompt_sets for prompt in prompts])
    return mean_direction(embeddings, np.repeat(np.arange(len(sizes)), sizes), len(sizes))


def image_index(frame: pd.DataFrame, images: ImageMode) -> pd.DataFrame:
    """One row per image to embed: ``case_id``, ``image_index`` (within the case), ``path``."""
    if images not in ("first", "all"):
        raise InputError(f"images must be 'first' or 'all', got {images!r}", field="images")
    rows: list[tuple[str, int, str]] = []
    for case_id, paths in zip(frame["case_id"], frame["image_paths"]):
        chosen = list(paths)[:1] if images == "first" else list(paths)
        rows.extend((case_id, position, str(path)) for position, path in enumerate(chosen))
    return pd.DataFrame(rows, columns=["case_id", "image_index", "path"])


def table_fingerprint(index: pd.DataFrame) -> str:
    """Hash of what determines the features: case ids, image paths and each file's size and mtime.

    Relabelling or re-splitting a table keeps its features; replacing an image file does not.
    """
    digest = hashlib.sha256()
    for case_id, position, path in index.itertuples(index=False):
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise InputError(f"cannot read image: {exc.strerror}", file=path) from exc
        digest.update(f"{case_id}\0{position}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """bf16 autocast for ``"bf16"``, nothing for ``"fp32"``."""
    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


class _ImageDataset:
    """Decodes and preprocesses in DataLoader workers, so the model never waits on JPEG decoding."""

    def __init__(self, paths: Sequence[str], transform: Callable[[Any], torch.Tensor]) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int) -> torch.Tensor:
        return self.transform(open_image(self.paths[item]))


def _single_thread_worker(_: int) -> None:
    """Each worker decodes one image at a time; intra-op threads would only fight the model."""
    import torch

    torch.set_num_threads(1)


def default_num_workers() -> int:
    """Leave one core to the model; none at all on a single-core machine."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _embed_images(
    loaded: LoadedModel,
    encode: Callable[[torch.Tensor], torch.Tensor],
    paths: Sequence[str],
    batch_size: int,
    num_workers: int | None,
    precision: str,
    progress: bool,
) -> tuple[np.ndarray, str]:
    """Run ``encode`` (the image encoder or its trunk) over ``paths``; return the raw fp32 outputs and
    the precision used."""
    import torch
    from tqdm.auto import tqdm

    model = loaded.model.eval().to(memory_format=torch.channels_last)
    device = _device_of(model)
    workers = default_num_workers() if num_workers is None else num_workers
    loader = torch.utils.data.DataLoader(
        cast("torch.utils.data.Dataset[torch.Tensor]", _ImageDataset(paths, loaded.preprocess_eval)),
        batch_size=batch_size,
        num_workers=workers,
        worker_init_fn=_single_thread_worker if workers else None,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )
    chunks: list[np.ndarray] = []
    with torch.inference_mode(), tqdm(total=len(paths), unit="img", disable=not progress, desc="embed") as bar:
        for batch in loader:
            batch = batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            if not chunks and precision == "bf16":
                precision = _check_bf16(encode, batch)
            with _autocast(precision, device):
                chunks.append(encode(batch).float().cpu().numpy())
            bar.update(len(batch))
    if not chunks:
        raise InputError("the table has no images to embed")
    return np.concatenate(chunks).astype(np.float32), precision


def _check_bf16(encode: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> str:
    """Try bf16 on a slice of the first batch; fall back to fp32 (warning) if its embeddings drift."""
    sample = batch[:BF16_CHECK_IMAGES]
    reference = l2_normalize(encode(sample).float().cpu().numpy())
    with _autocast("bf16", batch.device):
        trial = l2_normalize(encode(sample).float().cpu().numpy())
    agreement = float(np.min(np.sum(reference * trial, axis=1)))
    if agreement >= BF16_MIN_COSINE:
        return "bf16"
    warnings.warn(
        f"bf16 embeddings disagree with fp32 (min cosine {agreement:.4f} < {BF16_MIN_COSINE}); using fp32",
        RuntimeWarning,
        stacklevel=3,
    )
    return "fp32"


def _device_of(module: torch.nn.Module) -> torch.device:
    import torch

    parameter = next(module.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


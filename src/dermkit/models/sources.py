"""Loaders for models that are not registered families: open_clip architectures, directories, the Hub.

All three end in :meth:`LoadedModel.assemble`, so a model behaves the same whatever its source, and
all build open_clip's ``CustomTextCLIP`` (open_clip converts ``CLIP`` checkpoints on load), so every
model has a ``.text`` tower to lock, cache or fine-tune.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from dermkit.core.errors import DermkitError, InputError
from dermkit.core.optional import require
from dermkit.models.card import ModelCard
from dermkit.models.layout import CARD_FILE, CONFIG_FILE, DERMKIT_KEY, WEIGHT_FILES
from dermkit.models.loaded import LoadedModel


def _open_clip() -> Any:
    return require("open_clip", "torch", "vision-language models")


def load_open_clip_arch(arch: str, tag: str | None, name: str, device: str = "cpu") -> LoadedModel:
    """An open_clip built-in architecture, random-init or with the weights of pretrained ``tag``."""
    open_clip = _open_clip()
    known = open_clip.list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join('open_clip:' + c for c in close)}?" if close else ""
        raise InputError(f"open_clip has no architecture {arch!r}{hint}")
    try:
        # pretrained_text=False: without a tag the model is random-init and must not download anything.
        model = open_clip.create_model(arch, pretrained=tag, pretrained_text=False, device=device,
                                       force_custom_text=True)
    except RuntimeError as exc:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise DermkitError(
            f"could not load pretrained {tag!r} for {arch} (known tags: {', '.join(tags) or 'none'}; "
            f"weights download from the Hub unless cached): {exc}"
        ) from exc
    tokenizer = open_clip.get_tokenizer(arch)
    model_cfg = _custom_text(open_clip.get_model_config(arch))
    return LoadedModel.assemble(model, model_cfg, tokenizer, name=name, device=device)


def load_dir(path: Path, name: str, device: str = "cpu") -> LoadedModel:
    """An open_clip-layout directory (config + weights); dermkit exports also bring text tower and card.

    A dermkit export names its own directory as the text tower's source, so it is re-pointed here to
    wherever the directory now lives (moved, copied, or a Hub cache snapshot).
    """
    open_clip = _open_clip()
    config = _read_config(path)
    if not any((path / weights).is_file() for weights in WEIGHT_FILES):
        raise InputError(f"model directory has no weights file (expected one of {', '.join(WEIGHT_FILES)})",
                         file=path)
    model_cfg = config["model_cfg"]
    text_cfg = model_cfg["text_cfg"]
    is_export = DERMKIT_KEY in config
    overrides = {}
    repointed = [key for key in ("hf_model_name", "hf_tokenizer_name") if key in text_cfg]
    if is_export and repointed:
        text_cfg.update(dict.fromkeys(repointed, str(path.resolve())))
        overrides["text_cfg"] = text_cfg
    model = open_clip.create_model(f"local-dir:{path}", device=device, force_custom_text=True, **overrides)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
    card = ModelCard.read(path / CARD_FILE) if is_export and (path / CARD_FILE).is_file() else None
    return LoadedModel.assemble(model, _custom_text(model_cfg), tokenizer, name=name, device=device, card=card)


def load_hf_hub(repo: str, name: str, device: str = "cpu") -> LoadedModel:
    """An open_clip repository on the Hugging Face Hub (or already in its cache, e.g. offline).

    A dermkit export is fetched file by file into the cache and loaded as a directory; any other
    open_clip repository goes through open_clip's own ``hf-hub:`` loading.
    """
    hub = require("huggingface_hub", "torch", "loading models from the Hugging Face Hub")
    config_path = Path(_hub_file(hub, repo, CONFIG_FILE))
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if DERMKIT_KEY in config:
        for filename in config[DERMKIT_KEY]["files"]:
            _hub_file(hub, repo, filename)
        return load_dir(config_path.parent, name=name, device=device)
    open_clip = _open_clip()
    model = open_clip.create_model(f"hf-hub:{repo}", device=device, force_custom_text=True)
    tokenizer = open_clip.get_tokenizer(f"hf-hub:{repo}")
    model_cfg = _custom_text(config.get("model_cfg", config))
    return LoadedModel.assemble(model, model_cfg, tokenizer, name=name, device=device)


def _custom_text(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as built here: an export of it must rebuild ``CustomTextCLIP`` in stock open_clip too."""
    return {**model_cfg, "custom_text": True}


def _hub_file(hub: Any, repo: str, filename: str) -> str:
    """Download (or find in the cache) one file of a Hub repo, with an error that says what to check."""
    errors = (hub.errors.EntryNotFoundError, hub.errors.HfHubHTTPError, hub.errors.HFValidationError, OSError)
    try:
        return hub.hf_hub_download(repo, filename)
    except errors as exc:
        raise InputError(
            f"could not get {filename} of hf-hub:{repo} (no such repo or file, or offline and not in the "
            f"Hugging Face cache {hub.constants.HF_HUB_CACHE}): {exc}"
        ) from exc


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise InputError("no such model directory (for a Hugging Face repo write hf-hub:ORG/REPO)", file=path)
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise InputError(f"not an open_clip model directory: {CONFIG_FILE} is missing", file=path)
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc}", file=config_file) from exc
    if "model_cfg" not in config:
        raise InputError("no 'model_cfg' section", file=config_file)
    return config

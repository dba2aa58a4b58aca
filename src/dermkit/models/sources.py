"""Loaders for models that are not registered families: open_clip architectures, directories, the Hub.

All three end in :meth:`LoadedModel.assemble`, so a model behaves the same whatever its source, and
all build open_clip's ``CustomTextCLIP`` (open_clip converts ``CLIP`` checkpoints on load), so every
model has a ``.text`` tower to lock, cache or fine-tune.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import importlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dermkit.core.errors import DermkitError, InputError
from dermkit.core.optional import require
from dermkit.models.card import ModelCard
from dermkit.models.factory import Source, register_source
from dermkit.models.layout import CARD_FILE, CONFIG_FILE, DERMKIT_KEY, WEIGHT_FILES
from dermkit.models.loaded import LoadedModel
from dermkit.models.names import ModelName, model_name

if TYPE_CHECKING:
    import torch


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

    A dermkit export carries its Hugging Face text tower's config and tokenizer files, so the tower
    is built from the directory itself (wherever it now lives: moved, copied, or a Hub cache
    snapshot) and nothing is fetched; the model keeps the config's own names for its next export.
    """
    open_clip = _open_clip()
    config = _read_config(path)
    weights = next((path / file for file in WEIGHT_FILES if (path / file).is_file()), None)
    if weights is None:
        raise InputError(f"model directory has no weights file (expected one of {', '.join(WEIGHT_FILES)})",
                         file=path)
    model_cfg = config["model_cfg"]
    is_export = DERMKIT_KEY in config
    text_cfg = model_cfg.get("text_cfg", {})
    local = {key: str(path.resolve()) for key in ("hf_model_name", "hf_tokenizer_name") if key in text_cfg}
    overrides = {"text_cfg": {**text_cfg, **local}} if is_export and local else {}
    _check_buildable(open_clip, model_cfg, name)
    model = _build(open_clip, model_name("local-dir", str(path)).text, model_cfg, name, device, **overrides)
    _load_weights(open_clip, model, weights, name)
    tokenizer = _tokenizer(open_clip, model_name("local-dir", str(path)).text, name)
    card = ModelCard.read(path / CARD_FILE) if is_export and (path / CARD_FILE).is_file() else None
    return LoadedModel.assemble(model, _custom_text(model_cfg), tokenizer, name=name, device=device, card=card)


def load_hf_hub(repo: str, name: str, device: str = "cpu") -> LoadedModel:
    """An open_clip repository on the Hugging Face Hub (or already in its cache, e.g. offline).

    A dermkit export is fetched file by file into the cache and loaded as a directory; any other
    open_clip repository is built by open_clip's own ``hf-hub:`` loading and its weights checked
    key by key, so a repo this open_clip cannot build or whose weights do not fit is an
    :class:`InputError` naming the repo and what is missing.
    """
    hub = _hub()
    config_path = _hub_file(hub, repo, CONFIG_FILE)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: invalid JSON in {CONFIG_FILE}: {exc}", file=config_path) from exc
    if DERMKIT_KEY in config:
        for filename in config[DERMKIT_KEY]["files"]:
            _hub_file(hub, repo, filename)
        return load_dir(config_path.parent, name=name, device=device)
    if "model_cfg" not in config:
        raise InputError(f"{name}: {CONFIG_FILE} has no 'model_cfg' section (not an open_clip repo?)",
                         file=config_path)
    open_clip = _open_clip()
    model_cfg = config["model_cfg"]
    _check_buildable(open_clip, model_cfg, name)
    weights = _hub_weights(hub, repo)  # before the build, so open_clip's own look finds them cached
    model = _build(open_clip, model_name("hf-hub", repo).text, model_cfg, name, device)
    _load_weights(open_clip, model, weights, name)
    tokenizer = _tokenizer(open_clip, model_name("hf-hub", repo).text, name)
    return LoadedModel.assemble(model, _custom_text(model_cfg), tokenizer, name=name, device=device)


def _custom_text(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as built here: an export of it must rebuild ``CustomTextCLIP`` in stock open_clip too."""
    return {**copy.deepcopy(model_cfg), "custom_text": True}


# Config keys that only a fork of open_clip understands, and the fork that does.
_FORK_KEYS = {
    "vision_cfg.pretrain_path": "the Derm1M fork of open_clip (https://github.com/SiyuanYan1/Derm1M), whose "
                                "PanDerm vision tower it builds (DermLIP_PanDerm-* repos)",
}


def _check_buildable(open_clip: Any, model_cfg: dict[str, Any], name: str) -> None:
    """Refuse, before anything is downloaded, a config this open_clip cannot build, saying which build
    of open_clip it needs (the keys it does not know)."""
    version = f"open_clip {open_clip.__version__}"
    missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in model_cfg]
    if missing:
        raise InputError(f"{name}: model_cfg has no {', '.join(missing)}, so {version} cannot build it")
    unknown = _unknown_keys(model_cfg)
    if unknown:
        forks = sorted({_FORK_KEYS[key] for key in unknown if key in _FORK_KEYS})
        needs = f"it needs {' and '.join(forks)}" if forks else "it was written for another build of open_clip"
        raise InputError(f"{name}: {version} cannot build this model: its config has {', '.join(unknown)}, "
                         f"which {version} does not know; {needs}")


def _build(open_clip: Any, source: str, model_cfg: dict[str, Any], name: str, device: str,
           **overrides: Any) -> torch.nn.Module:
    """open_clip's model for ``source`` (checked by :func:`_check_buildable`) with random weights:
    they are loaded and checked after. A failure is an :class:`InputError` saying which part failed."""
    version = f"open_clip {open_clip.__version__}"
    try:
        # load_weights/pretrained_text off: nothing but the config is fetched here, and no tower
        # gets pretrained weights that the checkpoint would overwrite anyway.
        with _no_random_init_warning():
            return open_clip.create_model(source, load_weights=False, pretrained_text=False, device=device,
                                          force_custom_text=True, **overrides)
    except OSError as exc:
        tower = model_cfg["text_cfg"].get("hf_model_name")
        what = f"the config of its Hugging Face text tower {tower}" if tower else "a file it needs"
        raise InputError(f"{name}: {version} could not get {what} (not in the Hugging Face cache, or "
                         f"offline): {_one_line(exc)}") from exc
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise InputError(f"{name}: {version} cannot build this model config "
                         f"({type(exc).__name__}: {_one_line(exc)})") from exc


class _RandomInitFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _no_random_init_warning() -> Iterator[None]:
    """Silence open_clip's warning that the model is "initialized randomly": its weights load next."""
    root, drop = logging.getLogger(), _RandomInitFilter()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _unknown_keys(model_cfg: dict[str, Any]) -> list[str]:
    """``section.key`` for every tower config key that this open_clip's config classes lack."""
    from dataclasses import fields

    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    known = {"vision_cfg": CLIPVisionCfg, "text_cfg": CLIPTextCfg}
    return [f"{section}.{key}" for section, cfg_class in known.items()
            for key in model_cfg[section] if key not in {field.name for field in fields(cfg_class)}]


def _load_weights(open_clip: Any, model: torch.nn.Module, weights: Path, name: str) -> None:
    """Load ``weights`` through open_clip's converter, refusing any key that does not fit the model."""
    from safetensors import SafetensorError

    try:
        result = open_clip.load_checkpoint(model, str(weights), strict=False)
    except (RuntimeError, ValueError, OSError, SafetensorError) as exc:
        raise InputError(f"{name}: the weights do not fit the model config: {_one_line(exc)}",
                         file=weights) from exc
    if result.missing_keys or result.unexpected_keys:
        raise InputError(f"{name}: the weights do not fit the model config: "
                         f"{_keys('missing', result.missing_keys)}, {_keys('unexpected', result.unexpected_keys)}",
                         file=weights)


def _keys(kind: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
    return f"{len(keys)} {kind} keys" + (f" ({shown})" if keys else "")


def _tokenizer(open_clip: Any, source: str, name: str) -> Any:
    try:
        return open_clip.get_tokenizer(source)
    except OSError as exc:
        raise InputError(f"{name}: could not get its tokenizer (not in the Hugging Face cache, or offline): "
                         f"{_one_line(exc)}") from exc


def _one_line(exc: BaseException, limit: int = 400) -> str:
    """A library's error message on one line (the CLI prints one line), cut at ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hub() -> Any:
    """huggingface_hub with the submodules used here: the package exposes its functions lazily but
    not ``errors`` or ``constants``, which exist as attributes only once imported."""
    hub = require("huggingface_hub", "torch", "loading models from the Hugging Face Hub")
    importlib.import_module("huggingface_hub.errors")
    importlib.import_module("huggingface_hub.constants")
    return hub


def _hub_weights(hub: Any, repo: str) -> Path:
    """The repo's weights file, under the first of open_clip's names that it has."""
    for filename in WEIGHT_FILES:
        try:
            return _hub_file(hub, repo, filename)
        except InputError as exc:
            if not isinstance(exc.__cause__, hub.errors.EntryNotFoundError):
                raise
    raise InputError(f"hf-hub:{repo} has no weights file (expected one of {', '.join(WEIGHT_FILES)}; "
                     f"offline, only the Hugging Face cache {hub.constants.HF_HUB_CACHE} is searched)")


def _hub_file(hub: Any, repo: str, filename: str) -> Path:
    """Download (or find in the cache) one file of a Hub repo, with an error that says what to check."""
    errors = hub.errors
    try:
        return Path(hub.hf_hub_download(repo, filename))
    except errors.HFValidationError as exc:
        raise InputError(f"hf-hub:{repo} is not a Hugging Face repo id (write hf-hub:ORG/REPO)") from exc
    except errors.LocalEntryNotFoundError as exc:
        raise InputError(f"hf-hub:{repo}: {filename} is not in the Hugging Face cache "
                         f"{hub.constants.HF_HUB_CACHE} and the Hub cannot be reached (HF_HUB_OFFLINE set, "
                         "or no network)") from exc
    except errors.RepositoryNotFoundError as exc:
        raise InputError(f"hf-hub:{repo}: no such repository on the Hub (or it is private or gated: "
                         "log in with `hf auth login`)") from exc
    except errors.EntryNotFoundError as exc:
        raise InputError(f"hf-hub:{repo} has no file {filename}") from exc
    except (errors.HfHubHTTPError, OSError) as exc:
        raise InputError(f"could not get {filename} of hf-hub:{repo}: {_one_line(exc)}") from exc


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


def _open_clip_model(name: ModelName, device: str) -> LoadedModel:
    arch, _, tag = name.reference.partition(":")
    return load_open_clip_arch(arch, tag or None, name=name.text, device=device)


register_source("open_clip", Source("vision-language", model=_open_clip_model))
register_source("hf-hub", Source("vision-language",
                                 model=lambda name, device: load_hf_hub(name.reference, name=name.text, device=device)))
def _check_dir(name: ModelName) -> None:
    if not Path(name.reference).is_dir():
        raise InputError(f"model directory {name.reference} does not exist")


register_source("local-dir", Source("vision-language", check=_check_dir,
                                    model=lambda name, device: load_dir(Path(name.reference), name=name.text,
                                                                        device=device)))

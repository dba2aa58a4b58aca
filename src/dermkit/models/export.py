"""Export a model in open_clip's directory layout, self-contained and with a model card.

The export names nothing outside itself but Hub ids, so it can be copied or moved anywhere:

- dermkit loads it with no network: a Hugging Face text tower's config and tokenizer files are
  saved in, and dermkit builds the tower from them;
- stock ``open_clip.create_model_and_transforms("local-dir:DIR")`` loads it too. Its tokenizer
  reads the saved files (open_clip's ``local-dir:`` tokenizer always reads the directory), but it
  builds a Hugging Face text tower from ``hf_model_name`` alone, resolved as a Hub id or a path
  from the current directory, never from the export; so that entry is the tower's Hub id (its
  ``config.json`` comes from the Hub or the Hugging Face cache; weights always come from the
  export), never a local path, which would break as soon as the export moved.

Every file is written with the permissions ``open()`` gives (0644 under the usual umask), and
the whole directory atomically, so a killed export never leaves a half-written directory.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dermkit import __version__
from dermkit.core.atomic import atomic_dir
from dermkit.core.errors import InputError
from dermkit.core.optional import require
from dermkit.models.card import ModelCard
from dermkit.models.layout import CARD_FILE, CONFIG_FILE, DERMKIT_KEY, WEIGHTS_FILE
from dermkit.models.loaded import LoadedModel, model_cfg_of
from dermkit.models.weights import save_weights

if TYPE_CHECKING:
    import torch
    from open_clip.hf_model import HFTextEncoder


def export_model(model_or_loaded: LoadedModel | torch.nn.Module, out_dir: str | Path, card: ModelCard,
                 overwrite: bool = True) -> Path:
    """Write ``out_dir`` (config, safetensors weights, text tower files, README.md card); return it.

    A bare module (e.g. unwrapped from DistributedDataParallel after training) works too, as long
    as it was built by :func:`dermkit.models.load_model`.
    """
    open_clip = require("open_clip", "torch", "vision-language models")

    loaded: LoadedModel | None
    if isinstance(model_or_loaded, LoadedModel):
        loaded, wrapped = model_or_loaded, model_or_loaded.model
    else:
        loaded, wrapped = None, model_or_loaded
    model: torch.nn.Module = getattr(wrapped, "module", wrapped)  # DistributedDataParallel wraps the real model
    model_cfg = model_cfg_of(model)
    preprocess_cfg = open_clip.get_model_preprocess_cfg(model)
    out = Path(out_dir).resolve()
    if out.exists() and not overwrite:
        raise InputError("export directory exists (pass overwrite=True to replace it)", file=out)

    text_cfg = model_cfg["text_cfg"]
    _check_portable(text_cfg)

    with atomic_dir(out) as tmp:
        if "hf_model_name" in text_cfg:
            cast("HFTextEncoder", model.text).config.save_pretrained(tmp)  # built from hf_model_name
            text_cfg["hf_model_pretrained"] = False
        if "hf_tokenizer_name" in text_cfg:
            _hf_tokenizer(loaded, text_cfg).save_pretrained(tmp)
        save_weights(model, tmp / WEIGHTS_FILE)
        full_card = dataclasses.replace(card, inputs=_inputs(preprocess_cfg, text_cfg),
                                        created=datetime.date.today().isoformat(), dermkit_version=__version__)
        (tmp / CARD_FILE).write_text(full_card.to_markdown(), encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir()) + [CONFIG_FILE]
        config = {
            "model_cfg": model_cfg,
            "preprocess_cfg": preprocess_cfg,
            DERMKIT_KEY: {"version": __version__, "model_id": card.model_id, "files": files},
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=list), encoding="utf-8")
    return out


def _check_portable(text_cfg: dict[str, Any]) -> None:
    """Refuse a text tower named by a local path: stock open_clip would find it only on this machine."""
    for key in ("hf_model_name", "hf_tokenizer_name"):
        value = text_cfg.get(key)
        if value and (Path(value).is_absolute() or Path(value).exists()):
            raise InputError(
                f"the text tower is named by the local path {value}, so the export would load in stock "
                "open_clip only where that path exists; name it by its Hugging Face Hub id instead "
                "(dermkit still builds it from the files saved in the export)", field=f"text_cfg.{key}")


def _hf_tokenizer(loaded: LoadedModel | None, text_cfg: dict[str, Any]) -> Any:
    """The model's Hugging Face tokenizer: the loaded one, else rebuilt from the config's name."""
    from open_clip.tokenizer import HFTokenizer

    if loaded is not None and isinstance(loaded.tokenizer, HFTokenizer):
        return loaded.tokenizer
    return HFTokenizer(text_cfg["hf_tokenizer_name"], context_length=text_cfg.get("context_length"))


def _inputs(preprocess_cfg: dict[str, Any], text_cfg: dict[str, Any]) -> dict[str, Any]:
    """What the card says a caller must feed the model, read from the model's own configs."""
    return {
        "image_size": preprocess_cfg["size"],
        "image_mean": list(preprocess_cfg["mean"]),
        "image_std": list(preprocess_cfg["std"]),
        "interpolation": preprocess_cfg["interpolation"],
        "resize_mode": preprocess_cfg["resize_mode"],
        "context_length": text_cfg.get("context_length"),
    }

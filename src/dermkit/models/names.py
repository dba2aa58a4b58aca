"""The one reader of model names: ``PREFIX:REFERENCE``, a registered family, a path or a bare timm name.

Every stage (train, evaluate, predict, serve) parses a model string here, so a name means the same
network everywhere. Like timm's ``parse_model_name``, a prefix is a scheme of two or more
characters (so ``C:\\`` stays a path) and everything after it is an opaque reference.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermkit.core.errors import InputError

ModelBuilder = Callable[..., Any]  # a LoadedModel, or e.g. a DdxModel for ``ddx``

FAMILIES: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a model family builder under ``name`` (timm style), so ``load_model(name)`` finds it.

    A builder takes ``device`` plus family-specific keyword arguments and returns its model
    (a vision-language family a :class:`LoadedModel`, ``ddx`` a ``DdxModel``); the module
    defining it only has to be imported by ``families``.
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in FAMILIES:
            raise ValueError(f"model family {name!r} is registered twice")
        FAMILIES[name] = builder
        return builder

    return decorate


def list_models() -> list[str]:
    """The registered family names, sorted."""
    return sorted(FAMILIES)


# prefix -> what its reference names
PREFIXES = {
    "open_clip": "ARCH[:TAG]",
    "hf-hub": "ORG/REPO",
    "local-dir": "PATH",
    "timm": "ARCH",
    "clip": "MODEL",
    "ddx": "DIR",
    "embeddings": "PATH.npy",
}
# sources whose result is an image trunk or precomputed features: no text tower
IMAGE_ONLY = frozenset({"timm", "embeddings"})


class BareTimmNameWarning(FutureWarning):
    """A bare timm architecture (``resnet50``) where ``timm:resnet50`` is meant; shown to CLI users."""


@dataclass(frozen=True)
class ModelName:
    """A parsed model name: ``source`` (a prefix without its colon, ``family`` or, for plain paths,
    ``local-dir``), the ``reference`` after the prefix, and the ``text`` as written."""

    source: str
    reference: str
    text: str

    @property
    def image_only(self) -> bool:
        """No text tower: a timm backbone or precomputed embeddings."""
        return self.source in IMAGE_ONLY


def accepted_forms() -> str:
    """Every accepted form, for error messages and help."""

    prefixed = ", ".join(f"{prefix}:{what}" for prefix, what in PREFIXES.items())
    return f"a family ({', '.join(list_models())}), {prefixed} or a directory path"


def parse_model_name(name: str) -> ModelName:
    """Parse ``name``; an unknown prefix or a name that is none of the accepted forms is an InputError."""

    if not isinstance(name, str) or not name.strip():
        raise InputError(f"a model name must be a non-empty string, got {name!r}; use {accepted_forms()}")
    if name in list_models():
        return ModelName("family", name, name)
    prefix, colon, reference = name.partition(":")
    if colon and len(prefix) >= 2 and prefix.replace("_", "").replace("-", "").isalnum():
        if prefix not in PREFIXES:
            raise InputError(f"unknown model prefix {prefix + ':'!r} in {name!r}; use {accepted_forms()}")
        if not reference:
            raise InputError(f"model name {name!r} has nothing after {prefix + ':'!r}; "
                             f"write {prefix}:{PREFIXES[prefix]}")
        return ModelName(prefix, reference, name)
    if Path(name).exists() or "/" in name or "\\" in name or name.startswith("."):
        return ModelName("local-dir", name, name)
    if _is_timm_name(name):
        warnings.warn(f"bare backbone name {name!r} is deprecated: write 'timm:{name}'",
                      BareTimmNameWarning, stacklevel=2)
        return ModelName("timm", name, name)
    raise InputError(unknown_message(name))


def model_name(source: str, reference: str) -> ModelName:
    """The name ``source:reference`` written out, e.g. to record which file or folder was loaded."""
    if source not in PREFIXES:
        raise ValueError(f"unknown model prefix {source!r}")
    return ModelName(source, reference, f"{source}:{reference}")


def recorded_backbone(text: str) -> ModelName:
    """A trunk name as a saved ddx model records it: a timm architecture without its prefix (so
    models saved before prefixes load unchanged and without a warning), or a prefixed name."""
    prefix, colon, _ = text.partition(":")
    if colon and prefix in PREFIXES:
        return parse_model_name(text)
    return model_name("timm", text)


def unknown_message(name: str) -> str:
    """Why ``name`` names no model, with the close names it may have meant."""

    close = difflib.get_close_matches(name, list_models(), n=3, cutoff=0.5)
    if name in _open_clip_architectures():
        close.insert(0, f"open_clip:{name}")
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (f"unknown model {name!r}{hint} Known families: {', '.join(list_models())}; "
            f"or use {', '.join(f'{p}:{what}' for p, what in PREFIXES.items())} or a directory path")


def _is_timm_name(name: str) -> bool:
    try:
        import timm
    except ImportError:
        return False
    return bool(timm.is_model(name))


def _open_clip_architectures() -> list[str]:
    """open_clip's built-in architecture names, or none when open_clip is not installed."""
    try:
        import open_clip
    except ImportError:
        return []
    return open_clip.list_models()

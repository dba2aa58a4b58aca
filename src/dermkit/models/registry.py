"""One way to name a model: registered families, open_clip architectures, Hub repos and directories.

Every stage (train, evaluate, predict, serve) resolves a model string through :func:`load_model`,
so a name that works in one place works everywhere. Accepted names:

- a registered family, e.g. ``tiny-clip`` or ``dermlip-lite`` (see :func:`list_models`);
- ``open_clip:ARCH`` or ``open_clip:ARCH:TAG`` (an open_clip architecture, optionally with a
  pretrained tag; tags download weights, so they need the network or a warm cache);
- ``hf-hub:ORG/REPO`` (an open_clip-layout repository on the Hugging Face Hub or in its cache);
- ``local-dir:PATH`` or a plain ``PATH`` (an open_clip-layout directory, e.g. a dermkit export).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dermkit.core.errors import InputError

if TYPE_CHECKING:
    from dermkit.models.loaded import LoadedModel

ModelBuilder = Callable[..., "LoadedModel"]

OPEN_CLIP_PREFIX = "open_clip:"
HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"

_FAMILIES: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a model family builder under ``name`` (timm style), so ``load_model(name)`` finds it.

    A builder takes ``device`` plus family-specific keyword arguments and returns a
    :class:`LoadedModel`; the module defining it only has to be imported by ``families``.
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in _FAMILIES:
            raise ValueError(f"model family {name!r} is registered twice")
        _FAMILIES[name] = builder
        return builder

    return decorate


def list_models() -> list[str]:
    """The registered family names, sorted."""
    return sorted(_FAMILIES)


def load_model(name: str, device: str = "cpu", **kwargs: Any) -> LoadedModel:
    """Resolve any accepted model name (see the module docstring) to a ready :class:`LoadedModel`.

    ``kwargs`` go to the family builder (e.g. ``seed`` for ``tiny-clip``); other sources take none.
    """
    from dermkit.models import sources

    if name in _FAMILIES:
        return _FAMILIES[name](device=device, **kwargs)
    if kwargs:
        raise InputError(f"options {sorted(kwargs)} only apply to registered families, not {name!r}")
    if name.startswith(OPEN_CLIP_PREFIX):
        arch, _, tag = name[len(OPEN_CLIP_PREFIX):].partition(":")
        return sources.load_open_clip_arch(arch, tag or None, name=name, device=device)
    if name.startswith(HF_HUB_PREFIX):
        return sources.load_hf_hub(name[len(HF_HUB_PREFIX):], name=name, device=device)
    if name.startswith(LOCAL_DIR_PREFIX):
        return sources.load_dir(Path(name[len(LOCAL_DIR_PREFIX):]), name=name, device=device)
    if _looks_like_path(name):
        return sources.load_dir(Path(name), name=name, device=device)
    raise InputError(_unknown_message(name))


def _looks_like_path(name: str) -> bool:
    """Plain paths are directories that exist or strings that are unmistakably paths."""
    return Path(name).exists() or "/" in name or "\\" in name or name.startswith(".")


def _unknown_message(name: str) -> str:
    close = difflib.get_close_matches(name, list_models(), n=3, cutoff=0.5)
    if name in _open_clip_architectures():
        close.insert(0, OPEN_CLIP_PREFIX + name)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown model {name!r}{hint} Known families: {', '.join(list_models())}; "
        f"or use {OPEN_CLIP_PREFIX}ARCH[:TAG], {HF_HUB_PREFIX}ORG/REPO, {LOCAL_DIR_PREFIX}PATH or a directory path"
    )


def _open_clip_architectures() -> list[str]:
    """open_clip's built-in architecture names, or none when open_clip is not installed."""
    try:
        import open_clip
    except ImportError:
        return []
    return open_clip.list_models()

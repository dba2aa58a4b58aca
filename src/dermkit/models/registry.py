"""One way to name a model: registered families, open_clip architectures, Hub repos and directories.

Every stage (train, evaluate, predict, serve) resolves a model string through :func:`load_model`
(names parsed by :mod:`dermkit.models.names`), so a name that works in one place works everywhere.
Accepted names:

- a registered family, e.g. ``tiny-clip`` or ``dermlip-lite`` (see :func:`list_models`);
- ``open_clip:ARCH`` or ``open_clip:ARCH:TAG`` (an open_clip architecture, optionally with a
  pretrained tag; tags download weights, so they need the network or a warm cache);
- ``hf-hub:ORG/REPO`` (an open_clip-layout repository on the Hugging Face Hub or in its cache);
- ``local-dir:PATH`` or a plain ``PATH`` (an open_clip-layout directory, e.g. a dermkit export).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dermkit.core.errors import InputError
from dermkit.models.names import FAMILIES, list_models, register_model

__all__ = ["list_models", "load_model", "register_model"]

def load_model(name: str, device: str = "cpu", **kwargs: Any) -> Any:
    """Resolve a family, ``open_clip:``, ``hf-hub:``, ``local-dir:`` or path name (parsed by
    :func:`dermkit.models.names.parse_model_name`) to its model: a :class:`LoadedModel` for the
    vision-language sources, whatever a family's builder returns (a ``DdxModel`` for ``ddx``).

    ``kwargs`` go to the family builder (e.g. ``seed`` for ``tiny-clip``); other sources take none.
    """
    from dermkit.models import sources
    from dermkit.models.names import parse_model_name, unknown_message

    parsed = parse_model_name(name)
    if parsed.source == "family":
        return FAMILIES[name](device=device, **kwargs)
    if kwargs:
        raise InputError(f"options {sorted(kwargs)} only apply to registered families, not {name!r}")
    if parsed.source == "open_clip":
        arch, _, tag = parsed.reference.partition(":")
        return sources.load_open_clip_arch(arch, tag or None, name=name, device=device)
    if parsed.source == "hf-hub":
        return sources.load_hf_hub(parsed.reference, name=name, device=device)
    if parsed.source == "local-dir":
        return sources.load_dir(Path(parsed.reference), name=name, device=device)
    raise InputError(unknown_message(name))

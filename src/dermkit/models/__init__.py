"""Models: one naming scheme and one factory, built-in families, open_clip-layout export with cards.

>>> loaded = load_model("tiny-clip")          # or "dermlip-lite", "hf-hub:ORG/REPO", a directory
>>> export_model(loaded, "out/my-model", ModelCard(model_id="my-model"))

Importing this package registers every model source and family with :mod:`dermkit.models.factory`.
"""

from dermkit.models import backbones as _backbones  # noqa: F401  (registers timm: and clip:)
from dermkit.models import embeddings as _embeddings  # noqa: F401  (registers embeddings:)
from dermkit.models import families as _families  # noqa: F401  (registers the families and ddx:)
from dermkit.models import sources as _sources  # noqa: F401  (registers open_clip:, hf-hub:, local-dir:)
from dermkit.models.card import ModelCard
from dermkit.models.export import export_model
from dermkit.models.factory import build_backbone, load_model
from dermkit.models.loaded import LoadedModel
from dermkit.models.names import list_models, register_model

__all__ = ["LoadedModel", "ModelCard", "build_backbone", "export_model", "list_models", "load_model",
           "register_model"]

"""Vision-language models: one naming scheme, built-in families, open_clip-layout export with cards.

>>> loaded = load_model("tiny-clip")          # or "dermlip-lite", "hf-hub:ORG/REPO", a directory
>>> export_model(loaded, "out/my-model", ModelCard(model_id="my-model"))
"""

from dermkit.models import families as _families  # noqa: F401  (registers the built-in families)
from dermkit.models.card import ModelCard
from dermkit.models.export import export_model
from dermkit.models.loaded import LoadedModel
from dermkit.models.registry import list_models, load_model, register_model

__all__ = ["LoadedModel", "ModelCard", "export_model", "list_models", "load_model", "register_model"]

"""Built-in model families; importing this package registers each one with the registry."""

from dermkit.models.families import dermlip_lite, tiny_clip

__all__ = ["dermlip_lite", "tiny_clip"]

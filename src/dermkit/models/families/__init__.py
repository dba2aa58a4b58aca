"""Built-in model families; importing this package registers each one with the registry."""

from dermkit.models.families import ddx, dermlip_lite, tiny_clip

__all__ = ["ddx", "dermlip_lite", "tiny_clip"]

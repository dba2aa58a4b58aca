"""Helpers shared by every layer: errors that name their source, atomic writes, optional imports.

``core`` imports nothing else of dermkit, so any package may import it.
"""

from dermkit.core.atomic import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_text, recover
from dermkit.core.errors import DermkitError, InputError
from dermkit.core.optional import require

__all__ = [
    "DermkitError",
    "InputError",
    "atomic_dir",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "recover",
    "require",
]

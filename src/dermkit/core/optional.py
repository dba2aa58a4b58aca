"""Optional heavy dependencies, imported where used, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from dermkit.core.errors import DermkitError


class MissingDependencyError(DermkitError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or explain which ``pip install 'dermkit[extra]'`` brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{module} is needed{why}; install it with: pip install 'dermkit[{extra}]'"
        ) from exc

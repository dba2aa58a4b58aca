"""Importers, one module per source, each registering itself in :data:`IMPORTERS`.

Every module of this package except ``base`` is imported here, so adding a source means adding
one file.
"""

import importlib
import pkgutil

from dermkit.data.importers.base import (
    IMPORTERS,
    ImportContext,
    Importer,
    get_importer,
    register_importer,
    run_import,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["IMPORTERS", "ImportContext", "Importer", "get_importer", "register_importer", "run_import"]

"""Importers, one module per source, each registering itself in :data:`IMPORTERS`.

Every module of this package is imported here, so adding a source means adding one file.
Modules of shared code (the base class, CSV reading, value parsers, the run) register nothing;
the sources import them anyway, so importing them here too costs nothing and needs no list.
"""

import importlib
import pkgutil

from dermkit.data.importers.base import IMPORTERS, ImportContext, Importer, get_importer, register_importer
from dermkit.data.importers.pipeline import run_import

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["IMPORTERS", "ImportContext", "Importer", "get_importer", "register_importer", "run_import"]

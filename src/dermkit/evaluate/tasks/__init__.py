"""Suite task types, one module per type, each registering itself in :data:`TASKS`.

Every module of this package except ``base`` is imported here, so adding a task type means adding
one file (its fields, checks and model/dataset rules); the suite validates through the registry.
"""

import importlib
import pkgutil

from dermkit.evaluate.tasks.base import TASKS, EvalTask, register_task

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TASKS", "EvalTask", "register_task"]

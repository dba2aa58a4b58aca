"""The dermkit service: an HTTP API and a web page for differential, concepts and similar cases.

``fastapi``/``uvicorn`` are optional (``pip install 'dermkit[serve]'``), so this package imports
nothing heavy at import time; :func:`dermkit.serve.server.serve` is the entry point.
"""

from dermkit.serve.config import ServeConfig

__all__ = ["ServeConfig"]

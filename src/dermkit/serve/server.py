"""``dermkit serve``: load everything, then run the app under uvicorn on loopback by default."""

from __future__ import annotations

import logging

from dermkit.core.optional import require
from dermkit.serve.config import ServeConfig

log = logging.getLogger("dermkit.serve")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def configure_threads(threads: int | None) -> None:
    """Fix torch's intra-op threads (one model thread uses them; request threads only decode)."""
    import torch

    if threads is not None:
        torch.set_num_threads(max(1, threads))


def build_app(config: ServeConfig):
    """Load the models and index (slow, fails loudly) and return the ready FastAPI app."""
    require("fastapi", "serve", "the dermkit service")
    require("multipart", "serve", "photo uploads")
    from dermkit.serve.app import create_app
    from dermkit.serve.engine import Engine

    configure_threads(config.threads)
    return create_app(Engine.load(config))


def serve(config: ServeConfig) -> None:
    """Build the app and serve it until interrupted."""
    uvicorn = require("uvicorn", "serve", "the dermkit service")
    app = build_app(config)
    if config.host not in LOOPBACK:
        log.warning("binding %s: the service is reachable from other machines; it has no authentication",
                    config.host)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")

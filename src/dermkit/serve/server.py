"""``dermkit serve``: bind at once, load in the background, on loopback by default.

The socket is listening (and ``/healthz`` answering) within seconds of start; the model, index and
prompt bank load behind it (``/readyz``). If loading fails, the server stops and :func:`serve`
raises the loader's error, so the command still exits with the reason, only after binding.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from dermkit.core.optional import require
from dermkit.serve.config import ServeConfig

if TYPE_CHECKING:
    from dermkit.serve.engine import Engine
    from dermkit.serve.readiness import Readiness

log = logging.getLogger("dermkit.serve")


def configure_threads(threads: int | None) -> None:
    """Fix torch's intra-op threads (one model thread uses them; request threads only decode)."""
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))


def serve(config: ServeConfig) -> None:
    """Serve ``config`` until interrupted; raise the load error if the models could not be loaded."""
    require("uvicorn", "serve", "the dermkit service")
    require("fastapi", "serve", "the dermkit service")
    require("multipart", "serve", "photo uploads")
    import uvicorn  # imported by name (require() checked it) so its classes are typed

    from dermkit.serve.access import LOOPBACK, exposure_defaults
    from dermkit.serve.app import create_app
    from dermkit.serve.service import load_engine

    config = exposure_defaults(config)
    if config.host not in LOOPBACK:
        log.warning("binding %s: the service is reachable from other machines (API key: %s, rate limit: %s)",
                    config.host, "required" if config.api_key_file else "none", config.rate_limit)
    configure_threads(config.threads)
    failures: list[BaseException] = []
    listening = threading.Event()
    load = load_engine(config)

    def load_once_listening(readiness: Readiness) -> Engine:
        # importing torch in the loader would hold the GIL while the server binds: bind first
        listening.wait()
        return load(readiness)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            listening.set()

    def stop(error: BaseException) -> None:
        failures.append(error)
        server.should_exit = True

    app = create_app(config, loader=load_once_listening, on_failure=stop)
    server = Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="info",
                                   log_config=_log_config(uvicorn)))
    server.run()
    if failures:
        raise failures[0]


def _log_config(uvicorn: Any) -> dict[str, Any]:
    """uvicorn's logging, with dermkit's loading progress on the same stream."""
    import copy

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["dermkit"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config

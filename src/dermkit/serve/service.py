"""The running service: the engine (once loaded), its micro-batchers, model and decoding threads.

One :class:`Service` per app, on ``app.state.service``; routes reach it through :data:`ServiceDep`.
Loading runs in a background thread, so the server binds and ``/healthz`` answers within seconds;
until it is done, :meth:`Service.require_engine` answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from dermkit.core.errors import DermkitError
from dermkit.data.images import PixelBudget
from dermkit.serve.admission import Admission
from dermkit.serve.batcher import MicroBatcher
from dermkit.serve.config import ServeConfig
from dermkit.serve.errors import ApiError
from dermkit.serve.readiness import RETRY_AFTER_S, Readiness
from dermkit.serve.uploads import check_size, decode_upload, store_upload

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

    from dermkit.serve.differential import CaseInput
    from dermkit.serve.engine import Engine, Prediction

log = logging.getLogger("dermkit.serve")
Loader = Callable[[Readiness], "Engine"]


def load_engine(config: ServeConfig) -> Loader:
    """The default loader: :meth:`Engine.load` (imported here, so binding never waits for torch)."""
    def load(readiness: Readiness) -> Engine:
        from dermkit.serve.engine import Engine

        return Engine.load(config, readiness=readiness)
    return load


class Service:
    """The engine (once loaded) plus its batchers and model thread; one per app."""

    def __init__(self, config: ServeConfig, readiness: Readiness) -> None:
        self.config = config
        self.readiness = readiness
        self.engine: Engine | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.decoder: ThreadPoolExecutor | None = None
        self.admission = Admission(config.max_concurrent, config.queue_timeout_s)
        self.batchers: tuple[MicroBatcher[Any, Any], ...] = ()

    def attach(self, engine: Engine) -> None:
        """Start the batchers around a loaded engine; one model thread, so inference calls never overlap."""
        batch, wait = self.config.max_batch, self.config.max_wait_ms
        self.predict: MicroBatcher[CaseInput, Prediction] = MicroBatcher(
            engine.predict, units=lambda case: len(case.pixels), name="predict", max_batch=batch, max_wait_ms=wait)
        self.images: MicroBatcher[Any, np.ndarray] = MicroBatcher(engine.embed_images, name="image",
                                                                  max_batch=batch, max_wait_ms=wait)
        self.texts: MicroBatcher[str, np.ndarray] = MicroBatcher(engine.embed_texts, name="text",
                                                                 max_batch=batch, max_wait_ms=wait)
        self.batchers = (self.predict, self.images, self.texts)
        self.readiness.loading("inference")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dermkit-model")
        # Few decoding threads: decoding memory is bounded by their number, not by the clients'.
        self.decoder = ThreadPoolExecutor(max_workers=self.config.decode_threads,
                                          thread_name_prefix="dermkit-decode")
        for batcher in self.batchers:
            batcher.start(self.executor)
        self.engine = engine
        self.readiness.ready("inference", max_batch=self.config.max_batch)
        log.info("ready: %s", ", ".join(f"{part} {detail.get('seconds', 0):.1f} s"
                                         for part, detail in self.readiness.report()["parts"].items()))

    def load_in_background(self, loader: Loader, on_failure: Callable[[BaseException], None] | None) -> None:
        """Run ``loader`` in a daemon thread (a server stopped mid-load does not wait for it), then attach."""
        loop = asyncio.get_running_loop()

        def work() -> None:
            try:
                engine = loader(self.readiness)
            except Exception as error:
                log.error("loading failed: %s", error, exc_info=not isinstance(error, DermkitError))
                self.readiness.failed(error)
                if on_failure is not None:
                    with contextlib.suppress(RuntimeError):  # the loop is already closed
                        loop.call_soon_threadsafe(on_failure, error)
                return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.attach, engine)

        threading.Thread(target=work, name="dermkit-load", daemon=True).start()

    async def stop(self) -> None:
        for batcher in self.batchers:
            await batcher.stop()
        for executor in (self.executor, self.decoder):
            if executor is not None:
                executor.shutdown(wait=False)

    @property
    def ready(self) -> bool:
        return self.engine is not None and all(batcher.running for batcher in self.batchers)

    def require_engine(self) -> Engine:
        """The loaded engine, or 503 with ``Retry-After`` naming what is still loading."""
        if self.engine is None or not self.ready:
            if self.readiness.error is not None:
                raise ApiError(503, "not_ready", f"the service failed to load and is stopping: {self.readiness.error}")
            waiting = self.readiness.still_loading()
            raise ApiError(503, "not_ready", "the service is not ready: still loading " + ", ".join(waiting)
                           + "; retry shortly", headers={"Retry-After": str(RETRY_AFTER_S)})
        return self.engine

    async def submit(self, batcher: MicroBatcher[Any, Any], item: Any) -> Any:
        """Queue ``item`` on ``batcher``; 503 while the service is stopping."""
        if not batcher.running:
            raise ApiError(503, "not_ready", "the service is not ready; retry shortly",
                           headers={"Retry-After": str(RETRY_AFTER_S)})
        return await batcher.submit(item)

    def model_ref(self, role: str = "vision-language") -> dict[str, str]:
        described = next(m for m in self.require_engine().models if m["role"] == role)
        return {"id": described["id"], "version": described["version"]}

    async def read_image(self, upload: UploadFile, field: str, budget: PixelBudget) -> Image:
        """Read and decode one upload in a decoding thread (decoding must not block the event loop)."""
        config = self.config
        check_size(upload.size, field, config.max_image_bytes)
        data = await upload.read(config.max_image_bytes + 1)
        image = await asyncio.get_running_loop().run_in_executor(self.decoder, decode_upload, data, field, config,
                                                                 budget)
        if config.store_uploads is not None:
            await run_in_threadpool(store_upload, image, config.store_uploads)
        return image


async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]

"""A cap on the requests being decoded or inferred at once: the rest wait a bounded time, then get 503.

Without it every concurrent request decodes its images at the same time, and memory grows with
the number of clients instead of staying bounded. A request over the cap waits up to
``wait_s`` for a slot (most loads clear within that), and is then refused with
``503 Retry-After`` so a client backs off instead of the server running out of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator

from dermkit.serve.errors import ApiError


class Admission:
    """At most ``limit`` requests inside :meth:`slot` at once; a waiter gives up after ``wait_s``."""

    def __init__(self, limit: int, wait_s: float) -> None:
        if limit < 1:
            raise ValueError("the concurrency limit must be at least 1")
        self.limit = limit
        self.wait_s = wait_s
        self._slots = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self.wait_s)
        except asyncio.TimeoutError:
            raise ApiError(503, "busy", f"the service is busy ({self.limit} requests in progress); retry shortly",
                           headers={"Retry-After": str(max(1, math.ceil(self.wait_s)))}) from None
        try:
            yield
        finally:
            self._slots.release()

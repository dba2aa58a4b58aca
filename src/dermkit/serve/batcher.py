"""Micro-batching: concurrent requests wait a few milliseconds to share one model call.

A network on a CPU runs a batch of eight images in much less than eight times one image's time,
so under load it pays to group. Each :class:`MicroBatcher` owns an asyncio queue; its collector
takes the first waiting item, then whatever arrives until the batch holds ``max_batch`` units
(images) or ``max_wait_ms`` has passed, and runs the batch function in the model thread. While
the model runs, new requests queue up, so under load batches fill without waiting at all.
``max_batch=1`` turns batching off (one request per call), which the load benchmark compares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("dermkit.serve")


@dataclass
class _Pending(Generic[T, R]):
    item: T
    units: int
    future: asyncio.Future[R] = field(repr=False)


class MicroBatcher(Generic[T, R]):
    """Group submitted items into calls of ``run(items) -> results`` (same length, same order)."""

    def __init__(
        self,
        run: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int,
        max_wait_ms: float,
        units: Callable[[T], int] = lambda _: 1,
        name: str = "batch",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.run = run
        self.executor: Executor | None = None
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.units = units
        self.name = name
        self.batch_sizes: deque[int] = deque(maxlen=10_000)  # units per recent call, for tests and the benchmark
        self._queue: asyncio.Queue[_Pending[T, R]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._carry: _Pending[T, R] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, executor: Executor) -> None:
        """Start collecting on the running event loop; batches run on ``executor`` (the model thread)."""
        self.executor = executor
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._collect(), name=f"microbatch-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its result (exceptions of the batch call are re-raised)."""
        if self._queue is None or not self.running:
            raise RuntimeError(f"the {self.name} batcher is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(item, self.units(item), future))
        return await future

    async def _next_batch(self) -> list[_Pending[T, R]]:
        assert self._queue is not None
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, total = [first], first.units
        deadline = time.perf_counter() + self.max_wait
        while total < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                pending = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(
                    self._queue.get(), remaining)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if total + pending.units > self.max_batch:
                self._carry = pending  # starts the next batch
                break
            batch.append(pending)
            total += pending.units
        return batch

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [p for p in await self._next_batch() if not p.future.cancelled()]
            if not batch:
                continue
            self.batch_sizes.append(sum(p.units for p in batch))
            try:
                results = await loop.run_in_executor(self.executor, self.run, [p.item for p in batch])
            except Exception as exc:  # noqa: BLE001  (the batch failed: every waiting request gets the error)
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)

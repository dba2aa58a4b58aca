"""What the service is still loading, for ``/readyz`` and for the 503 of requests that come too early.

The server binds at once and loads its parts in the background, so a supervisor's liveness check
(``/healthz``) passes within seconds; :class:`Readiness` records each part's state as the loader
moves through them, with a detail per part (where the prompt bank came from, how long it took).
Pure Python and thread-safe: the loader runs in a worker thread, the routes read it on the loop.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

State = Literal["pending", "loading", "ready", "failed"]
# The parts of a server, in the order Engine.load reaches them.
PARTS = ("model", "index", "prompt_bank", "differential", "inference")
RETRY_AFTER_S = 5


class Readiness:
    """Each part's state and detail; ready once every part is."""

    def __init__(self, parts: tuple[str, ...] = PARTS) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._states: dict[str, State] = dict.fromkeys(parts, "pending")
        self._details: dict[str, dict[str, Any]] = {}
        self._began: dict[str, float] = {}
        self.error: BaseException | None = None

    def loading(self, part: str) -> None:
        with self._lock:
            self._states[part] = "loading"
            self._began[part] = time.monotonic()

    def ready(self, part: str, **detail: Any) -> None:
        """Mark ``part`` loaded; ``detail`` (JSON values) is shown by ``/readyz``."""
        with self._lock:
            self._states[part] = "ready"
            seconds = time.monotonic() - self._began.get(part, time.monotonic())
            self._details[part] = {**detail, "seconds": round(seconds, 3)}

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.error = error
            for part, state in self._states.items():
                if state == "loading":
                    self._states[part] = "failed"

    @property
    def is_ready(self) -> bool:
        with self._lock:
            return all(state == "ready" for state in self._states.values())

    def still_loading(self) -> list[str]:
        with self._lock:
            return [part for part, state in self._states.items() if state != "ready"]

    def report(self) -> dict[str, Any]:
        """The ``/readyz`` body: status, the parts not yet loaded, each part's state and detail."""
        with self._lock:
            states = dict(self._states)
            details = {part: dict(detail) for part, detail in self._details.items()}
            error = self.error
        waiting = [part for part, state in states.items() if state != "ready"]
        status = "failed" if error is not None else "loading" if waiting else "ready"
        body: dict[str, Any] = {
            "status": status,
            "loading": waiting,
            "parts": {part: {"state": state, **details.get(part, {})} for part, state in states.items()},
            "uptime_s": round(time.monotonic() - self._started, 3),
        }
        if error is not None:
            body["error"] = str(error)
        return body

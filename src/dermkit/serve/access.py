"""Who may call the service and how often: an optional API key and a per-client request rate limit.

Both are off on loopback unless asked for, so a laptop run changes nothing. Binding any other
address without ``--api-key-file`` is refused unless ``--no-api-key`` says it is meant, and gets a
default rate limit (:data:`PUBLIC_RATE_LIMIT`) unless ``--rate-limit`` says otherwise.
``/healthz`` and ``/readyz`` stay open so supervisors need no key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from dermkit.core.errors import InputError
from dermkit.serve.config import ServeConfig
from dermkit.serve.errors import ApiError
from dermkit.serve.schemas import ErrorResponse

LOOPBACK = ("127.0.0.1", "::1", "localhost")
PUBLIC_RATE_LIMIT = "120/min"
RATE_OFF = "off"
_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")
MAX_TRACKED_CLIENTS = 10_000  # beyond this, clients whose bucket has refilled are forgotten


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``seconds``, as a token bucket: bursts up to ``count``, refilled evenly."""

    count: int
    seconds: float


def parse_rate(text: str) -> Rate | None:
    """``N/s``, ``N/min`` or ``N/h`` (``off``: no limit); :class:`InputError` naming ``--rate-limit`` otherwise."""
    if text.strip().lower() == RATE_OFF:
        return None
    match = _RATE.match(text.lower())
    if match is None or match.group(2) not in _UNITS or int(match.group(1)) < 1:
        raise InputError(f"rate limit {text!r} is not N/s, N/min or N/h with N ≥ 1 (or 'off')", field="--rate-limit")
    return Rate(int(match.group(1)), _UNITS[match.group(2)])


def read_api_keys(path: Path) -> tuple[str, ...]:
    """The keys in ``path``, one per non-empty line (several allow rotating a key without downtime)."""
    try:
        keys = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    except OSError as error:
        raise InputError(f"cannot read the API key file: {error.strerror}", file=path) from error
    if not keys:
        raise InputError("the API key file holds no key", file=path)
    return keys


def exposure_defaults(config: ServeConfig) -> ServeConfig:
    """The config as served: on a non-loopback address, demand a key (or ``--no-api-key``) and rate-limit."""
    if config.rate_limit is not None:
        parse_rate(config.rate_limit)  # a malformed limit fails before the model loads
    if config.host in LOOPBACK:
        return config
    if config.api_key_file is None and not config.no_api_key:
        raise InputError(f"binding {config.host} makes the service reachable from other machines: give "
                         "--api-key-file FILE, or --no-api-key to serve it without one", field="--host")
    if config.rate_limit is None:
        return replace(config, rate_limit=PUBLIC_RATE_LIMIT)
    return config


class ApiKeyCheck:
    """Accept a request whose ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` is one of the keys."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        # compare digests: hmac.compare_digest is constant-time only for inputs of equal length
        self._digests = tuple(hashlib.sha256(key.encode()).digest() for key in keys)

    def __call__(self, bearer: str | None, header: str | None) -> None:
        sent = bearer or header
        if not sent:
            raise ApiError(401, "unauthorized", "this server needs an API key: send Authorization: Bearer KEY "
                           "or X-API-Key: KEY", headers={"WWW-Authenticate": "Bearer"})
        digest = hashlib.sha256(sent.encode()).digest()
        matches = [hmac.compare_digest(digest, known) for known in self._digests]  # every key, no early exit
        if not any(matches):
            raise ApiError(401, "unauthorized", "the API key is wrong", headers={"WWW-Authenticate": "Bearer"})


class RateLimiter:
    """Per-client token buckets; a request over the rate gets 429 with ``Retry-After`` in seconds."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._per_second = rate.count / rate.seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        """Spend one request of ``client``'s allowance, or refuse it."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(client, (float(self.rate.count), now))
            tokens = min(float(self.rate.count), tokens + (now - at) * self._per_second)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                wait = math.ceil((1 - tokens) / self._per_second)
                raise ApiError(429, "rate_limited", f"over the limit of {self.rate.count} requests per "
                               f"{self.rate.seconds:g} s for this client; retry in {wait} s",
                               headers={"Retry-After": str(wait)})
            self._buckets[client] = (tokens - 1, now)
            if len(self._buckets) > MAX_TRACKED_CLIENTS:
                self._forget_refilled(now)

    def _forget_refilled(self, now: float) -> None:
        full = [client for client, (tokens, at) in self._buckets.items()
                if tokens + (now - at) * self._per_second >= self.rate.count]
        for client in full:
            del self._buckets[client]


def route_guards(config: ServeConfig) -> tuple[list[Any], dict[int | str, dict[str, Any]]]:
    """The dependencies that protect the inference routes, and the refusals they add to the schema.

    The rate limit runs first, so guessing keys is limited too; the key check declares both
    header forms as OpenAPI security schemes (either one is enough).
    """
    guards: list[Any] = []
    responses: dict[int | str, dict[str, Any]] = {}
    rate = None if config.rate_limit is None else parse_rate(config.rate_limit)
    if rate is not None:
        limiter = RateLimiter(rate)

        def rate_limit(request: Request) -> None:
            limiter.take(request.client.host if request.client else "unknown")

        guards.append(Depends(rate_limit))
        responses[429] = {"model": ErrorResponse, "description": f"over {config.rate_limit} for this client "
                                                                 "(Retry-After says when to retry)"}
    if config.api_key_file is not None:
        check = ApiKeyCheck(read_api_keys(config.api_key_file))
        bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
        header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: KEY")

        def api_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                    key: str | None = Depends(header)) -> None:
            check(None if credentials is None else credentials.credentials, key)

        guards.append(Depends(api_key))
        responses[401] = {"model": ErrorResponse, "description": "the API key is missing or wrong"}
    return guards, responses

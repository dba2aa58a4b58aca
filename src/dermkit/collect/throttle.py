"""Fixed-window rate counters in the database, shared by every worker.

:func:`bump` counts an event and returns the new count in one ``INSERT … ON CONFLICT DO UPDATE …
RETURNING`` statement (PostgreSQL and SQLite ≥ 3.35), so concurrent requests each see a distinct
count: there is no window between checking a limit and recording the attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dermkit.collect.models import RateCounter, utcnow
from dermkit.core.errors import DermkitError

_UPSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class RateLimited(DermkitError):
    """Too many requests of one kind from one client: the caller answers 429 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Count:
    """A key's events in its current window, and the whole seconds until that window ends."""

    count: int
    retry_after: int


def bump(session: Session, key: str, window: timedelta, now: datetime | None = None) -> Count:
    """Count one event for ``key`` (a window older than ``window`` starts again at 1), committed."""
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    if dialect not in _UPSERTS:
        raise DermkitError(f"rate limits need PostgreSQL or SQLite, not {dialect}")
    table = RateCounter.__table__
    stale = table.c.window_start <= now - window
    statement = _UPSERTS[dialect](table).values(key=key, count=1, window_start=now)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={"count": case((stale, 1), else_=table.c.count + 1),
              "window_start": case((stale, now), else_=table.c.window_start)},
    ).returning(table.c.count, table.c.window_start)
    count, start = session.execute(statement).one()
    session.commit()
    return Count(int(count), _seconds_left(start, window, now))


def peek(session: Session, key: str, window: timedelta) -> int:
    """``key``'s events in its current window (0 when there is none)."""
    row = session.execute(select(RateCounter.count, RateCounter.window_start)
                          .where(RateCounter.key == key)).one_or_none()
    if row is None:
        return 0
    count, start = row  # by position: SQLAlchemy's stubs type ``row.count`` as Row's tuple method
    return int(count) if start > utcnow() - window else 0


def clear(session: Session, key: str) -> None:
    session.execute(delete(RateCounter).where(RateCounter.key == key))
    session.commit()


def sweep(session: Session, prefix: str, window: timedelta) -> None:
    """Drop the finished windows of keys starting with ``prefix`` (clients that went away)."""
    session.execute(delete(RateCounter).where(RateCounter.key.startswith(prefix, autoescape=True),
                                              RateCounter.window_start <= utcnow() - window))
    session.commit()


def _seconds_left(start: datetime, window: timedelta, now: datetime) -> int:
    return max(1, math.ceil((start + window - now).total_seconds()))

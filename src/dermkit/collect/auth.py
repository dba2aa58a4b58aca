"""Accounts, sign-in with fair failure limits, and login sessions.

Failures count twice: per client, which is locked after :attr:`LoginLimits.client_failures`
(the attacker's own key), and per account, which only slows sign-in with a bounded, growing delay
(:meth:`LoginLimits.delay`) and is never locked, so nobody can keep the real user out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dermkit.collect import throttle
from dermkit.collect.models import ROLES, LoginSession, User, utcnow
from dermkit.collect.security import (
    MIN_PASSWORD_LENGTH,
    digest,
    hash_password,
    new_token,
    verify_password,
)
from dermkit.collect.throttle import RateLimited
from dermkit.core.errors import InputError

SESSION_LIFETIME = timedelta(hours=12)
CLIENT_KEY, ACCOUNT_KEY = "login-client:", "login-account:"


@dataclass(frozen=True)
class LoginLimits:
    """How failed sign-ins are counted (``dermkit collect serve --login-*`` flags)."""

    client_failures: int = 10  # a client is locked after this many failures in a row within the window
    window: timedelta = timedelta(minutes=15)
    free_failures: int = 3  # an account's failures within the window before sign-in slows down
    first_delay: float = 0.25  # seconds, doubled with each further failure ...
    max_delay: float = 4.0  # ... up to this: slowed, never blocked

    def __post_init__(self) -> None:
        if self.client_failures < 1:
            raise InputError("a client must be allowed at least one failed sign-in", field="login_lock_after")
        if not 0 <= self.max_delay <= 60:
            raise InputError("the sign-in delay cap must be 0–60 seconds", field="login_max_delay")

    def delay(self, account_failures: int) -> float:
        """Seconds every sign-in to an account waits, before its password is checked."""
        beyond = account_failures - self.free_failures
        if beyond < 0:
            return 0.0
        return min(self.max_delay, self.first_delay * 2.0 ** min(beyond, 32))


@dataclass(frozen=True)
class SignedIn:
    """The user behind a request's session cookie, and the session's CSRF token."""

    user_id: int
    username: str
    role: str
    csrf_token: str


def create_user(session: Session, username: str, password: str, role: str) -> User:
    username = username.strip()
    if not username or len(username) > 64:
        raise InputError("user name must be 1–64 characters", field="username")
    if role not in ROLES:
        raise InputError(f"role must be one of {list(ROLES)}", field="role")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password")
    user = User(username=username, password_hash=hash_password(password), role=role)
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise InputError(f"user {username!r} exists", field="username") from exc
    return user


def begin_sign_in(session: Session, username: str, client: str, limits: LoginLimits) -> float:
    """Count the attempt against ``client`` and refuse a locked one; the delay owed before checking.

    The client's count is bumped first, in one statement, so parallel attempts cannot all slip
    under the limit; :func:`sign_in` clears it on success. The delay is applied before the password
    is checked: one applied to failures only would tell the attacker, by its lateness, to stop waiting.
    """
    throttle.sweep(session, "login-", limits.window)
    attempt = throttle.bump(session, _key(CLIENT_KEY, client), limits.window)
    if attempt.count > limits.client_failures:
        raise RateLimited(f"too many failed sign-ins from your address; try again in {attempt.retry_after} "
                          "seconds", attempt.retry_after)
    return limits.delay(throttle.peek(session, _key(ACCOUNT_KEY, username.strip().lower()), limits.window))


def sign_in(session: Session, username: str, password: str, client: str, limits: LoginLimits) -> str | None:
    """A new session token, or None for wrong credentials (counted against the account)."""
    session.execute(delete(LoginSession).where(LoginSession.expires_at < utcnow()))
    user = session.scalar(select(User).where(User.username == username.strip()))
    # An unknown name costs one hash check too, so timing does not tell which names exist.
    stored = user.password_hash if user is not None else _unknown_user_hash()
    if not verify_password(password, stored) or user is None:
        throttle.bump(session, _key(ACCOUNT_KEY, username.strip().lower()), limits.window)
        return None
    throttle.clear(session, _key(CLIENT_KEY, client))
    token = new_token()
    session.add(LoginSession(token_hash=digest(token), user_id=user.id, csrf_token=new_token(),
                             expires_at=utcnow() + SESSION_LIFETIME))
    session.commit()
    return token


def _key(kind: str, value: str) -> str:
    return (kind + value)[:160]


@lru_cache(maxsize=1)
def _unknown_user_hash() -> str:
    return hash_password(new_token())


def signed_in(session: Session, token: str | None) -> SignedIn | None:
    if not token:
        return None
    row = session.get(LoginSession, digest(token))
    if row is None or row.expires_at < utcnow():
        return None
    return SignedIn(row.user.id, row.user.username, row.user.role, row.csrf_token)


def sign_out(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(LoginSession).where(LoginSession.token_hash == digest(token)))
        session.commit()

"""Accounts, sign-in with rate limiting, and login sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dermkit.collect.models import ROLES, LoginFailure, LoginSession, User, utcnow
from dermkit.collect.security import (
    MIN_PASSWORD_LENGTH,
    digest,
    hash_password,
    new_token,
    verify_password,
)
from dermkit.core.errors import DermkitError, InputError

SESSION_LIFETIME = timedelta(hours=12)
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5  # per user name and per client address within the window


class RateLimited(DermkitError):
    """Too many failed sign-ins: the caller answers 429."""


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


def sign_in(session: Session, username: str, password: str, client: str) -> str | None:
    """A new session token, or None for wrong credentials; :class:`RateLimited` after repeated failures."""
    keys = [f"user:{username.strip().lower()}"[:160], f"addr:{client}"[:160]]
    since = utcnow() - FAILURE_WINDOW
    session.execute(delete(LoginFailure).where(LoginFailure.at < since))
    for key in keys:
        count = session.scalar(select(func.count()).select_from(LoginFailure).where(LoginFailure.key == key))
        if (count or 0) >= MAX_FAILURES:
            session.commit()
            raise RateLimited("too many failed sign-ins; try again in 15 minutes")
    session.execute(delete(LoginSession).where(LoginSession.expires_at < utcnow()))
    user = session.scalar(select(User).where(User.username == username.strip()))
    # An unknown name costs one hash check too, so timing does not tell which names exist.
    stored = user.password_hash if user is not None else _unknown_user_hash()
    if not verify_password(password, stored) or user is None:
        session.add_all(LoginFailure(key=key) for key in keys)
        session.commit()
        return None
    token = new_token()
    session.add(LoginSession(token_hash=digest(token), user_id=user.id, csrf_token=new_token(),
                             expires_at=utcnow() + SESSION_LIFETIME))
    session.commit()
    return token


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

"""The database schema (SQLAlchemy 2 ORM). The Alembic migrations in ``migrations/`` create it.

Times are naive UTC (``utcnow``) so SQLite and PostgreSQL store and return the same values.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("dermatologist", "lay_grader", "admin")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LoginSession(Base):
    """A signed-in browser: the cookie holds a token whose SHA-256 is the key here."""

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class RateCounter(Base):
    """Events per key (``login-client:ADDR``, ``login-account:NAME``, ``contribute:ADDR``) in a fixed window.

    One row per key, bumped by a single upsert, so concurrent workers never lose a count (see
    :mod:`dermkit.collect.throttle`).
    """

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(DateTime)


class ContributedCase(Base):
    """One contribution: the questionnaire answers (SCIN codes) and 1–3 images."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    receipt_hash: Mapped[str] = mapped_column(String(64), unique=True)
    consent_version: Mapped[str] = mapped_column(String(32))
    submitted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    age_group: Mapped[str | None] = mapped_column(String(32))
    sex_at_birth: Mapped[str | None] = mapped_column(String(32))
    fitzpatrick_skin_type: Mapped[str | None] = mapped_column(String(16))
    condition_duration: Mapped[str | None] = mapped_column(String(32))
    race_ethnicity: Mapped[list[str]] = mapped_column(JSON, default=list)
    textures: Mapped[list[str]] = mapped_column(JSON, default=list)
    body_parts: Mapped[list[str]] = mapped_column(JSON, default=list)
    condition_symptoms: Mapped[list[str]] = mapped_column(JSON, default=list)
    other_symptoms: Mapped[list[str]] = mapped_column(JSON, default=list)

    images: Mapped[list[CaseImage]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseImage.position",
        passive_deletes=True)
    grades: Mapped[list[GradeRecord]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="GradeRecord.id", passive_deletes=True)


class CaseImage(Base):
    """A stored (re-encoded, EXIF-free) image and its quality-gate results."""

    __tablename__ = "case_images"
    __table_args__ = (UniqueConstraint("case_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(128), unique=True)
    shot_type: Mapped[str | None] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sharpness: Mapped[float] = mapped_column(Float)
    phash: Mapped[str] = mapped_column(String(64))
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("case_images.id", ondelete="SET NULL"))

    case: Mapped[ContributedCase] = relationship(back_populates="images")


class GradeRecord(Base):
    """An assignment of a case to a grader, filled in when the grade is submitted.

    One row per (case, grader): a case is never assigned twice to one grader.
    """

    __tablename__ = "grades"
    __table_args__ = (UniqueConstraint("case_id", "grader_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    grader_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # the grader's role when assigned
    assigned_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    gradable: Mapped[bool | None] = mapped_column(Boolean)
    fitzpatrick: Mapped[int | None] = mapped_column(Integer)  # dermatologist's estimate (eFST)
    monk: Mapped[int | None] = mapped_column(Integer)  # lay grader's estimate (eMST)

    case: Mapped[ContributedCase] = relationship(back_populates="grades")
    grader: Mapped[User] = relationship()
    conditions: Mapped[list[GradeCondition]] = relationship(
        cascade="all, delete-orphan", order_by="GradeCondition.position", passive_deletes=True)


class GradeCondition(Base):
    """One of a dermatologist's up to three conditions, with its confidence 1–5."""

    __tablename__ = "grade_conditions"

    grade_id: Mapped[int] = mapped_column(ForeignKey("grades.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    condition_id: Mapped[str] = mapped_column(String(128))
    confidence: Mapped[int] = mapped_column(Integer)

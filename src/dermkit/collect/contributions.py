"""Contributions: store a case with its photos in one transaction, look it up by receipt, withdraw it."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dermkit.collect import throttle
from dermkit.collect.models import CaseImage, ContributedCase
from dermkit.collect.quality import CheckedImage, closest
from dermkit.collect.questionnaire import CONSENT_VERSION, Answers
from dermkit.collect.security import digest
from dermkit.collect.storage import MediaStore
from dermkit.collect.throttle import RateLimited
from dermkit.core.errors import InputError

MAX_PHOTOS = 3


@dataclass(frozen=True)
class Photo:
    image: CheckedImage
    shot_type: str | None


@dataclass(frozen=True)
class Receipt:
    case_id: str
    code: str  # shown once to the contributor; only its digest is stored
    duplicates: int  # photos that look like already-stored ones (flagged for review, not refused)


def check_consent(accepted: bool, version: str | None) -> str:
    if not accepted:
        raise InputError("the consent must be accepted to contribute", field="consent")
    if version != CONSENT_VERSION:
        raise InputError("the consent text has changed since the form was loaded; please read it again",
                         field="consent_version")
    return version


def create_case(session: Session, store: MediaStore, answers: Answers, photos: Sequence[Photo],
                consent_version: str) -> Receipt:
    """Write the photos, then commit the case and image rows together; undo the files on any failure."""
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise InputError(f"a contribution has 1–{MAX_PHOTOS} photos, got {len(photos)}", field="image_1")
    code = secrets.token_urlsafe(12)
    case = ContributedCase(id=secrets.token_hex(8), receipt_hash=digest(code), consent_version=consent_version,
                           **asdict(answers))
    known = {row.id: row.phash for row in session.execute(select(CaseImage.id, CaseImage.phash))}
    written: list[str] = []
    duplicates = 0
    try:
        for position, photo in enumerate(photos, start=1):
            written.append(store.save(photo.image.data))
            match = closest(photo.image.phash, known)
            duplicates += match is not None
            case.images.append(CaseImage(
                position=position, file_name=written[-1], shot_type=photo.shot_type, width=photo.image.width,
                height=photo.image.height, sharpness=photo.image.sharpness, phash=photo.image.phash,
                duplicate_of=None if match is None else match[0]))
        session.add(case)
        session.commit()
    except BaseException:
        session.rollback()
        store.delete(written)
        raise
    return Receipt(case.id, code, duplicates)


def find_by_receipt(session: Session, code: str) -> ContributedCase | None:
    code = (code or "").strip()
    return session.scalar(select(ContributedCase).where(ContributedCase.receipt_hash == digest(code))) if code else None


def withdraw(session: Session, store: MediaStore, code: str) -> bool:
    """Delete the case (grades included) and then its files; False for an unknown receipt."""
    case = find_by_receipt(session, code)
    if case is None:
        return False
    names = [image.file_name for image in case.images]
    session.delete(case)
    session.commit()
    store.delete(names)
    return True


def sweep_media(session: Session, store: MediaStore) -> list[str]:
    """Remove files no image row references (see :mod:`dermkit.collect.storage`)."""
    return store.sweep(set(session.scalars(select(CaseImage.file_name)).all()))


CONTRIBUTION_WINDOW = timedelta(hours=1)


def count_contribution(session: Session, client: str, per_hour: int) -> None:
    """Count a contribution attempt from ``client``; :class:`RateLimited` past ``per_hour`` (0: no limit).

    Every POST counts, refused ones too: decoding photos is what costs memory and time.
    """
    if per_hour <= 0:
        return
    throttle.sweep(session, "contribute:", CONTRIBUTION_WINDOW)
    attempt = throttle.bump(session, f"contribute:{client}"[:160], CONTRIBUTION_WINDOW)
    if attempt.count > per_hour:
        raise RateLimited(f"too many contributions from your address; try again in {attempt.retry_after} seconds",
                          attempt.retry_after)

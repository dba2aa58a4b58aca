"""The platform's settings: database, media folder, grading quotas, cookie, proxy and upload limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dermkit.collect.auth import LoginLimits
from dermkit.collect.contributions import MAX_PHOTOS
from dermkit.collect.db import DEFAULT_DB_URL
from dermkit.collect.grading import GradesNeeded
from dermkit.collect.quality import MAX_IMAGE_BYTES


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB_URL
    media_dir: Path = Path("dermkit-collect-media")
    needed: GradesNeeded = field(default_factory=GradesNeeded)
    # Three photos at the per-photo limit plus the form's text.
    max_request_bytes: int = MAX_PHOTOS * MAX_IMAGE_BYTES + 1024 * 1024
    secure_cookies: bool = False  # set behind HTTPS
    login: LoginLimits = field(default_factory=LoginLimits)
    # Addresses or networks of reverse proxies whose X-Forwarded-For is believed (none by default).
    trusted_proxies: tuple[str, ...] = ()
    contributions_per_hour: int = 20  # per client; 0 turns the limit off
    # Photos decoded at once (each up to 40 MP: ~0.3 GB while checked); others wait, then get 503.
    max_concurrent_uploads: int = 2
    upload_wait_s: float = 30.0

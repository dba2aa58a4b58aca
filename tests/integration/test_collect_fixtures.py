"""Shared fixtures and helpers of the collect tests (no tests here): a PostgreSQL server started
for the session, an app per test on SQLite or PostgreSQL, and form helpers that act like a browser.
"""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the collect extra is not installed")
pytest.importorskip("sqlalchemy", reason="the collect extra is not installed")

from fastapi import FastAPI
from fastapi.testclient import TestClient

from dermkit.collect.app import Settings, create_app
from dermkit.collect.auth import create_user
from dermkit.collect.grading import GradesNeeded

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if p.parts[-3].isdigit()]
    return max(candidates, key=lambda p: int(p.parts[-3])).parent if candidates else None  # newest major


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """initdb + pg_ctl start in a temporary folder, on 127.0.0.1 (as user postgres when run as root)."""
    pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) is not installed")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="dermkit-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        runuser = shutil.which("runuser")
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = None
        if runuser is None or account is None:
            shutil.rmtree(root)
            pytest.skip("running as root without runuser or a 'postgres' account to start PostgreSQL as")
        os.chown(root, account.pw_uid, account.pw_gid)
        run_as = [runuser, "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"
    commands = [
        [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "dermkit", "-N"],
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
         f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
    ]
    for command in commands:
        result = subprocess.run(run_as + command, cwd=root, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"PostgreSQL could not be started: {result.stderr.strip()[-500:]} {log[-500:]}")
    try:
        yield PostgresServer("127.0.0.1", port, "dermkit")
    finally:
        subprocess.run(run_as + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       cwd=root, capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collect.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@dataclass
class Platform:
    """A running app (lifespan entered) and ways to act on it as different people."""

    app: FastAPI
    media: Path
    anonymous: TestClient

    def client(self) -> TestClient:
        """A fresh browser (its own cookies)."""
        return TestClient(self.app, base_url="http://127.0.0.1")

    def add_user(self, username: str, role: str) -> None:
        with self.app.state.sessions() as session:
            create_user(session, username, PASSWORD, role)

    def signed_in(self, username: str, role: str) -> TestClient:
        self.add_user(username, role)
        browser = self.client()
        response = sign_in(browser, username, PASSWORD)
        assert response.status_code == 303, response.text
        return browser


@contextlib.contextmanager
def make_platform(db_url: str, media: Path, needed: GradesNeeded, **settings: object) -> Iterator[Platform]:
    """An app on ``db_url`` with its lifespan entered (migrations run, media swept)."""
    app = create_app(Settings(db_url=db_url, media_dir=media, needed=needed, **settings))  # type: ignore[arg-type]
    with TestClient(app, base_url="http://127.0.0.1") as anonymous:
        yield Platform(app, media, anonymous)


@pytest.fixture
def platform(db_url: str, tmp_path: Path) -> Iterator[Platform]:
    with make_platform(db_url, tmp_path / "media", GradesNeeded(dermatologist=3, lay_grader=2)) as running:
        yield running


@pytest.fixture
def sqlite_platform(tmp_path: Path) -> Iterator[Platform]:
    with make_platform(f"sqlite:///{tmp_path / 'collect.db'}", tmp_path / "media",
                       GradesNeeded(dermatologist=1, lay_grader=1)) as running:
        yield running


# -- acting like a browser ------------------------------------------------------------------------

def photo(seed: int, size: int = 200, fmt: str = "PNG") -> bytes:
    """A sharp, distinct test photo (its perceptual hash is far from other seeds')."""
    pixels = np.random.default_rng(seed).integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


_TOKENS: weakref.WeakKeyDictionary[TestClient, str] = weakref.WeakKeyDictionary()


def token(client: TestClient, path: str) -> str:
    """The CSRF token on the form at ``path`` (fetched once per browser: it is per session or cookie)."""
    if client in _TOKENS and client.cookies:
        return _TOKENS[client]
    response = client.get(path)
    assert response.status_code == 200, response.text
    match = TOKEN.search(response.text)
    assert match, f"no CSRF token on {path}"
    _TOKENS[client] = match.group(1)
    return match.group(1)


def sign_in(client: TestClient, username: str, password: str):
    response = client.post("/login", data={"csrf_token": token(client, "/login"), "username": username,
                                           "password": password}, follow_redirects=False)
    _TOKENS.pop(client, None)  # a session has its own token
    return response


def contribute(client: TestClient, images: Sequence[bytes], **answers: str | list[str]) -> str:
    """Submit a contribution; the receipt code."""
    from dermkit.collect.questionnaire import CONSENT_VERSION

    data = {"csrf_token": token(client, "/contribute"), "consent": "yes", "consent_version": CONSENT_VERSION,
            **answers}
    files = {f"image_{slot}": (f"photo{slot}.png", image, "image/png") for slot, image in enumerate(images, 1)}
    response = client.post("/contribute", data=data, files=files)
    assert response.status_code == 201, response.text
    return re.search(r'id="receipt-code">([^<]+)<', response.text).group(1)  # type: ignore[union-attr]


def take_next(client: TestClient) -> tuple[int, str] | None:
    """Ask for the next case: (grade id, case id), or None when the queue is empty."""
    response = client.post("/grade/next", data={"csrf_token": token(client, "/grade")}, follow_redirects=False)
    if response.status_code == 200:
        assert "queue-empty" in response.text
        return None
    assert response.status_code == 303, response.text
    grade_id = int(response.headers["location"].rsplit("/", 1)[1])
    page = client.get(f"/grade/{grade_id}")
    assert page.status_code == 200
    return grade_id, re.search(r"Case ([0-9a-f]+)<", page.text).group(1)  # type: ignore[union-attr]


def grade_dermatologist(client: TestClient, grade_id: int, conditions: Sequence[tuple[str, int]],
                        fitzpatrick: int | None = None, gradable: bool | None = None):
    data = {"csrf_token": token(client, f"/grade/{grade_id}"),
            "gradable": "yes" if (bool(conditions) if gradable is None else gradable) else "no",
            "fitzpatrick": "" if fitzpatrick is None else str(fitzpatrick)}
    for slot, (name, confidence) in enumerate(conditions, start=1):
        data[f"condition_{slot}"] = name
        data[f"confidence_{slot}"] = str(confidence)
    return client.post(f"/grade/{grade_id}", data=data, follow_redirects=False)


def grade_lay(client: TestClient, grade_id: int, monk: int | None):
    return client.post(f"/grade/{grade_id}", data={"csrf_token": token(client, f"/grade/{grade_id}"),
                                                   "monk": "none" if monk is None else str(monk)},
                       follow_redirects=False)

"""Fair login limits, trusted proxies, the contribution rate limit and strict number/id parsing,
through the real app (TestClient on SQLite and PostgreSQL) and a real ``dermkit collect serve``."""

from __future__ import annotations

import html
import http.client
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import test_collect_fixtures as fixtures
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_collect_fixtures import (
    PASSWORD,
    TOKEN,
    Platform,
    contribute,
    free_port,
    grade_dermatologist,
    grade_lay,
    make_platform,
    photo,
    sign_in,
    take_next,
    token,
)

import dermkit.collect.routes.accounts as accounts_routes
from dermkit.collect import throttle
from dermkit.collect.auth import create_user
from dermkit.collect.db import make_engine, upgrade
from dermkit.collect.grading import GradesNeeded
from dermkit.collect.models import ContributedCase

# The shared fixtures, under the names tests ask for.
db_url = fixtures.db_url
platform = fixtures.platform
postgres_server = fixtures.postgres_server
sqlite_platform = fixtures.sqlite_platform

HUGE_ID = "9" * 25
REPO_SRC = Path(__file__).resolve().parents[2] / "src"


def browser(platform: Platform, address: str) -> TestClient:
    """A browser whose requests come from ``address``."""
    return TestClient(platform.app, base_url="http://127.0.0.1", client=(address, 40000))


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The per-account delays the app asks for, recorded instead of slept."""
    asked: list[float] = []

    async def record(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(accounts_routes, "wait_before_checking", record)
    return asked


def test_correct_password_signs_in_after_20_failures_from_another_client(platform: Platform,
                                                                          delays: list[float]) -> None:
    platform.add_user("admin", "admin")
    attacker = browser(platform, "198.51.100.7")
    answers = [sign_in(attacker, "admin", f"wrong guess {n}") for n in range(20)]
    assert [r.status_code for r in answers] == [401] * 10 + [429] * 10  # the attacker's client is locked
    locked = answers[-1]
    assert "try again" in locked.text and 0 < int(locked.headers["retry-after"]) <= 15 * 60
    assert sign_in(attacker, "admin", PASSWORD).status_code == 429  # locked even with the right password
    # The account is slowed with a growing, capped delay, checked before the password; never refused.
    assert delays == [0, 0, 0, 0.25, 0.5, 1, 2, 4, 4, 4]
    owner = browser(platform, "192.0.2.10")
    response = sign_in(owner, "admin", PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/admin"
    assert owner.get("/admin").status_code == 200
    assert delays[-1] == 4


def test_a_client_that_signs_in_starts_again_from_zero(sqlite_platform: Platform, delays: list[float]) -> None:
    sqlite_platform.add_user("derm", "dermatologist")
    typist = browser(sqlite_platform, "192.0.2.20")
    for _ in range(9):
        assert sign_in(typist, "derm", "typo typo typo").status_code == 401
    assert sign_in(typist, "derm", PASSWORD).status_code == 303
    fresh = browser(sqlite_platform, "192.0.2.20")
    assert [sign_in(fresh, "derm", "typo").status_code for _ in range(11)] == [401] * 10 + [429]


def test_counting_is_one_atomic_statement(platform: Platform) -> None:
    """Parallel attempts each get their own count: none slips under a limit unseen."""
    workers, seen = 12, []
    start = threading.Barrier(workers)

    def attempt() -> None:
        with platform.app.state.sessions() as session:
            start.wait()
            seen.append(throttle.bump(session, "login-client:203.0.113.9", timedelta(minutes=15)).count)

    threads = [threading.Thread(target=attempt) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, workers + 1))


def test_parallel_failures_from_one_client_lock_it_after_exactly_the_limit(platform: Platform,
                                                                            delays: list[float]) -> None:
    """Sixteen wrong passwords at once from one client: ten are checked, six refused unchecked."""
    platform.add_user("derm", "dermatologist")
    attackers = [browser(platform, "198.51.100.7") for _ in range(16)]
    for attacker in attackers:
        token(attacker, "/login")
    start = threading.Barrier(len(attackers))

    def guess(attacker: TestClient) -> int:
        start.wait()
        return sign_in(attacker, "derm", "wrong guess").status_code

    with ThreadPoolExecutor(len(attackers)) as pool:
        codes = sorted(pool.map(guess, attackers))
    assert codes == [401] * 10 + [429] * 6


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path, delays: list[float]) -> None:
    with make_platform(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "media", GradesNeeded(1, 1),
                       trusted_proxies=("10.0.0.0/8",)) as proxied:
        proxied.add_user("derm", "dermatologist")
        untrusted = browser(proxied, "198.51.100.7")
        for n in range(10):
            spoofed = {"X-Forwarded-For": f"203.0.113.{n}"}
            untrusted.headers.update(spoofed)
            assert sign_in(untrusted, "derm", "wrong guess").status_code == 401
        untrusted.headers["X-Forwarded-For"] = "203.0.113.200"
        assert sign_in(untrusted, "derm", PASSWORD).status_code == 429  # the peer is the client
        proxy = browser(proxied, "10.1.2.3")
        proxy.headers["X-Forwarded-For"] = "198.51.100.50"
        for _ in range(10):
            assert sign_in(proxy, "derm", "wrong guess").status_code == 401
        # What the client wrote left of the address the proxy saw is ignored.
        proxy.headers["X-Forwarded-For"] = "192.0.2.99, 198.51.100.50"
        assert sign_in(proxy, "derm", PASSWORD).status_code == 429
        neighbour = browser(proxied, "10.1.2.3")  # another client of the same proxy
        neighbour.headers["X-Forwarded-For"] = "192.0.2.99, 198.51.100.51, 10.9.9.9"
        assert sign_in(neighbour, "derm", PASSWORD).status_code == 303


def test_contributions_are_rate_limited_per_client(tmp_path: Path) -> None:
    with make_platform(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "media", GradesNeeded(1, 1),
                       contributions_per_hour=2) as limited:
        first = browser(limited, "198.51.100.7")
        contribute(first, [photo(1)])
        contribute(first, [photo(2)])
        refused = first.post("/contribute", data={"csrf_token": token(first, "/contribute"), "consent": "yes"},
                              files={"image_1": ("a.png", photo(3), "image/png")})
        assert refused.status_code == 429 and "too many contributions" in refused.text
        assert 3000 < int(refused.headers["retry-after"]) <= 3600
        contribute(browser(limited, "198.51.100.8"), [photo(4)])  # another client is not held back
        with limited.app.state.sessions() as session:
            assert session.scalar(select(func.count()).select_from(ContributedCase)) == 3


def test_number_fields_take_ascii_digits_only(platform: Platform) -> None:
    contribute(platform.anonymous, [photo(1)])
    derm = platform.signed_in("derm", "dermatologist")
    grade_id, _ = take_next(derm)  # type: ignore[misc]
    for digit in ("²", "³", "¹", "٥", "５", "+3", " 3x"):
        refused = grade_dermatologist(derm, grade_id, [("Acne", digit)])  # type: ignore[list-item]
        assert refused.status_code == 400, (digit, refused.text)
        assert "'confidence_1'" in html.unescape(refused.text)
    refused = grade_dermatologist(derm, grade_id, [("Acne", 3)], fitzpatrick="٥")  # type: ignore[arg-type]
    assert refused.status_code == 400 and "'fitzpatrick'" in html.unescape(refused.text)
    lay = platform.signed_in("lay", "lay_grader")
    lay_id, _ = take_next(lay)  # type: ignore[misc]
    refused = grade_lay(lay, lay_id, "¹" + "0" * 5000)  # type: ignore[arg-type]
    assert refused.status_code == 400 and "'monk'" in html.unescape(refused.text)
    assert grade_dermatologist(derm, grade_id, [("Acne", 3)], fitzpatrick=4).status_code == 303


def test_ids_beyond_64_bits_are_not_found(platform: Platform) -> None:
    derm = platform.signed_in("derm", "dermatologist")
    admin = platform.signed_in("admin", "admin")
    for path in (f"/grade/{HUGE_ID}", f"/grade/{2**63}", "/grade/0", "/grade/²"):
        assert derm.get(path).status_code == 404, path
    posted = derm.post(f"/grade/{HUGE_ID}", data={"csrf_token": token(derm, "/grade"), "monk": "3"})
    assert posted.status_code == 404
    for path in (f"/media/{HUGE_ID}", f"/media/{2**63}", "/media/-1"):
        assert admin.get(path).status_code == 404, path


# -- a real server: the CLI, uvicorn, a keep-alive connection --------------------------------------

class Server:
    """``dermkit collect serve`` on a free port, spoken to over one raw keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **(headers or {})}
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=sent)
        response = self.connection.getresponse()
        text = response.read().decode()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0].strip('"')
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def sign_in(self, username: str, password: str, forwarded_for: str | None = None) -> int:
        self.cookies.pop("dk_session", None)
        _, _, page = self.request("GET", "/login")
        csrf = TOKEN.search(page).group(1)  # type: ignore[union-attr]
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        status, _, _ = self.request("POST", "/login", {"csrf_token": csrf, "username": username,
                                                       "password": password}, headers)
        return status


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> Server:
        db = f"sqlite:///{tmp_path / f'collect{len(started)}.db'}"
        engine = make_engine(db)
        upgrade(engine)
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            create_user(session, "derm", PASSWORD, "dermatologist")
        engine.dispose()
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "dermkit.cli", "collect", "serve", "--db", db, "--media",
             str(tmp_path / "media"), "--port", str(port), "--login-max-delay", "0.01", *flags],
            env={"PYTHONPATH": str(REPO_SRC), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(process)
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                probe.request("GET", "/")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        return Server(port)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def test_live_server_ignores_forwarded_for_from_an_untrusted_peer_and_keeps_the_connection(
        serve: Callable[..., Server]) -> None:
    server = serve("--login-lock-after", "3")
    assert server.sign_in("derm", PASSWORD) == 303
    socket_before = server.connection.sock
    for path in (f"/grade/{HUGE_ID}", f"/media/{HUGE_ID}"):
        status, headers, _ = server.request("GET", path)
        assert status == 404 and headers.get("connection") != "close", (path, status)
    status, _, _page = server.request("GET", "/grade")
    assert status == 200 and server.connection.sock is socket_before  # the same keep-alive connection
    # 127.0.0.1 is no trusted proxy unless listed: a new X-Forwarded-For does not buy new attempts.
    codes = [server.sign_in("derm", "wrong guess", f"203.0.113.{n}") for n in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    assert server.sign_in("derm", PASSWORD, "192.0.2.1") == 429


def test_live_server_reads_forwarded_for_from_a_listed_proxy(serve: Callable[..., Server]) -> None:
    server = serve("--login-lock-after", "3", "--trusted-proxy", "127.0.0.1")
    codes = [server.sign_in("derm", "wrong guess", "203.0.113.5") for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert server.sign_in("derm", PASSWORD, "192.0.2.1, 203.0.113.5") == 429  # right-most untrusted
    assert server.sign_in("derm", PASSWORD, "203.0.113.6") == 303


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

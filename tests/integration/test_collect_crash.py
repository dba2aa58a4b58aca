"""SIGKILL the server in the middle of uploads: no partial case, no row without its file, and the
files of interrupted uploads are removed when the server starts again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from test_collect_fixtures import TOKEN, free_port, make_platform, photo

from dermkit.collect.grading import GradesNeeded
from dermkit.collect.models import CaseImage, ContributedCase
from dermkit.collect.questionnaire import CONSENT_VERSION
from dermkit.data.images import open_image

# The server, with a pause after each photo is written, so the kill lands between file and commit.
SERVER = """
import sys, time
from pathlib import Path
import uvicorn
from dermkit.collect import storage
from dermkit.collect.app import Settings, create_app

original = storage.MediaStore.save

def slow_save(self, data):
    name = original(self, data)
    time.sleep(0.3)
    return name

storage.MediaStore.save = slow_save
db, media, port = sys.argv[1:4]
uvicorn.run(create_app(Settings(db_url=db, media_dir=Path(media))), host="127.0.0.1", port=int(port),
            log_level="warning")
"""


def _upload_forever(base: str, seed: int, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                token = TOKEN.search(client.get("/contribute").text).group(1)  # type: ignore[union-attr]
                client.post("/contribute", data={"csrf_token": token, "consent": "yes",
                                                 "consent_version": CONSENT_VERSION},
                            files={"image_1": ("a.png", photo(seed)), "image_2": ("b.png", photo(seed + 1))})
        except (httpx.HTTPError, AttributeError):
            return  # the server is gone
        seed += 2


def _counts(engine: object, media: Path) -> tuple[int, int]:
    """(image rows committed, complete photo files on disk)."""
    with engine.connect() as connection:  # type: ignore[attr-defined]
        rows = connection.scalar(select(func.count()).select_from(CaseImage))
    return int(rows or 0), len(list(media.glob("*.jpg")))


def test_killed_server_leaves_no_partial_case_and_restart_removes_orphans(tmp_path: Path) -> None:
    db_url, media, port = f"sqlite:///{tmp_path / 'collect.db'}", tmp_path / "media", free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, db_url, str(media), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    workers = [threading.Thread(target=_upload_forever, args=(base, 1000 * n, stop)) for n in range(3)]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        engine = create_engine(db_url)
        for worker in workers:
            worker.start()
        # Kill once some cases are committed and an upload has written a file it has not committed yet.
        while True:
            rows, files = _counts(engine, media)
            if rows >= 2 and files > rows:
                os.kill(server.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "no upload was caught between its files and its commit"
            time.sleep(0.02)
    finally:
        stop.set()
        if server.poll() is None:
            server.kill()
        server.wait()
        for worker in workers:
            if worker.is_alive():
                worker.join(timeout=30)

    with engine.connect() as connection:
        per_case = connection.execute(select(ContributedCase.id, func.count(CaseImage.id)).join(
            CaseImage, CaseImage.case_id == ContributedCase.id, isouter=True).group_by(ContributedCase.id)).all()
        referenced = set(connection.scalars(select(CaseImage.file_name)))
    assert per_case and all(count == 2 for _, count in per_case), per_case  # every case whole
    for name in referenced:  # every row's file is there and complete
        open_image(media / name)
    on_disk = {p.name for p in media.iterdir()}
    assert on_disk - referenced, "the kill should have left the file of an uncommitted upload"

    # Starting again sweeps the files no row references; committed cases are untouched.
    with make_platform(db_url, media, GradesNeeded(1, 1)):
        pass
    assert {p.name for p in media.iterdir()} == referenced
    engine.dispose()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

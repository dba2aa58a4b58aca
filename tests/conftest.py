"""Shared fixtures: the real sample in ../shared/data (skipped where absent) and synthetic images."""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Keep torch and BLAS from oversubscribing the two cores CI has.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DERMKIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_dataset(name: str) -> Path:
    """Path of a real dataset in ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not (path / "metadata.csv").exists() and not any(path.glob("*.csv")):
        pytest.skip(f"real data {path} is absent (tests read ../shared/data beside the checkout)")
    return path


@pytest.fixture
def pad_ufes_dir() -> Path:
    return shared_dataset("pad-ufes-20")


@pytest.fixture
def ham_dir() -> Path:
    return shared_dataset("ham10000")


@pytest.fixture
def fitzpatrick17k_dir() -> Path:
    return shared_dataset("fitzpatrick17k")


@pytest.fixture
def isic_archive_dir() -> Path:
    return shared_dataset("isic-archive")


@pytest.fixture(autouse=True)
def user_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own user cache dir, so default-located feature caches never touch ~/.cache."""
    monkeypatch.setenv("DERMKIT_CACHE_DIR", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache"


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """Write a small random RGB image and return its path."""
    rng = np.random.default_rng(0)

    def make(name: str = "img.png", size: tuple[int, int] = (32, 32), folder: Path | None = None) -> Path:
        target = (folder or tmp_path) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(target)
        return target

    return make


@pytest.fixture(scope="session")
def synthetic_ham_table() -> Callable[..., Path]:
    """Write a synthetic HAM10000-layout release under ``root``, import and lesion-split it; returns the table."""
    from dermkit.data.importers import run_import
    from dermkit.data.splits import split_table
    from dermkit.data.synthetic import write_synthetic_ham

    def make(root: Path, *, val: float, test: float, n_cases: int = 42, size: int = 32) -> Path:
        write_synthetic_ham(root / "raw", n_cases=n_cases, size=size)
        run_import("ham10000", root / "raw", root / "table", check_images=False)
        split_table(root / "table", by="lesion", val=val, test=test, seed=0)
        return root / "table"

    return make


HUB_REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path: Path) -> Callable[..., Path]:
    """Lay out directories as repos of a Hugging Face hub cache (``models--ORG--REPO/snapshots/<rev>/``
    plus ``refs/main``), as ``hf download`` would leave them; returns ``add(source_dir, repo, files=None)``
    (``files``: copy only these) and the cache root is ``add.root``."""
    import shutil

    root = tmp_path / "hf-cache"
    root.mkdir()

    def add(source: Path, repo: str, files: list[str] | None = None) -> Path:
        repo_dir = root / f"models--{repo.replace('/', '--')}"
        snapshot = repo_dir / "snapshots" / HUB_REVISION
        if files is None:
            shutil.copytree(source, snapshot)
        else:
            snapshot.mkdir(parents=True)
            for name in files:
                shutil.copy(source / name, snapshot / name)
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / "main").write_text(HUB_REVISION)
        return snapshot

    add.root = root  # type: ignore[attr-defined]
    return add


@pytest.fixture(scope="session")
def untrained_ddx_model() -> Callable[..., Path]:
    """Save a tiny untrained image-only ddx model (32 px test trunk) on a label set; returns its folder."""

    def make(folder: Path, labels: str = "ham10000", other: bool = False) -> Path:
        from dermkit.models.ddx_net import DdxNet, LabelSpace
        from dermkit.models.factory import build_backbone
        from dermkit.models.families.ddx import DdxModel, save_ddx

        backbone = build_backbone("test_efficientnet", pretrained=False, image_size=32)
        space = LabelSpace.build(labels, other=other)
        net = DdxNet(len(space.classes), feature_dim=backbone.dim, trunk=backbone.module, metadata=None)
        config = {"backbone": backbone.name, "feature_dim": backbone.dim, "preprocess": backbone.preprocess,
                  "net": {"pooling": "mean", "hidden": 256, "dropout": 0.3, "field_dropout": 0.2, "n_aux": 0}}
        return save_ddx(DdxModel(net.eval(), space, None, config), folder)

    return make


@contextlib.contextmanager
def serve_in_thread(app: object, start_timeout_s: float = 30) -> Iterator[str]:
    """Run an ASGI ``app`` under a real uvicorn server on a free 127.0.0.1 port; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims ``width``×``height`` pixels: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))

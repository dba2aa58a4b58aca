"""`dermkit collect`: safe defaults and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the collect extra is not installed")

from dermkit.cli import build_parser, main


def test_serve_binds_loopback_by_default() -> None:
    args = build_parser().parse_args(["collect", "serve"])
    assert (args.host, args.port, args.db) == ("127.0.0.1", 8100, "sqlite:///dermkit-collect.db")
    # No proxy is trusted unless listed; the limits are on.
    assert (args.trusted_proxy, args.login_lock_after, args.login_max_delay, args.contributions_per_hour) == (
        [], 10, 4.0, 20)


def test_serve_refuses_a_trusted_proxy_that_is_no_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert main(["collect", "serve", "--db", db, "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "proxy"]) == 2
    assert "field 'trusted_proxy'" in capsys.readouterr().err
    assert main(["collect", "serve", "--db", db, "--login-lock-after", "0"]) == 2
    assert "field 'login_lock_after'" in capsys.readouterr().err


def test_add_user_then_export_of_an_empty_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("DERMKIT_COLLECT_PASSWORD", "short")
    assert main(["collect", "add-user", "--db", db, "--username", "ann", "--role", "admin"]) == 2
    assert "field 'password'" in capsys.readouterr().err
    monkeypatch.setenv("DERMKIT_COLLECT_PASSWORD", "long enough password")
    assert main(["collect", "add-user", "--db", db, "--username", "ann", "--role", "admin"]) == 0
    assert main(["collect", "add-user", "--db", db, "--username", "ann", "--role", "admin"]) == 2
    assert "exists" in capsys.readouterr().err
    # A case table needs at least one case; a missing database is named, not created.
    assert main(["collect", "export", "--db", db, "--format", "dermkit", "--out", str(tmp_path / "t")]) == 2
    assert "no cases" in capsys.readouterr().err
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    assert main(["collect", "export", "--db", missing, "--format", "scin", "--out", str(tmp_path / "s")]) == 2
    assert "no database" in capsys.readouterr().err and not (tmp_path / "missing.db").exists()

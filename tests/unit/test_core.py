"""Atomic writes, located errors and optional imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermkit.core import InputError, atomic_dir, atomic_write_text, require
from dermkit.core.optional import MissingDependencyError


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_keeps_old_content_when_build_fails(tmp_path: Path) -> None:
    target = tmp_path / "table"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("good")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table"]


def test_atomic_dir_refuses_overwrite_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    with pytest.raises(FileExistsError):
        with atomic_dir(target, overwrite=False):
            pass


def test_input_error_names_file_row_and_field() -> None:
    error = InputError("not a number", file="meta.csv", row=7, field="age")
    assert str(error) == "file meta.csv, row 7, field 'age': not a number"
    assert error.as_record() == {"file": "meta.csv", "row": 7, "field": "age", "message": "not a number"}


def test_require_names_the_extra() -> None:
    with pytest.raises(MissingDependencyError, match=r"pip install 'dermkit\[serve\]'"):
        require("no_such_module_dermkit", "serve", "the web service")
    assert require("json", "core").dumps([1]) == "[1]"


def test_atomic_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "a").write_text("y")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755

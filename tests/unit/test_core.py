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
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table"]


def test_atomic_dir_refuses_overwrite_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    with pytest.raises(FileExistsError), atomic_dir(target, overwrite=False):
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


# -- recovery of killed writers -------------------------------------------------------------------

def _debris_name(target: Path, host: str, pid: int, start: int, kind: str = "tmp") -> Path:
    return target.with_name(f".{target.name}.{host}~{pid}~{start}~0badc0de.{kind}")


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                             check=True)
    return int(process.stdout)


def test_killed_file_writer_leaves_a_temporary_the_next_write_removes(tmp_path: Path) -> None:
    import subprocess
    import sys

    target = tmp_path / "out.txt"
    killer = ("import os, signal, sys\nfrom dermkit.core import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('half')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    src = str(Path(__file__).resolve().parents[2] / "src")
    result = subprocess.run([sys.executable, "-c", killer, str(target)], capture_output=True, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": src})
    assert result.returncode == -9, result.stderr
    assert [p.name.startswith(".out.txt.") and p.name.endswith(".tmp") for p in tmp_path.iterdir()] == [True]
    atomic_write_text(target, "whole")
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert target.read_text() == "whole"


def test_recover_leaves_a_live_writers_work_alone(tmp_path: Path) -> None:
    from dermkit.core import recover

    target = tmp_path / "table"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("building")
        recover(target)  # e.g. a reader of the table while this writer still runs
        assert (tmp / "a.txt").read_text() == "building"
    assert (target / "a.txt").read_text() == "building"


def test_recover_removes_dead_writers_debris_and_keeps_other_hosts(tmp_path: Path) -> None:
    import os

    from dermkit.core import atomic, recover

    target = tmp_path / "table"
    target.mkdir()
    dead = _debris_name(target, atomic._HOST, _dead_pid(), 0)
    reused = _debris_name(target, atomic._HOST, os.getpid(), 1, "old")  # this pid, but another start time
    remote = _debris_name(target, "other-machine", _dead_pid(), 0)  # a shared folder: cannot tell, keep
    for path in (dead, reused, remote):
        path.mkdir()
    recover(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["table", remote.name])


def test_recover_restores_the_old_directory_when_no_new_one_was_built(tmp_path: Path) -> None:
    from dermkit.core import atomic, recover

    target = tmp_path / "table"
    old = _debris_name(target, atomic._HOST, _dead_pid(), 0, "old")
    old.mkdir()
    (old / "a.txt").write_text("old")
    recover(target)
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table"]


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="renameat2 is Linux-only")
def test_exchange_swaps_two_directories_in_one_step(tmp_path: Path) -> None:
    from dermkit.core.atomic import _exchange

    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "name").write_text(folder.name)
    assert _exchange(first, second)
    assert (first / "name").read_text() == "second" and (second / "name").read_text() == "first"

"""Atomic, recoverable file and directory writes: a killed run leaves the old content or the new, never half.

Everything dermkit writes (tables, checkpoints, exports, reports) goes through these helpers.
A writer builds beside its target under a name that says who it is
(``.NAME.<host>~<pid>~<start time>~<nonce>.tmp``), so :func:`recover`, which every writer and
the table readers run first, can tell a live writer's work from a dead one's debris: it finishes
or undoes a dead writer's interrupted directory swap and removes what it left. The design and
its failure cases are in ``docs/design.md``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

TMP = "tmp"  # a writer's work in progress (or, after an exchange, the old content it displaced)
OLD = "old"  # the old directory moved aside by the two-rename swap
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_TOKEN = re.compile(r"^([A-Za-z0-9-]+)~(\d+)~(\d+)~([0-9a-f]+)$")

# Fault-injection point for the crash tests: called with each step's name ("created", "built",
# "exchanged", "old-moved", "installed"); a test sets it to SIGKILL the process at one step.
_on_step: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if _on_step is not None:
        _on_step(name)


@dataclass(frozen=True)
class _Writer:
    """Who made a temporary path: enough to tell, later, whether that process still runs."""

    host: str
    pid: int
    start: int  # the process's start time in clock ticks since boot (0 where unknown): pids are reused
    nonce: str

    @classmethod
    def current(cls) -> _Writer:
        return cls(_HOST, os.getpid(), _process_state(os.getpid())[1], secrets.token_hex(4))

    @classmethod
    def parse(cls, token: str) -> _Writer | None:
        match = _TOKEN.match(token)
        if match is None:
            return None
        return cls(match.group(1), int(match.group(2)), int(match.group(3)), match.group(4))

    def token(self) -> str:
        return f"{self.host}~{self.pid}~{self.start}~{self.nonce}"

    def alive(self) -> bool:
        """False only when sure: a writer on another machine (shared filesystem) counts as alive."""
        if self.host != _HOST:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process exists under that pid
        state, start = _process_state(self.pid)
        if state == "Z":
            return False  # killed, not yet reaped
        return not (self.start and start and start != self.start)  # a different process reusing the pid


def _process_state(pid: int) -> tuple[str, int]:
    """(state letter, start time) from ``/proc/PID/stat`` on Linux; ("", 0) elsewhere or when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "", 0
    fields = stat[stat.rfind(")") + 2:].split()  # the command name in (...) may hold spaces
    return fields[0], int(fields[19])


def _name(target: Path, writer: _Writer, kind: str) -> Path:
    return target.with_name(f".{target.name}.{writer.token()}.{kind}")


def _debris(target: Path) -> list[tuple[Path, _Writer, str]]:
    """Temporary and moved-aside paths of ``target``'s writers, with who made them."""
    prefix = f".{target.name}."
    found = []
    with os.scandir(target.parent) as entries:
        for entry in entries:
            name = entry.name
            if not name.startswith(prefix):
                continue
            token, _, kind = name[len(prefix):].rpartition(".")
            writer = _Writer.parse(token)
            if writer is not None and kind in (TMP, OLD):
                found.append((Path(entry.path), writer, kind))
    return found


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def recover(target: str | Path) -> None:
    """Finish or undo what dead writers left beside ``target``, then remove their debris.

    A two-rename directory swap killed between its renames left ``target`` absent: the new
    directory is put in place when it is there (it was complete before the old one was moved),
    else the old one is restored. Every other temporary or moved-aside path of a dead writer is
    removed; a live writer's are left alone. Best effort: a read-only folder is left as it is.
    """
    target = Path(target)
    try:
        dead = [item for item in _debris(target) if not item[1].alive()]
    except OSError:
        return
    if not os.path.lexists(target):
        for path, writer, kind in dead:
            if kind != OLD:
                continue
            new = _name(target, writer, TMP)
            with contextlib.suppress(OSError):
                os.rename(new if new.exists() else path, target)
                break
    for path, _, _ in dead:
        _remove(path)


def _claim(target: Path, *, directory: bool) -> tuple[Path, _Writer]:
    """Create this writer's temporary file or folder beside ``target`` (umask permissions, not 0600)."""
    while True:
        writer = _Writer.current()
        path = _name(target, writer, TMP)
        try:
            if directory:
                path.mkdir(mode=0o777)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return path, writer


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp, _ = _claim(target, directory=False)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(target: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Build a whole directory under a temporary name, then swap it in place of ``target``.

    On failure the temporary directory is removed and ``target`` is untouched; a process killed
    at any point leaves the old directory or the new one for the next :func:`recover`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists (pass overwrite=True to replace it)")
    tmp, writer = _claim(target, directory=True)
    _step("created")
    try:
        yield tmp
        _step("built")
        _swap(tmp, target, writer)
    finally:
        if tmp.exists():
            _remove(tmp)


def _swap(tmp: Path, target: Path, writer: _Writer) -> None:
    """Put the complete ``tmp`` in place of ``target``: one exchange where the system has it, else two renames."""
    if not target.exists():
        os.replace(tmp, target)
    elif _exchange(tmp, target):
        _step("exchanged")
        _remove(tmp)  # it now holds the old content
    else:
        old = _name(target, writer, OLD)
        os.replace(target, old)
        _step("old-moved")
        os.replace(tmp, target)
        _step("installed")
        _remove(old)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# The kernel, filesystem or sandbox lacks the exchange; the two-rename swap then runs (and still
# reports a real permission problem itself).
_NO_EXCHANGE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM)


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    if sys.platform != "linux":
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))

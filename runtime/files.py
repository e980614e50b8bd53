"""Durable files, for evidence on both sides: hashing what is on disk, and making a rename
or a new file survive a power cut (its directory fsynced too)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

# A write takes far less: an older temporary file of a process that is gone was left by a crash.
STALE_TEMP_S = 600.0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_durably(path: Path, data: bytes) -> None:
    """Append `data` and fsync it before returning: what was appended survives a power cut."""
    with path.open("ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, never a
    torn one; a new file gets `mode`. The temporary file's name is this write's own, so
    that two processes writing the same file at once each replace it whole; those a crash
    left behind are removed by the next write of the same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path, time.time())
    temp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_stale_temps(path: Path, now: float) -> None:
    """Remove the temporary files `write_atomic` made for `path` that a crash left: named
    by a process that is gone and older than STALE_TEMP_S (a clock step alone cannot make
    a write under way look stale). Housekeeping never fails the write that does it."""
    own = re.compile(re.escape(path.name) + r"\.(\d+)-[0-9a-f]{8}\.tmp")
    with contextlib.suppress(OSError):
        for temp in path.parent.iterdir():
            found = own.fullmatch(temp.name)
            if found is None or _running(int(found.group(1))):
                continue
            with contextlib.suppress(OSError):
                if now - temp.stat().st_mtime > STALE_TEMP_S:
                    temp.unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    return True


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Held by one process (and thread) at a time: an exclusive lock on `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

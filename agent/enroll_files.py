"""The enrollment folder, replaced whole: a crash leaves the old enrollment or the new one.

The folder is also the agent's data_dir (its outbox, evidence and state stay in place when a
gateway re-enrolls), so the enrollment's own files live in a folder of their own inside it
and are reached through symlinks that never change:

    enrollment -> .enrollment-<random>     the enrollment in force
    .enrollment-<random>/                  agent.toml, tls/..., identity/unit.key
    agent.toml -> enrollment/agent.toml
    tls        -> enrollment/tls
    identity   -> enrollment/identity

A new enrollment is written whole (files 0600, folders 0700, each fsynced) into a fresh
.enrollment-* folder, then put in force by renaming a new `enrollment` symlink over the old
one: a single atomic rename (the way Kubernetes' atomic writer swaps a volume's files). The
previous enrollment's folder, with its private keys, is removed afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.files import fsync_dir

CURRENT = "enrollment"
STAGE_PREFIX = ".enrollment-"
ASIDE_PREFIX = ".before-enrollment-"
LOCK = ".enrollment.lock"
# What the symlinks at the top of the folder lead to inside the enrollment in force.
ENTRIES = ("agent.toml", "tls", "identity")


@dataclass(frozen=True, slots=True)
class EnrollFiles:
    """Where the agent finds what enrollment wrote (through the symlinks above)."""

    folder: Path

    @property
    def tls_key(self) -> Path:
        return self.folder / "tls" / "unit.key"

    @property
    def tls_cert(self) -> Path:
        return self.folder / "tls" / "unit.pem"

    @property
    def device_ca(self) -> Path:
        return self.folder / "tls" / "device-ca.pem"

    @property
    def center_ca(self) -> Path:
        return self.folder / "tls" / "center-ca.pem"

    @property
    def evidence_key(self) -> Path:
        # Where the agent's evidence recorder looks for its key under its data_dir.
        return self.folder / "identity" / "unit.key"

    @property
    def config(self) -> Path:
        return self.folder / "agent.toml"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()


def write_enrollment(folder: Path, contents: Mapping[str, bytes]) -> Path | None:
    """Put `contents` (path relative to the folder, under one of ENTRIES -> bytes) in force
    in `folder`, replacing the enrollment there as one. Returns where files of an earlier
    layout that stood in the way were moved (kept, not deleted), if any."""
    for rel in contents:
        if Path(rel).parts[0] not in ENTRIES or ".." in Path(rel).parts:
            raise ValueError(f"not an enrollment file: {rel}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    with _locked(folder / LOCK):
        stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=folder))
        try:
            _write_tree(stage, contents)
            aside = _links_in_place(folder)
            _swap(folder, stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        _remove_stale(folder, keep=stage.name)
    return aside


def in_force(folder: Path) -> Path | None:
    """The folder of the enrollment in force, if there is one."""
    link = folder / CURRENT
    if not link.is_symlink():
        return None
    target = folder / os.readlink(link)
    return target if target.is_dir() else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two enrollments at once must not clear away each other's staging folder.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_tree(stage: Path, contents: Mapping[str, bytes]) -> None:
    folders = {stage}
    for rel, data in sorted(contents.items()):
        path = stage / rel
        for parent in reversed(path.relative_to(stage).parents[:-1]):
            made = stage / parent
            if made not in folders:
                made.mkdir(mode=0o700)
                made.chmod(0o700)  # whatever the umask
                folders.add(made)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    for made in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(made)


def _links_in_place(folder: Path) -> Path | None:
    """The symlinks at the top of the folder, made once. They lead nowhere until the first
    `enrollment` link is in force, so that rename stays the one step that enrolls. What an
    earlier layout left in their place (real files and folders) is moved aside first."""
    aside: Path | None = None
    for name in (*ENTRIES, CURRENT):
        path = folder / name
        target = f"{CURRENT}/{name}"
        if name == CURRENT:
            if path.is_symlink() or not path.exists():
                continue
        elif path.is_symlink() and os.readlink(path) == target:
            continue
        if path.is_symlink() or path.exists():
            if aside is None:
                aside = Path(tempfile.mkdtemp(prefix=ASIDE_PREFIX, dir=folder))
            path.rename(aside / name)
        if name != CURRENT:
            _replace_with_link(folder, name, target)
    fsync_dir(folder)
    return aside


def _swap(folder: Path, stage: Path) -> None:
    _replace_with_link(folder, CURRENT, stage.name)
    fsync_dir(folder)


def _replace_with_link(folder: Path, name: str, target: str) -> None:
    temp = folder / f".{name}.link-{secrets.token_hex(4)}"
    os.symlink(target, temp)
    try:
        temp.replace(folder / name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _remove_stale(folder: Path, keep: str) -> None:
    """The enrollment replaced, and what a crash left half-written."""
    for child in folder.iterdir():
        if child.name.startswith(STAGE_PREFIX) and child.name != keep and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith(".") and ".link-" in child.name and child.is_symlink():
            child.unlink(missing_ok=True)

"""The enrollment folder is replaced as one: the files in force all come from one enrollment,
through a writer killed at any moment; the agent's own data in the folder stays; modes are
0600/0700; an earlier layout's files are moved aside, never lost."""

import os
import random
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.enroll_files import ASIDE_PREFIX, CURRENT, STAGE_PREFIX, in_force, write_enrollment
from tests.helpers import ROOT

FILES = ("agent.toml", "tls/unit.pem", "tls/unit.key", "tls/device-ca.pem", "identity/unit.key")


def enrollment(tag: str) -> dict[str, bytes]:
    return {rel: f"{rel} of enrollment {tag}\n".encode() for rel in FILES}


def visible(folder: Path) -> dict[str, bytes]:
    """What the agent reads, through the folder's stable paths."""
    return {rel: (folder / rel).read_bytes() for rel in FILES if (folder / rel).exists()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_enrollment_is_written_with_its_modes_and_read_through_stable_paths(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "gw"
    assert write_enrollment(folder, enrollment("1")) is None
    assert visible(folder) == enrollment("1")
    assert all(mode(folder / rel) == 0o600 for rel in FILES)
    assert mode(folder) == mode(folder / "tls") == mode(folder / "identity") == 0o700
    current = in_force(folder)
    assert current is not None and current.name.startswith(STAGE_PREFIX)
    assert all((folder / rel).resolve().is_relative_to(current) for rel in FILES)


def test_a_new_enrollment_replaces_the_old_and_keeps_the_agents_data(tmp_path: Path) -> None:
    folder = tmp_path / "gw"
    write_enrollment(folder, enrollment("1"))
    old = in_force(folder)
    (folder / "agent.db").write_bytes(b"outbox")
    (folder / "evidence").mkdir()
    (folder / "evidence" / "r1.seg").write_bytes(b"video")
    write_enrollment(folder, enrollment("2"))
    assert visible(folder) == enrollment("2")
    assert old is not None and not old.exists()  # the old private keys are gone
    assert (folder / "agent.db").read_bytes() == b"outbox"
    assert (folder / "evidence" / "r1.seg").read_bytes() == b"video"
    stages = [p for p in folder.iterdir() if p.name.startswith(STAGE_PREFIX)]
    assert stages == [in_force(folder)]


def test_a_failed_write_leaves_the_enrollment_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "gw"
    write_enrollment(folder, enrollment("1"))
    before = sorted(p.name for p in folder.iterdir())

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_enrollment(folder, enrollment("2"))
    monkeypatch.undo()
    assert visible(folder) == enrollment("1")
    assert sorted(p.name for p in folder.iterdir()) == before


def test_files_of_an_earlier_layout_are_moved_aside(tmp_path: Path) -> None:
    """A folder enrolled before the enrollment had a folder of its own, or where the agent
    made its own evidence key before enrolling: those files are kept aside, not lost."""
    folder = tmp_path / "gw"
    (folder / "identity").mkdir(parents=True)
    (folder / "identity" / "unit.key").write_bytes(b"key made by the agent")
    (folder / "agent.toml").write_bytes(b"old layout")
    aside = write_enrollment(folder, enrollment("1"))
    assert aside is not None and aside.name.startswith(ASIDE_PREFIX)
    assert (aside / "identity" / "unit.key").read_bytes() == b"key made by the agent"
    assert (aside / "agent.toml").read_bytes() == b"old layout"
    assert visible(folder) == enrollment("1")
    assert write_enrollment(folder, enrollment("2")) is None


def test_only_enrollment_files_are_taken(tmp_path: Path) -> None:
    for rel in ("agent.db", "../x", "tls/../../x"):
        with pytest.raises(ValueError, match="not an enrollment file"):
            write_enrollment(tmp_path / "gw", {rel: b"x"})
    assert not (tmp_path / "gw").exists()


WRITER = f"""
import sys
from pathlib import Path
from agent.enroll_files import write_enrollment
folder = Path(sys.argv[1])
FILES = {FILES!r}

def enrollment(tag):
    return {{rel: f"{{rel}} of enrollment {{tag}}\\n".encode() for rel in FILES}}

n = int(sys.argv[2])
while True:
    n += 1
    write_enrollment(folder, enrollment(str(n)))
    print(n, flush=True)
"""


def test_a_writer_killed_at_any_moment_leaves_one_whole_enrollment(tmp_path: Path) -> None:
    folder = tmp_path / "gw"
    write_enrollment(folder, enrollment("0"))
    done, rand = 0, random.Random(12)
    for _ in range(30):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), str(done)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        for _ in range(rand.randint(1, 4)):  # killed while writing the next one
            done = int(writer.stdout.readline())
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        seen = visible(folder)
        tags = {int(data.split()[-1]) for data in seen.values()}
        assert len(seen) == len(FILES) and len(tags) == 1, seen
        done = max(done, tags.pop())
    write_enrollment(folder, enrollment("last"))
    leftovers = [
        p.name for p in folder.iterdir() if p.name.startswith(".") and p != in_force(folder)
    ]
    assert leftovers == [".enrollment.lock"]
    assert (folder / CURRENT).is_symlink()

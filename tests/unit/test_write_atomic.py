"""`write_atomic`: the temporary files a crash left are removed by the next write of the
same file; a write still under way, another file's and one it did not make are left."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from runtime.files import STALE_TEMP_S, write_atomic

OLD = STALE_TEMP_S + 60


def _temp(path: Path, name: str, age_s: float) -> Path:
    temp = path.with_name(name)
    temp.write_bytes(b"half")
    at = time.time() - age_s
    os.utime(temp, (at, at))
    return temp


def _gone_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_crashs_temporary_files_are_removed_by_the_next_write(tmp_path: Path) -> None:
    target, gone, alive = tmp_path / "crl.pem", _gone_pid(), os.getpid()
    stale = _temp(target, f"crl.pem.{gone}-deadbeef.tmp", OLD)
    kept = [
        _temp(target, f"crl.pem.{gone}-cafebabe.tmp", 1),  # young: under way elsewhere
        _temp(target, f"crl.pem.{alive}-cafebabe.tmp", OLD),  # its writer still runs
        _temp(target, f"ca.pem.{gone}-deadbeef.tmp", OLD),  # another file's
        _temp(target, "crl.pem.bak.tmp", OLD),  # not one write_atomic makes
    ]
    write_atomic(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["crl.pem", *(temp.name for temp in kept)]
    )


def test_names_with_pattern_characters_match_only_themselves(tmp_path: Path) -> None:
    target, gone = tmp_path / "unit[1].toml", _gone_pid()
    look_alike = _temp(target, f"unit1.toml.{gone}-00000000.tmp", OLD)
    own = _temp(target, f"unit[1].toml.{gone}-00000000.tmp", OLD)
    write_atomic(target, b"x", mode=0o600)
    assert look_alike.exists() and not own.exists()
    assert target.stat().st_mode & 0o777 == 0o600

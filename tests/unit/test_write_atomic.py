"""`write_atomic`: the temporary files a crash left are removed by the next write of the
same file, and no other file's nor a write still under way."""

from __future__ import annotations

import os
import time
from pathlib import Path

from runtime.files import STALE_TEMP_S, write_atomic


def _temp(path: Path, name: str, age_s: float) -> Path:
    temp = path.with_name(name)
    temp.write_bytes(b"half")
    at = time.time() - age_s
    os.utime(temp, (at, at))
    return temp


def test_a_crashs_temporary_files_are_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "crl.pem"
    stale = _temp(target, "crl.pem.4242-deadbeef.tmp", STALE_TEMP_S + 60)
    under_way = _temp(target, "crl.pem.4343-cafebabe.tmp", 1)
    other = _temp(target, "ca.pem.4242-deadbeef.tmp", STALE_TEMP_S + 60)
    write_atomic(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert not stale.exists()
    assert under_way.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["crl.pem", under_way.name, other.name]
    )


def test_names_with_glob_characters_match_only_themselves(tmp_path: Path) -> None:
    target = tmp_path / "unit[1].toml"
    look_alike = _temp(target, "unit1.toml.1-00.tmp", STALE_TEMP_S + 60)
    own = _temp(target, "unit[1].toml.1-00.tmp", STALE_TEMP_S + 60)
    write_atomic(target, b"x", mode=0o600)
    assert look_alike.exists() and not own.exists()
    assert target.stat().st_mode & 0o777 == 0o600

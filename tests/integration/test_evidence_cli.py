"""The evidence CLIs as a field tech runs them: `rtcc agent evidence status` on a unit and
`rtcc evidence verify` on a recording folder."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.helpers import run_rtcc
from tests.integration.test_evidence import record_clip


def rtcc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_rtcc(*args, env={**os.environ, **env})


def test_status_and_verify_from_the_command_line(tmp_path: Path) -> None:
    recording_id, recordings = record_clip(tmp_path / "evidence", seconds=3)
    status = rtcc("agent", "evidence", "status", RTCC_UNIT_ID="u1", RTCC_DATA_DIR=str(tmp_path))
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["segments_to_upload"] == 3
    assert report["recordings"][0]["recording_id"] == recording_id

    folder = recordings / recording_id
    ok = rtcc("evidence", "verify", str(folder))
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"]
    victim = sorted(folder.glob("*.mp4"))[1]
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    bad = rtcc("evidence", "verify", str(folder))
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["problems"] == [
        {"index": 1, "file": victim.name, "reason": "segment altered: SHA-256 differs"}
    ]

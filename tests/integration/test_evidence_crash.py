"""Evidence survives `kill -9` at random points while recording, and a disk that fills up."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.evidence.recorder import Recorder
from protocol import UnitState
from protocol.evidence import UnitKey, parse_manifest, verify
from protocol.upload import MANIFEST
from runtime.files import sha256_file
from tests.center_tls import client_tls
from tests.helpers import running_agent, running_center, spawn_agent, wait_for
from tests.integration.bodycam_helpers import wait_for_state
from tests.integration.center_helpers import unit_at_center
from tests.integration.relay_helpers import RelayViewer

EVIDENCE_ENV = {
    "RTCC_EVIDENCE__ENABLED": "true",
    "RTCC_EVIDENCE__SEGMENT_S": "1",
    "RTCC_EVIDENCE__PRE_EVENT_S": "2",
    "RTCC_VIDEO__WIDTH": "192",
    "RTCC_VIDEO__HEIGHT": "96",
    "RTCC_VIDEO__FPS": "10",
    "RTCC_VIDEO__KEYFRAME_INTERVAL_S": "1",
}


def recovered_events(center: Any, unit: str) -> list[dict[str, Any]]:
    return [
        dict(e.event.data)
        for e in center.fleet.recent_events
        if e.unit_id == unit and e.event.type == "evidence.recovered"
    ]


async def test_kill_9_while_recording_ten_times_loses_nothing_silently(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    rng = random.Random(unique)
    unit = f"u-{unique}"
    data_dir = tmp_path / unit
    async with running_center(broker_url, f"c-{unique}") as center:
        proc: subprocess.Popen[bytes] | None = None
        try:
            for _ in range(10):
                proc = spawn_agent(unit, broker_url, data_dir, **EVIDENCE_ENV)
                await wait_for(lambda: (r := center.fleet.registry.get(unit)) and r.online, 20)
                answer = await center.http.post(
                    f"/api/v1/units/{unit}/commands",
                    json={"name": "recording.start", "args": {"trigger": "test"}},
                )
                assert answer.json()["status"] == "done", answer.text
                await asyncio.sleep(rng.uniform(0.3, 3.0))
                os.kill(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
                await wait_for(lambda: not center.fleet.registry.get(unit).online, 20)  # type: ignore[union-attr]
            # The next start recovers what the last kill left, and says what it did.
            proc = spawn_agent(unit, broker_url, data_dir, **EVIDENCE_ENV)
            await wait_for(lambda: len(recovered_events(center, unit)) >= 10, timeout=20)
        finally:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.wait)
    root = data_dir / "evidence"
    recordings = sorted(p for p in (root / "recordings").iterdir())
    assert 1 <= len(recordings) <= 10  # a kill before the first segment leaves only a partial
    key = UnitKey.from_bytes((data_dir / "identity" / "unit.key").read_bytes())
    for directory in recordings:
        entries, problems = parse_manifest((directory / MANIFEST).read_text())
        assert problems == []
        hashes: dict[str, str | None] = {e.file: sha256_file(directory / e.file) for e in entries}
        assert verify(entries, hashes, key.public_b64) == [], directory.name
        # Every complete segment on disk is in the manifest; nothing half-written remains.
        assert {p.name for p in directory.iterdir() if p.name != MANIFEST} == set(hashes)
    quarantined = sorted(p.name for p in (root / "quarantine").iterdir())
    reported = sorted(n for e in recovered_events(center, unit) for n in e["quarantined"])
    assert quarantined == reported  # every partial segment was reported, none lost


def storage_full(state: UnitState) -> bool:
    return state.storage is not None and state.storage.full


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
async def test_a_full_disk_pauses_recording_not_streaming_and_recovers(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)]
    await asyncio.to_thread(subprocess.run, mount, check=True)
    try:
        async with unit_at_center(
            broker_url,
            unique,
            tmp_path,
            data_dir=disk / "agent",
            video={"width": 192, "height": 96, "fps": 10, "keyframe_interval_s": 1},
            evidence={"enabled": True, "segment_s": 1, "min_free_bytes": 6 * 2**20},
        ) as at:
            central, agent, http, unit = at.central, at.agent, at.http, at.unit_id
            evidence = agent.evidence
            assert evidence is not None
            await wait_for(lambda: (r := central.fleet.registry.get(unit)) and r.online)  # type: ignore[union-attr]
            grant = (
                await http.post(f"/api/v1/units/{unit}/stream", json={"reason": "test"})
            ).json()
            viewer = RelayViewer("h264")
            await viewer.join(central.api_url, grant["stream_id"], grant["token"], client_tls())
            await wait_for(lambda: viewer.frames > 10, timeout=15)
            evidence.start_recording("test")
            await wait_for(lambda: evidence.recorder.segments_written >= 2, timeout=10)
            filler = disk / "filler"
            filler.write_bytes(b"\0" * (12 * 2**20))  # leaves < 6 MiB free
            state = await wait_for_state(agent, storage_full, timeout=10)
            assert state.camera.recording  # the recording is paused, not ended
            paused_at = evidence.recorder.segments_written
            frames = viewer.frames
            await asyncio.sleep(1.5)
            assert evidence.recorder.segments_written == paused_at
            assert viewer.frames >= frames + 10  # the live stream goes on, decoding
            filler.unlink()
            await wait_for_state(agent, lambda s: not storage_full(s), timeout=10)
            await wait_for(lambda: evidence.recorder.segments_written >= paused_at + 2, 10)
            evidence.stop_recording()
            await viewer.close()
        recorder = Recorder(disk / "agent" / "evidence", "x", UnitKey.generate())
        assert recorder.recover().quarantined == []
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(disk)], check=False)


async def test_a_clean_stop_while_recording_leaves_nothing_to_quarantine(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    async with running_agent(
        f"u-{unique}",
        broker_url,
        tmp_path / "agent",
        video={"width": 192, "height": 96, "fps": 10, "keyframe_interval_s": 1},
        evidence={"enabled": True, "segment_s": 5},
    ) as agent:
        evidence = agent.evidence
        assert evidence is not None
        evidence.start_recording("test")
        await wait_for(lambda: evidence.capture.frames_seen > 15, timeout=10)
    # Stopped mid-segment: the segment was finished and entered, not left half-written.
    root = tmp_path / "agent" / "evidence"
    assert not list(root.rglob("*.part"))
    (folder,) = (root / "recordings").iterdir()
    entries, _ = parse_manifest((folder / MANIFEST).read_text())
    assert len(entries) == 1 and not entries[0].final

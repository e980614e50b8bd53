"""Evidence end to end: a trigger records the pre-event seconds, segments go up to the center,
which verifies the signed chain; tampering is named exactly; cut uploads resume."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from pathlib import Path
from typing import Any

import av
import httpx

from agent.evidence.recorder import Recorder
from agent.evidence.uploader import Uploader
from firmware_bridge.sim.synthetic import SyntheticCamera
from protocol.evidence import UnitKey
from runtime.backoff import Backoff
from tests.audio_clip import write_clip_with_sound
from tests.center_tls import client_tls
from tests.helpers import running_agent, wait_for
from tests.integration.bodycam_helpers import bodycam, wait_for_async, wait_for_state
from tests.integration.center_helpers import api_client, running_central, unit_at_center

SMALL_VIDEO = {"width": 192, "height": 96, "fps": 10, "keyframe_interval_s": 1}


async def stored(http: httpx.AsyncClient, recording_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def complete() -> bool:
        answer = await http.get(f"/api/v1/evidence/{recording_id}")
        if answer.status_code != 200:
            return False
        found.update(answer.json())
        return bool(found["closed"] and all(s["stored"] for s in found["segments"]))

    await wait_for_async(complete, timeout=20)
    return found


async def test_a_trigger_records_the_seconds_before_it_and_the_center_verifies_them(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    async with (
        bodycam("CAM-E") as (camera, address),
        unit_at_center(
            broker_url,
            unique,
            tmp_path,
            video=SMALL_VIDEO,
            device={"link": address},
            evidence={"enabled": True, "pre_event_s": 3, "segment_s": 2},
        ) as at,
    ):
        central, agent, http, unit = at.central, at.agent, at.http, at.unit_id
        evidence = agent.evidence
        assert evidence is not None
        await wait_for_state(agent, lambda s: s.camera.connected)
        await wait_for(lambda: evidence.prebuffer.span_s() >= 3.2, timeout=20)
        triggered = time.time()
        assert camera.execute("trigger holster_draw")["ok"]
        await wait_for_state(agent, lambda s: s.camera.recording, timeout=5)

        async def alerted() -> bool:
            alerts = (await http.get("/api/v1/alerts", params={"unit_id": unit})).json()
            return bool(alerts) and alerts[0]["trigger"] == "trigger.holster_draw"

        await wait_for_async(alerted, timeout=5)
        # ... and the unit went live by itself.
        await wait_for_state(agent, lambda s: s.camera.streaming, timeout=10)
        recording_id = evidence.recorder.recording_id
        assert recording_id is not None
        await asyncio.sleep(2.5)
        stop = await http.post(
            f"/api/v1/units/{unit}/commands", json={"name": "recording.stop", "args": {}}
        )
        assert stop.json()["status"] == "done", stop.text
        record = await stored(http, recording_id)
        assert record["unit_id"] == unit and record["trigger"] == "trigger.holster_draw"
        verdict = (await http.get(f"/api/v1/evidence/{recording_id}/verify")).json()
        assert verdict == {"recording_id": recording_id, "ok": True, "problems": []}
        # Offloaded: nothing of it is left on the unit.
        await wait_for(
            lambda: not (evidence.recorder.recordings / recording_id).exists(), timeout=10
        )
        # The MP4 timestamps: the recording starts >= 3 s before the trigger, and goes past it.
        times = []
        for segment in record["segments"]:
            body = await http.get(f"/api/v1/evidence/{recording_id}/segments/{segment['index']}")
            assert hashlib.sha256(body.content).hexdigest() == segment["sha256"]
            path = tmp_path / segment["file"]
            path.write_bytes(body.content)
            entry_start = _entry_start(central, unit, recording_id, segment["index"])
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                assert stream.time_base is not None
                for packet in container.demux(stream):
                    if packet.size and packet.pts is not None:
                        times.append(entry_start + float(packet.pts * stream.time_base))
        assert min(times) <= triggered - 3.0
        assert max(times) >= triggered + 2.0
        status = await http.post(
            f"/api/v1/units/{unit}/commands", json={"name": "evidence.status", "args": {}}
        )
        report = status.json()["data"]
        assert report["segments_to_upload"] == 0 and report["uploaded"] == len(record["segments"])
        snapshot = await http.post(
            f"/api/v1/units/{unit}/commands", json={"name": "snapshot", "args": {}}
        )
        assert snapshot.json()["data"]["jpeg_b64"].startswith("/9j/")  # a JPEG


def _entry_start(central: Any, unit: str, recording_id: str, index: int) -> float:
    from protocol.evidence import parse_manifest

    manifest = central.evidence.root / unit / recording_id / "manifest.jsonl"
    entries, _ = parse_manifest(manifest.read_text())
    return float(entries[index].start_ts)


async def test_tampering_is_named_exactly(broker_url: str, unique: str, tmp_path: Path) -> None:
    async with (
        running_central(broker_url, unique, tmp_path) as central,
        api_client(central) as http,
    ):
        recording_id, recordings = record_clip(tmp_path / "unit", seconds=7)
        await offload(central.api_url, recordings)
        record = await stored(http, recording_id)
        assert len(record["segments"]) >= 3
        assert central.evidence is not None
        directory = central.evidence.root / "u1" / recording_id
        # One byte of one stored segment flipped.
        victim = directory / record["segments"][1]["file"]
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
        verdict = (await http.get(f"/api/v1/evidence/{recording_id}/verify")).json()
        assert not verdict["ok"]
        assert [(p["index"], p["file"], p["reason"]) for p in verdict["problems"]] == [
            (1, victim.name, "segment altered: SHA-256 differs")
        ]
        victim.write_bytes(bytes(data[: len(data) // 2]) + bytes([data[len(data) // 2] ^ 1]))
        # One manifest entry edited (its trigger rewritten).
        manifest = directory / "manifest.jsonl"
        lines = manifest.read_text().splitlines()
        lines[2] = lines[2].replace("button.record", "nothing.here")
        manifest.write_text("\n".join(lines) + "\n")
        verdict = (await http.get(f"/api/v1/evidence/{recording_id}/verify")).json()
        problems = [(p["index"], p["reason"]) for p in verdict["problems"]]
        assert (2, "bad signature") in problems
        assert [i for i, reason in problems if "SHA-256" not in reason] == [2]


def record_clip(root: Path, seconds: int) -> tuple[str, Path]:
    """`seconds` of video recorded into 1 s segments, closed; (recording id, its folder)."""
    camera = SyntheticCamera("h264", 320, 240, fps=10, keyframe_interval_s=1, bitrate=800_000)
    recorder = Recorder(root, "u1", UnitKey.generate(), segment_s=1)
    recording_id = recorder.start("button.record", "h264", 320, 240, 1000.0)
    for n in range(seconds * 10):
        for frame in camera.encode_at(n, 1000.0 + n / 10):
            recorder.write(frame)
    recorder.stop()
    return recording_id, recorder.recordings


async def offload(center_url: str, recordings: Path, chunk_bytes: int = 1 << 20) -> None:
    uploader = Uploader(
        recordings,
        center_url,
        lambda: None,
        chunk_bytes=chunk_bytes,
        backoff=Backoff(initial_s=0.01, max_s=0.05),
        verify=client_tls(),
    )
    task = asyncio.create_task(uploader.run())
    try:
        await wait_for(lambda: not any(recordings.iterdir()), timeout=60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class CuttingProxy:
    """A TCP proxy that drops the connection after a random number of bytes, `cuts` times."""

    def __init__(self, target_port: int, cuts: int, seed: int, max_bytes: int) -> None:
        self.target_port = target_port
        self.max_bytes = max_bytes
        self.cuts_left = cuts
        self.rng = random.Random(seed)
        self.cut = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        budget = self.rng.randint(100, self.max_bytes) if self.cuts_left > 0 else None

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, limit: bool) -> None:
            nonlocal budget
            try:
                while data := await src.read(16384):
                    if limit and budget is not None:
                        if len(data) >= budget:
                            dst.write(data[:budget])
                            self.cuts_left -= 1
                            self.cut += 1
                            break
                        budget -= len(data)
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                writer.close()
                upstream_writer.close()

        await asyncio.gather(
            pump(reader, upstream_writer, True), pump(upstream_reader, writer, False)
        )


async def test_uploads_cut_at_random_offsets_resume_to_byte_identical_files(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    async with (
        running_central(broker_url, unique, tmp_path) as central,
        api_client(central) as http,
    ):
        port = int(central.api_url.rsplit(":", 1)[1])
        recording_id, recordings = record_clip(tmp_path / "unit", seconds=6)
        originals = {p.name: p.read_bytes() for p in (recordings / recording_id).glob("*.mp4")}
        total = sum(len(data) for data in originals.values())
        proxy = CuttingProxy(port, cuts=10, seed=int(unique, 16), max_bytes=total // 4)
        proxy_port = await proxy.start()
        try:
            await offload(f"https://127.0.0.1:{proxy_port}", recordings, chunk_bytes=64 * 1024)
        finally:
            proxy.server.close()
        assert proxy.cut == 10
        record = await stored(http, recording_id)
        assert central.evidence is not None
        directory = central.evidence.root / "u1" / recording_id
        assert {s["file"] for s in record["segments"]} == set(originals)
        for segment in record["segments"]:
            assert (directory / segment["file"]).read_bytes() == originals[segment["file"]]
        verdict = (await http.get(f"/api/v1/evidence/{recording_id}/verify")).json()
        assert verdict["ok"], verdict


async def test_a_source_with_sound_records_its_sound_too(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    write_clip_with_sound(clip, seconds=4)
    async with running_agent(
        f"u-{unique}",
        broker_url,
        tmp_path / "agent",
        video={"source": "file", "file": str(clip)},
        evidence={"enabled": True, "pre_event_s": 2, "segment_s": 2},
    ) as agent:
        evidence = agent.evidence
        assert evidence is not None
        await wait_for(lambda: evidence.prebuffer.span_s() >= 2, timeout=20)
        evidence.start_recording("button.record")
        await wait_for(lambda: evidence.recorder.segments_written >= 2, 15)
        recording_id = evidence.stop_recording()
    folder = tmp_path / "agent" / "evidence" / "recordings" / str(recording_id)
    heard = 0
    for segment in sorted(folder.glob("*.mp4")):
        with av.open(str(segment)) as container:
            assert [s.type for s in container.streams] == ["video", "audio"]
            sound = [p for p in container.demux(container.streams.audio[0]) if p.size]
            assert sound, segment.name
            heard += len(sound)
    assert heard > 4 * 46  # 4 s and more of AAC (46.9 packets a second at 48 kHz)

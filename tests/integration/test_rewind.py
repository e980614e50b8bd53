"""Rewind end to end: a real relay worker keeps the last seconds of a stream a real aiortc
publisher sends, and hands a window of it over as a file a player reads (fragmented MP4 or
WebM, demuxed here with PyAV); the center answers it in byte ranges and audits each view
once; past the relay's seconds, the unit's stored evidence segments, which play by ranges
too, audited once a minute. Measured (printed): the mux of 60 s of 640x480, the buffer's
memory."""

from __future__ import annotations

import io
import sqlite3
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest

from agent.evidence.recorder import Recorder
from central.access.policy import Scope
from central.client_keys import add_client
from central.db.audit import Audit, AuditQuery
from central.db.engine import Database
from central.errors import Invalid, NotFound
from central.evidence.store import EvidenceStore
from central.people import Operator
from central.relay.recent import RecentBuffer
from central.relay.rewind_mux import mux_clip
from central.relay_front import RecentSpan, RelayFront
from firmware_bridge.media import VideoCodec
from firmware_bridge.sim.synthetic import SyntheticCamera
from protocol.evidence import UnitKey, parse_manifest
from protocol.upload import MANIFEST
from tests.helpers import wait_for
from tests.integration.bodycam_helpers import wait_for_async
from tests.integration.center_helpers import streaming_unit
from tests.integration.test_evidence import offload
from tests.integration.test_still import publishing, running_front

FPS = 30


@pytest.fixture
async def front() -> AsyncIterator[RelayFront]:
    async with running_front(rewind_s=30) as running:
        yield running


async def span_of_at_least(front: RelayFront, stream_id: str, seconds: float) -> RecentSpan:
    found: list[RecentSpan] = []

    async def long_enough() -> bool:
        span = await front.recent_span(stream_id)
        found[:] = [span] if span is not None else []
        return span is not None and span.end - span.start >= seconds

    await wait_for_async(long_enough, timeout=seconds + 15)
    return found[0]


def demux(data: bytes) -> tuple[str, tuple[int, int], list[Any], bytes]:
    """Codec, picture size, packets and the avcC/codec private data of a clip."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        extradata = stream.codec_context.extradata or b""
        return stream.codec_context.name, (stream.width, stream.height), packets, extradata


def duration_s(packets: list[Any]) -> float:
    first, last = packets[0], packets[-1]
    return float((last.pts - first.pts) * first.time_base)


@pytest.mark.parametrize(
    ("codec", "width", "height", "media_type"),
    [("h264", 640, 480, "video/mp4"), ("vp8", 320, 240, "video/webm")],
)
async def test_the_last_seconds_of_a_live_stream_come_back_as_a_file_a_player_reads(
    front: RelayFront, codec: VideoCodec, width: int, height: int, media_type: str
) -> None:
    camera = SyntheticCamera(codec, width, height, fps=FPS, keyframe_interval_s=1)
    async with publishing(front, "cam1", camera):
        span = await span_of_at_least(front, "cam1", 4.0)
        assert span.codec == codec and span.frames > 0
        clip = await front.rewind("cam1", span.end - 3.0, span.end)
    assert clip.media_type == media_type
    assert span.start <= clip.start <= span.end - 3.0  # from the keyframe before
    assert clip.end == span.end
    name, size, packets, extradata = demux(clip.data)
    assert name == codec and size == (width, height)
    assert packets[0].is_keyframe
    assert len(packets) == clip.frames
    # Its seconds at the rate the relay received (a busy machine's camera makes fewer than
    # 30 a second), and its timestamps span them.
    received_fps = span.frames / (span.end - span.start)
    expected = received_fps * (clip.end - clip.start)
    assert abs(len(packets) - expected) <= 0.25 * expected + 3
    assert duration_s(packets) == pytest.approx(clip.end - clip.start, abs=0.5)
    print(
        f"\n{codec}: {len(packets)} frames in {clip.end - clip.start:.2f} s ({received_fps:.1f}/s)"
    )
    if codec == "h264":
        assert clip.data[4:8] == b"ftyp" and b"moof" in clip.data and extradata


async def test_a_stream_the_relay_does_not_hold_has_no_rewind(front: RelayFront) -> None:
    assert await front.recent_span("nobody") is None
    with pytest.raises(NotFound):
        await front.rewind("nobody", time.time() - 10, time.time())
    with pytest.raises(Invalid):
        await front.rewind("../streams", 0, 1)


# ---- at the center --------------------------------------------------------------------------


def audited(database: Database, action: str, obj: str) -> list[dict[str, Any]]:
    with database.read() as tx:
        records = Audit(tx).query(AuditQuery(action=action, object=obj, limit=1000)).records
    return [dict(r.entry.detail) for r in records]


def record_recent_clip(root: Path, unit_id: str, seconds: int, ended_ago: float) -> str:
    """`seconds` of video of `unit_id` in 1 s segments, ending `ended_ago` s ago."""
    camera = SyntheticCamera("h264", 320, 240, fps=10, keyframe_interval_s=1, bitrate=400_000)
    recorder = Recorder(root, unit_id, UnitKey.generate(), segment_s=1)
    start = time.time() - ended_ago - seconds
    recording_id = recorder.start("button.record", "h264", 320, 240, start)
    for n in range(seconds * 10):
        for frame in camera.encode_at(n, start + n / 10):
            recorder.write(frame)
    recorder.stop()
    return recording_id


async def test_the_center_answers_a_rewind_in_ranges_and_audits_each_view_once(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    async with streaming_unit(broker_url, unique, tmp_path) as su:
        database, http = su.central.database, su.http
        assert database is not None and su.central.hub is not None
        stream_id, unit_id = su.grant["stream_id"], su.grant["unit_id"]
        hub = su.central.hub
        await wait_for(lambda: stream_id in hub.streams_live, timeout=10)
        sources_url = f"/api/v1/units/{unit_id}/rewind-sources"

        async def relay_holds_two_seconds() -> bool:
            relay = (await http.get(sources_url, params={"seconds": 600})).json()["relay"]
            return relay is not None and relay["end"] - relay["start"] >= 2.0

        await wait_for_async(relay_holds_two_seconds, timeout=20)
        sources = (await http.get(sources_url, params={"seconds": 600})).json()
        relay = sources["relay"]
        assert relay["stream_id"] == stream_id and relay["codec"] == "h264"
        assert sources["segments"] == []

        url = f"/api/v1/streams/{stream_id}/rewind"
        window = {"since": relay["end"] - 2.0, "until": relay["end"]}
        whole = await http.get(url, params=window)
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        assert float(whole.headers["x-rewind-end"]) <= relay["end"]
        name, size, packets, _ = demux(whole.content)
        assert name == "h264" and size == (320, 240) and packets[0].is_keyframe
        total = len(whole.content)

        part = await http.get(url, params=window, headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-1099/{total}"
        assert part.content == whole.content[100:1100]
        tail = await http.get(url, params=window, headers={"Range": "bytes=-500"})
        assert tail.status_code == 206 and tail.content == whole.content[-500:]
        beyond = await http.get(url, params=window, headers={"Range": f"bytes={total}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{total}"
        # One view of one clip, however many ranges: one record.
        records = audited(database, "streams.rewind", stream_id)
        assert len(records) == 1 and records[0]["unit_id"] == unit_id
        # The relay's own link plays; the last seconds too.
        assert (await http.get(relay["url"])).headers["content-type"] == "video/mp4"
        last = await http.get(url, params={"seconds": 2})
        assert last.status_code == 200 and demux(last.content)[2][0].is_keyframe
        assert len(audited(database, "streams.rewind", stream_id)) == 3

        # Past the relay: a unit's stored evidence, newest first, played by ranges.
        recorded_unit = f"{unit_id}-ev"
        recording_id = record_recent_clip(tmp_path / "ev", recorded_unit, 3, ended_ago=60)
        await offload(su.central.api_url, tmp_path / "ev" / "recordings")
        found = (
            await http.get(f"/api/v1/units/{recorded_unit}/rewind-sources", params={"seconds": 600})
        ).json()
        assert found["relay"] is None
        segments = found["segments"]
        assert [s["recording_id"] for s in segments] == [recording_id] * len(segments)
        assert len(segments) >= 3
        starts = [s["start"] for s in segments]
        assert starts == sorted(starts, reverse=True)
        assert all(s["media_type"] == "video/mp4" for s in segments)
        segment_url = segments[0]["url"]
        size_of = segments[0]["size"]
        for first in (0, 100, 200):
            ranged = await http.get(segment_url, headers={"Range": f"bytes={first}-{first + 99}"})
            assert ranged.status_code == 206
            assert ranged.headers["content-range"] == f"bytes {first}-{first + 99}/{size_of}"
            assert len(ranged.content) == 100
        views = audited(database, "evidence.playback", recording_id)
        assert len(views) == 1 and views[0]["index"] == segments[0]["index"]

        # Rewind is playback: a key that may only watch live is refused.
        watcher = add_client(database, Operator("tests"), "watch-only", [Scope.STREAMS_WATCH.value])
        refused = await http.get(
            url, params={"seconds": 2}, headers={"Authorization": f"Bearer {watcher}"}
        )
        assert refused.status_code == 403


def test_an_evidence_index_from_before_segment_times_gets_them_from_its_manifests(
    tmp_path: Path,
) -> None:
    recording_id = record_recent_clip(tmp_path / "unit", "u1", 3, ended_ago=30)
    recorded = tmp_path / "unit" / "recordings" / recording_id
    entries, _ = parse_manifest((recorded / MANIFEST).read_text())
    store = EvidenceStore(tmp_path / "center")
    for entry in entries:
        store.add_entry(entry)
        store.append(recording_id, entry.index, 0, (recorded / entry.file).read_bytes())
    store.close()
    with sqlite3.connect(tmp_path / "center" / "index.db") as old:
        old.execute("ALTER TABLE segments DROP COLUMN start_ts")
        old.execute("ALTER TABLE segments DROP COLUMN end_ts")
    store = EvidenceStore(tmp_path / "center")
    try:
        found = store.stored_segments("u1", 0, time.time(), 100)
    finally:
        store.close()
    assert [(s.index, s.start_ts, s.end_ts) for s in found] == [
        (e.index, e.start_ts, e.end_ts) for e in reversed(entries)
    ]


# ---- measured -------------------------------------------------------------------------------


BODYCAM_BITRATE = 2_000_000


def padded(annexb: bytes, size: int) -> bytes:
    """The access unit grown to `size` bytes with an H.264 filler NAL unit (7.3.2.7), which
    decoders skip: the test pattern compresses far better than a street scene."""
    room = size - len(annexb) - 5
    return annexb if room <= 0 else annexb + b"\x00\x00\x01\x0c" + b"\xff" * room + b"\x80"


def test_measure_the_mux_of_a_minute_of_640x480_and_the_buffers_memory() -> None:
    camera = SyntheticCamera("h264", 640, 480, fps=FPS, keyframe_interval_s=2)
    frame_bytes = BODYCAM_BITRATE // 8 // FPS
    encoded = [
        frame for n in range(60 * FPS) for frame in camera.encode_at(n, 1_700_000_000 + n / FPS)
    ]
    tracemalloc.start()
    buffer = RecentBuffer(seconds=300, max_bytes=1 << 30)
    buffer.restarted("h264")
    for frame in encoded:
        # A new bytes object per frame, as the relay makes: its memory is counted here.
        data = padded(frame.data, frame_bytes)
        buffer.add(data, frame.pts, frame.keyframe, frame.captured_at)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    payload = sum(len(frame.data) for frame in buffer.held())
    started = time.perf_counter()
    clip = mux_clip("h264", buffer.held())
    took = time.perf_counter() - started
    assert clip.frames == len(encoded)
    assert len(demux(clip.data)[2]) == len(encoded)
    print(
        f"\nrewind: 60 s of 640x480 at {FPS} fps, {BODYCAM_BITRATE / 1e6:.0f} Mbit/s "
        f"({len(encoded)} frames, {payload / 2**20:.1f} MiB of H.264): muxed into fragmented "
        f"MP4 in {took * 1000:.0f} ms ({len(clip.data) / 2**20:.1f} MiB); the buffer takes "
        f"{held / 2**20:.2f} MiB ({held / payload:.3f}x the payload; it counts "
        f"{buffer.bytes / 2**20:.2f} MiB against its bound)"
    )

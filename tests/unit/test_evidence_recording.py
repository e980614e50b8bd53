"""Pre-event buffer and the segment recorder on a real filesystem with real MP4 files."""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import av
import pytest

from agent.evidence.manager import captured_at
from agent.evidence.prebuffer import PreEventBuffer
from agent.evidence.recorder import Recorder
from firmware_bridge.filesource import FileVideoSource
from firmware_bridge.media import EncodedAudio, EncodedFrame
from firmware_bridge.sim.synthetic import SyntheticCamera
from protocol.evidence import UnitKey, parse_manifest, verify
from protocol.upload import MANIFEST
from runtime.files import sha256_file
from tests.audio_clip import write_clip_with_sound

FPS = 10


def clip(seconds: float, start: float = 1000.0, keyframe_s: float = 1.0) -> list[EncodedFrame]:
    camera = SyntheticCamera("h264", 192, 96, fps=FPS, keyframe_interval_s=keyframe_s)
    return [
        frame for n in range(int(seconds * FPS)) for frame in camera.encode_at(n, start + n / FPS)
    ]


def test_pre_event_buffer_keeps_whole_gops_covering_the_span() -> None:
    buffer = PreEventBuffer(seconds=5, max_bytes=50_000_000)
    frames = clip(20)
    for frame in frames:
        buffer.push(frame)
    kept = buffer.frames()
    assert kept[0].keyframe
    newest = frames[-1].captured_at
    assert newest - kept[0].captured_at >= 5  # at least the configured span ...
    assert newest - kept[0].captured_at < 5 + 1.0 + 1e-6  # ... and at most one GOP more
    assert kept == frames[-len(kept) :]


def test_pre_event_buffer_is_bounded_in_bytes() -> None:
    frames = clip(20)
    buffer = PreEventBuffer(seconds=30, max_bytes=sum(len(f.data) for f in frames) // 4)
    for frame in frames:
        buffer.push(frame)
    assert buffer.bytes <= buffer.max_bytes
    assert buffer.dropped_gops > 0 and buffer.frames()[0].keyframe


def test_pre_event_buffer_off_and_frames_before_a_keyframe() -> None:
    assert PreEventBuffer(0, 1000).frames() == []
    buffer = PreEventBuffer(5, 10_000_000)
    for frame in clip(3)[1:]:
        buffer.push(frame)
    assert buffer.skipped_frames == FPS - 1 and buffer.frames()[0].keyframe


def record(tmp_path: Path, frames: list[EncodedFrame], segment_s: float = 4) -> Recorder:
    recorder = Recorder(tmp_path, "u1", UnitKey.generate(), segment_s=segment_s)
    recorder.start("trigger.holster_draw", "h264", 192, 96, frames[0].captured_at)
    for frame in frames:
        recorder.write(frame)
    return recorder


def test_segments_are_cut_at_keyframes_signed_and_chained(tmp_path: Path) -> None:
    frames = clip(13)
    recorder = record(tmp_path, frames)
    recording_id = recorder.stop()
    assert recording_id is not None
    directory = tmp_path / "recordings" / recording_id
    entries, problems = parse_manifest((directory / MANIFEST).read_text())
    assert problems == [] and [e.index for e in entries] == [0, 1, 2, 3]
    assert [e.final for e in entries] == [False, False, False, True]
    hashes: dict[str, str | None] = {e.file: sha256_file(directory / e.file) for e in entries}
    assert verify(entries, hashes, recorder.key.public_b64) == []
    # Every frame is in exactly one segment, the timestamps are the capture times.
    total = 0
    for entry in entries:
        with av.open(str(directory / entry.file)) as container:
            stream = container.streams.video[0]
            packets = [p for p in container.demux(stream) if p.size]
            assert packets[0].is_keyframe
            total += len(packets)
            assert packets[-1].pts is not None and stream.time_base is not None
            last = packets[-1].pts * stream.time_base
            assert abs(float(last) - (entry.end_ts - entry.start_ts)) < 0.01
    assert total == len(frames)
    assert entries[0].start_ts == frames[0].captured_at


def test_a_crash_leaves_a_quarantined_partial_and_a_verifying_chain(tmp_path: Path) -> None:
    recorder = record(tmp_path, clip(10))
    recording_id = recorder.recording_id
    recorder.abandon()  # as if killed: the open segment never finished
    again = Recorder(tmp_path, "u1", recorder.key, segment_s=4)
    found = again.recover()
    assert found.quarantined == [f"{recording_id}-00002.mp4.part"]
    directory = tmp_path / "recordings" / str(recording_id)
    entries, _ = parse_manifest((directory / MANIFEST).read_text())
    hashes: dict[str, str | None] = {e.file: sha256_file(directory / e.file) for e in entries}
    assert len(entries) == 2 and verify(entries, hashes, recorder.key.public_b64) == []
    # The quarantined partial is still playable up to its last fragment.
    with av.open(str(tmp_path / "quarantine" / found.quarantined[0])) as container:
        assert any(p.size for p in container.demux(container.streams.video[0]))


def test_recovery_repairs_a_torn_manifest_line_and_enters_a_missed_segment(
    tmp_path: Path,
) -> None:
    recorder = record(tmp_path, clip(10))
    recording_id = str(recorder.stop())
    directory = tmp_path / "recordings" / recording_id
    manifest = directory / MANIFEST
    lines = manifest.read_text().splitlines(keepends=True)
    # The last entry was being written when the power went: half a line.
    manifest.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    found = Recorder(tmp_path, "u1", recorder.key).recover()
    assert found.torn_lines == 1 and found.entered == [f"{recording_id}-00002.mp4"]
    entries, problems = parse_manifest(manifest.read_text())
    hashes: dict[str, str | None] = {e.file: sha256_file(directory / e.file) for e in entries}
    assert problems == [] and verify(entries, hashes, recorder.key.public_b64) == []


@pytest.mark.parametrize("codec", ["vp8"])
def test_vp8_goes_to_webm(tmp_path: Path, codec: str) -> None:
    camera = SyntheticCamera("vp8", 192, 96, fps=FPS, keyframe_interval_s=1)
    frames = [f for n in range(30) for f in camera.encode_at(n, 1000 + n / FPS)]
    recorder = Recorder(tmp_path, "u1", UnitKey.generate(), segment_s=10)
    recorder.start("button.record", "vp8", 192, 96, 1000)
    for frame in frames:
        recorder.write(frame)
    recording_id = str(recorder.stop())
    files = sorted((tmp_path / "recordings" / recording_id).glob("*.webm"))
    with av.open(str(files[0])) as container:
        assert len([p for p in container.demux(container.streams.video[0]) if p.size]) == 30


async def test_sound_is_buffered_and_recorded_with_the_pictures(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_clip_with_sound(clip, seconds=6)
    source = FileVideoSource(clip, loop=False)
    assert source.audio is not None and source.audio.codec == "aac"
    sound: list[EncodedAudio] = []
    source.audio_sink = sound.append
    buffer = PreEventBuffer(seconds=2, max_bytes=50_000_000)
    pictures = []
    async for frame in source.frames():
        pictures.append(frame)
        buffer.push(frame)
        while sound:
            buffer.push_audio(sound.pop(0))
    kept, heard = buffer.frames(), buffer.audio()
    assert heard and heard[0].captured_at >= kept[0].captured_at  # the same span
    recorder = Recorder(tmp_path / "evidence", "u1", UnitKey.generate(), segment_s=10)
    recorder.start("test", "h264", 192, 96, kept[0].captured_at, source.audio)
    video: list[EncodedFrame | EncodedAudio] = list(kept)
    audio_in: list[EncodedFrame | EncodedAudio] = list(heard)
    for item in heapq.merge(video, audio_in, key=captured_at):
        if isinstance(item, EncodedFrame):
            recorder.write(item)
        else:
            recorder.write_audio(item)
    recording_id = str(recorder.stop())
    (segment,) = (tmp_path / "evidence" / "recordings" / recording_id).glob("*.mp4")
    with av.open(str(segment)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        audio = container.streams.audio[0]
        packets = [p for p in container.demux(audio) if p.size]
        assert len(packets) == len(heard)
        decoder: Any = audio.codec_context
        assert sum(f.samples for p in packets for f in decoder.decode(p)) > 0
        assert audio.time_base is not None and packets[-1].pts is not None
        last_s = float(packets[-1].pts * audio.time_base)
        span = kept[-1].captured_at - kept[0].captured_at
        assert abs(last_s - span) < 0.3  # sound runs as long as the pictures

"""Video sources: the pattern survives encoding; files pass through without re-encoding."""

import asyncio
import time
from pathlib import Path

import av
import pytest

from firmware_bridge.filesource import FileSourceError, FileVideoSource
from firmware_bridge.media import EncodedFrame, VideoCodec
from firmware_bridge.sim.pattern import PatternRenderer, Stamp, encode_stamp, read_stamp
from firmware_bridge.sim.synthetic import SyntheticCamera


def luma(frame: av.VideoFrame) -> bytes:
    plane = frame.planes[0]
    data = bytes(plane)
    return b"".join(
        data[r * plane.line_size : r * plane.line_size + frame.width] for r in range(frame.height)
    )


def test_stamp_round_trip_and_damage_is_detected() -> None:
    r = PatternRenderer(320, 240)
    y, _, _ = r.render(12345, 1_795_000_000_123)
    assert read_stamp(y, 320, 240) == Stamp(12345, 1_795_000_000_123)
    damaged = bytearray(y)
    damaged[8 * 320 + 3] = 255 - damaged[8 * 320 + 3]
    damaged[8 * 320 : 8 * 320 + 320] = bytes(320)
    assert read_stamp(bytes(damaged), 320, 240) is None
    assert len(encode_stamp(Stamp(1, 2))) == 96


def test_pattern_rejects_odd_sizes() -> None:
    with pytest.raises(ValueError):
        PatternRenderer(321, 240)


async def take(source: object, n: int) -> list[EncodedFrame]:
    frames: list[EncodedFrame] = []
    async for frame in source.frames():  # type: ignore[attr-defined]
        frames.append(frame)
        if len(frames) == n:
            break
    return frames


@pytest.mark.parametrize("codec", ["h264", "vp8"])
async def test_synthetic_camera_stamps_survive_coding(codec: VideoCodec) -> None:
    camera = SyntheticCamera(codec, 320, 240, fps=30, keyframe_interval_s=1)
    started = time.monotonic()
    frames = await take(camera, 45)
    elapsed = time.monotonic() - started
    assert frames[0].keyframe and sum(f.keyframe for f in frames) >= 2
    assert [f.pts for f in frames] == sorted(f.pts for f in frames)
    assert elapsed >= 44 / 30 * 0.9  # paced in real time
    decoder = av.CodecContext.create(codec, "r")
    stamps = [
        read_stamp(luma(pic), 320, 240) for f in frames for pic in decoder.decode(av.Packet(f.data))
    ]
    assert [s.frame_no for s in stamps if s] == list(range(45))
    if codec == "h264":
        assert frames[0].data.startswith(b"\x00\x00\x00\x01")


async def test_keyframe_on_request() -> None:
    camera = SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=60)
    count = 0
    async for frame in camera.frames():
        count += 1
        if count == 5:
            assert not frame.keyframe
            camera.request_keyframe()
        if count == 6:
            assert frame.keyframe
            break


def write_file(path: Path, codec: str, frames: int = 20) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264" if codec == "h264" else "libvpx", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        renderer = PatternRenderer(320, 240)
        for n in range(frames):
            frame = av.VideoFrame(320, 240, "yuv420p")
            for plane, data in zip(frame.planes, renderer.render(n, n), strict=True):
                plane.update(data)
            frame.pts = n
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.mark.parametrize(("codec", "suffix"), [("h264", "mp4"), ("vp8", "webm")])
async def test_file_source_passes_packets_through(tmp_path: Path, codec: str, suffix: str) -> None:
    path = tmp_path / f"clip.{suffix}"
    write_file(path, codec)
    source = FileVideoSource(path, loop=True)
    assert source.codec == codec and (source.width, source.height) == (320, 240)
    frames = await asyncio.wait_for(take(source, 30), 10)
    assert frames[20].pts > frames[19].pts  # continuous across the loop
    decoder = av.CodecContext.create(codec, "r")
    numbers = [
        s.frame_no
        for f in frames
        for pic in decoder.decode(av.Packet(f.data))
        if (s := read_stamp(luma(pic), 320, 240))
    ]
    assert numbers[:20] == list(range(20))
    # The file's keyframes are marked as such (the recorder and pre-event buffer rely on it).
    assert frames[0].keyframe and frames[20].keyframe
    if codec == "h264":
        assert frames[0].data.startswith(b"\x00\x00\x00\x01")  # Annex-B for RTP


def test_file_source_refuses_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(FileSourceError):
        FileVideoSource(bad)


def test_loopback_relay_drops_other_candidates() -> None:
    from central.relay.sdp import loopback_candidates_only

    sdp = (
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        "a=candidate:1 1 udp 2122260223 192.168.1.20 50000 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host\r\n"
        "a=candidate:3 1 udp 2122260223 abcd.local 50002 typ host\r\n"
    )
    kept = loopback_candidates_only(sdp)
    assert "127.0.0.1" in kept and "192.168" not in kept and ".local" not in kept
    assert kept.startswith("v=0\r\nm=video")

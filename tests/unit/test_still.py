"""Stills: the latest keyframe decoded into a JPEG, its size read from its own headers
first, and at a worker one still per stream at a time, off the event loop."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from collections.abc import AsyncIterator

import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import given
from hypothesis import strategies as st

from central.errors import NotFound, TooLarge, Unavailable
from central.relay import stills
from central.relay.fanout import StreamFanout
from central.relay.keyframe_jpeg import keyframe_jpeg
from central.relay.keyframe_size import TruncatedHeader, keyframe_size
from central.relay.session import Relay, Stream
from central.relay.stills import Stills
from firmware_bridge.media import VideoCodec
from firmware_bridge.sim.synthetic import SyntheticCamera

NOW = 1000.0


def keyframe_of(codec: VideoCodec, width: int, height: int) -> bytes:
    """The first frame the simulator's own encoder makes: a keyframe."""
    frame = SyntheticCamera(codec, width, height).encode_at(0, 0.0)[0]
    assert frame.keyframe
    return frame.data


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    decoder = av.CodecContext.create("mjpeg", "r")
    pictures = decoder.decode(av.Packet(jpeg)) or decoder.decode(None)
    return pictures[0].width, pictures[0].height


def x264_keyframe(width: int, height: int, pixel_format: str, params: str) -> bytes:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, pixel_format
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"x264-params": params} if params else {}
    picture = av.VideoFrame(width, height, pixel_format)
    for plane in picture.planes:
        plane.update(bytes([100]) * plane.buffer_size)
    picture.pts = 0
    return bytes([*encoder.encode(picture), *encoder.encode(None)][0])


# ---- the decode ---------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "width", "height"), [("h264", 1280, 720), ("vp8", 320, 240)])
def test_a_keyframe_becomes_a_jpeg_of_its_size(codec: VideoCodec, width: int, height: int) -> None:
    jpeg = keyframe_jpeg(codec, keyframe_of(codec, width, height))
    assert jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")
    assert jpeg_size(jpeg) == (width, height)


def test_decode_time_of_one_720p_keyframe() -> None:
    """Measured once and printed, never asserted."""
    keyframe = keyframe_of("h264", 1280, 720)
    started = time.perf_counter()
    keyframe_jpeg("h264", keyframe)
    took = time.perf_counter() - started
    print(f"720p H.264 keyframe ({len(keyframe)} B) -> JPEG: {1000 * took:.1f} ms")


@pytest.mark.parametrize(
    "garbage",
    [b"", b"garbage", b"\x00\x00\x01\x65" + b"\xaa" * 200, b"\x00\x00\x01\x67\x42"],
)
def test_garbage_is_unavailable_not_a_crash(garbage: bytes) -> None:
    with pytest.raises(Unavailable):
        keyframe_jpeg("h264", garbage)
    with pytest.raises(Unavailable):
        keyframe_jpeg("vp8", garbage)


def test_a_sound_header_over_a_broken_picture_is_unavailable() -> None:
    keyframe = keyframe_of("vp8", 320, 240)
    with pytest.raises(Unavailable):
        keyframe_jpeg("vp8", keyframe[:10] + b"\xff" * 40)


def test_a_codec_without_stills_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        keyframe_jpeg("av1", b"\x00")


def test_pictures_past_4096_are_refused_before_decoding() -> None:
    with pytest.raises(TooLarge, match="4098x16"):
        keyframe_jpeg("h264", x264_keyframe(4098, 16, "yuv420p", ""))
    # A second SPS in the access unit counts too: the picture parameter set may name it.
    two_sets = x264_keyframe(16, 64, "yuv420p", "") + x264_keyframe(4098, 16, "yuv420p", "")
    assert keyframe_size("h264", two_sets) == (4098, 64)
    with pytest.raises(TooLarge):
        keyframe_jpeg("h264", two_sets)
    vp8_header = b"\x00\x00\x00" + b"\x9d\x01\x2a" + (5000).to_bytes(2, "little") * 2
    with pytest.raises(TooLarge, match="5000x5000"):
        keyframe_jpeg("vp8", vp8_header + b"\x00" * 100)


# ---- the size a keyframe announces --------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "pixel_format", "params"),
    [
        (642, 362, "yuv420p", ""),  # cropped from whole macroblocks
        (642, 362, "yuv444p", "cqm=jvt"),  # High 4:4:4, scaling matrices
        (646, 366, "yuv422p", "interlaced=1"),  # fields: the height counts map units
        (640, 480, "gray", "interlaced=1:cqm=jvt"),  # monochrome
    ],
)
def test_h264_size_is_read_from_the_sps(
    width: int, height: int, pixel_format: str, params: str
) -> None:
    assert keyframe_size("h264", x264_keyframe(width, height, pixel_format, params)) == (
        width,
        height,
    )


def test_sizes_of_the_simulators_keyframes_and_what_says_none() -> None:
    assert keyframe_size("h264", keyframe_of("h264", 1920, 1080)) == (1920, 1080)
    assert keyframe_size("vp8", keyframe_of("vp8", 320, 240)) == (320, 240)
    assert keyframe_size("vp8", b"\x01" + b"\x00" * 20) is None  # an interframe
    assert keyframe_size("h264", b"\x00\x00\x01\x65\x88") is None
    with pytest.raises(TruncatedHeader):
        keyframe_size("h264", b"\x00\x00\x00\x01\x67\x64\x00")


@given(st.binary(max_size=64))
def test_any_sps_bytes_give_a_size_or_a_truncated_header(payload: bytes) -> None:
    try:
        size = keyframe_size("h264", b"\x00\x00\x01\x67" + payload)
    except TruncatedHeader:
        return
    assert size is None or min(size) > 0


# ---- one still per stream at a time, at a worker -------------------------------------------


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    relay = Relay(RTCConfiguration(), clock=lambda: NOW)
    yield relay
    for stream in relay.streams.values():
        if stream.publisher is not None:
            await stream.publisher.close()


def live_stream(relay: Relay, stream_id: str, fanout: StreamFanout) -> Stream:
    stream = Stream(stream_id, fanout, NOW, codec="vp8", publisher=RTCPeerConnection())
    stream.last_media = NOW
    relay.streams[stream_id] = stream
    return stream


async def test_stills_asked_together_share_one_decode(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    fanout = StreamFanout(lambda: None)
    fanout.publish(keyframe_of("vp8", 320, 240), 0, True, NOW)
    live_stream(relay, "s1", fanout)
    release = threading.Event()
    decodes: list[bytes] = []

    def slow_decode(codec: str, keyframe: bytes) -> bytes:
        decodes.append(keyframe)
        release.wait(10)
        return keyframe_jpeg(codec, keyframe)

    monkeypatch.setattr(stills, "keyframe_jpeg", slow_decode)
    at = Stills(relay, lambda: NOW)
    first = asyncio.create_task(at.jpeg("s1"))
    while not decodes:  # noqa: ASYNC110 (the decode runs in a thread)
        await asyncio.sleep(0.01)
    second = asyncio.create_task(at.jpeg("s1"))
    await asyncio.sleep(0)
    release.set()
    assert await first == await second
    assert len(decodes) == 1
    assert jpeg_size(await first) == (320, 240)
    # Once answered, the next request decodes anew.
    await at.jpeg("s1")
    assert len(decodes) == 2


async def test_a_stream_without_a_keyframe_is_asked_for_one(relay: Relay) -> None:
    keyframe = keyframe_of("vp8", 320, 240)
    asked: list[float] = []

    def publisher_answers() -> None:
        asked.append(NOW)
        asyncio.get_running_loop().call_soon(fanout.publish, keyframe, 3000, True, NOW)

    fanout = StreamFanout(publisher_answers)
    fanout.publish(b"\x01interframe", 0, False, NOW)
    live_stream(relay, "s2", fanout)
    assert jpeg_size(await Stills(relay, lambda: NOW).jpeg("s2")) == (320, 240)
    assert asked == [NOW]


async def test_not_live_or_no_keyframe_in_time_is_not_found(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stills, "KEYFRAME_WAIT_S", 0.1)
    at = Stills(relay, lambda: NOW)
    with pytest.raises(NotFound, match="not live"):
        await at.jpeg("nobody")
    stream = live_stream(relay, "s3", StreamFanout(lambda: None))
    with pytest.raises(NotFound, match="no keyframe"):
        await at.jpeg("s3")
    stream.last_media = NOW - 10
    with pytest.raises(NotFound, match="not live"):
        await at.jpeg("s3")

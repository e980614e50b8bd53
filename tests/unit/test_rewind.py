"""Rewind's pure parts: the relay's recent buffer (bounds, keyframe start, time window, its
timeline), windows of it muxed into files a player reads, the center's clip cache and
its byte ranges."""

from __future__ import annotations

import io
from itertools import pairwise
from typing import Any, cast

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.errors import NotFound, Unavailable
from central.relay.clip_cache import ClipCache, RangeNotSatisfiable, byte_range
from central.relay.recent import (
    FRAME_OVERHEAD_BYTES,
    RTP_WRAP,
    RecentBudget,
    RecentBuffer,
    RecentFrame,
)
from central.relay.rewind_models import Clip
from central.relay.rewind_mux import mux_clip
from firmware_bridge.media import VideoCodec
from firmware_bridge.sim.synthetic import SyntheticCamera
from runtime.media import CLOCK_RATE

FPS = 30
TICK = CLOCK_RATE // FPS
T0 = 1_700_000_000.0


def feed(buffer: RecentBuffer, seconds: float, gop_s: float = 1.0, size: int = 100) -> float:
    """`seconds` of 30 fps frames from T0, a keyframe every `gop_s`; the last arrival."""
    gop = round(gop_s * FPS)
    at = T0
    for n in range(round(seconds * FPS)):
        at = T0 + n / FPS
        buffer.add(bytes(size), n * TICK, n % gop == 0, at)
    return at


def check_invariants(buffer: RecentBuffer) -> None:
    frames = buffer.held()
    assert buffer.bytes == sum(f.cost for f in frames) <= buffer.max_bytes
    assert buffer.frames == len(frames)
    if frames:
        assert frames[0].keyframe
        assert all(a.ts < b.ts for a, b in pairwise(frames))
        horizon = frames[-1].at - buffer.seconds
        # Every GOP but the oldest starts inside the window: none is kept longer than needed.
        starts = [f.at for f in frames if f.keyframe]
        assert all(start > horizon for start in starts[1:])


# ---- the buffer -----------------------------------------------------------------------------


def test_it_holds_the_last_seconds_from_the_keyframe_that_covers_them() -> None:
    buffer = RecentBuffer(seconds=10, max_bytes=10**9)
    last = feed(buffer, 25, gop_s=2)
    span = buffer.span
    assert span is not None
    assert last - 12 < span[0] <= last - 10  # the GOP that covers the window's start
    assert span[1] == last
    assert buffer.held()[0].keyframe
    check_invariants(buffer)


def test_frames_before_the_first_keyframe_are_not_kept() -> None:
    buffer = RecentBuffer(seconds=10, max_bytes=10**9)
    buffer.add(b"p", 0, False, T0)
    buffer.add(b"p", TICK, False, T0 + 0.03)
    assert buffer.span is None and buffer.skipped == 2
    buffer.add(b"k", 2 * TICK, True, T0 + 0.06)
    assert [f.data for f in buffer.held()] == [b"k"]


def test_the_byte_bound_evicts_whole_gops_from_the_front() -> None:
    cost = 1000 + FRAME_OVERHEAD_BYTES
    buffer = RecentBuffer(seconds=300, max_bytes=100 * cost)
    feed(buffer, 20, gop_s=1, size=1000)
    assert buffer.bytes <= 100 * cost
    assert buffer.frames == 90  # three whole GOPs of 30
    assert buffer.gops_given_up > 0
    check_invariants(buffer)


def test_a_gop_larger_than_the_bound_is_dropped_and_the_next_keyframe_awaited() -> None:
    buffer = RecentBuffer(seconds=300, max_bytes=10 * (100 + FRAME_OVERHEAD_BYTES))
    feed(buffer, 1, gop_s=10)  # one GOP of 30 frames, never complete within the bound
    assert buffer.bytes <= buffer.max_bytes
    buffer.add(b"k" * 100, 40 * TICK, True, T0 + 2)
    assert buffer.held()[0].keyframe


def test_after_a_loss_it_waits_for_a_keyframe_and_keeps_what_came_before() -> None:
    buffer = RecentBuffer(seconds=300, max_bytes=10**9)
    buffer.add(b"k", 0, True, T0)
    buffer.add(b"p1", TICK, False, T0 + 1 / FPS)
    buffer.lost()
    buffer.add(b"p2", 5 * TICK, False, T0 + 5 / FPS)
    buffer.add(b"k2", 6 * TICK, True, T0 + 6 / FPS)
    assert [f.data for f in buffer.held()] == [b"k", b"p1", b"k2"]
    # The hole stays a hole on the timeline.
    assert [f.ts for f in buffer.held()] == [0, TICK, 6 * TICK]


def test_its_timeline_follows_rtp_across_a_wrap_and_arrival_across_a_restart() -> None:
    buffer = RecentBuffer(seconds=300, max_bytes=10**9)
    buffer.restarted("h264")
    buffer.add(b"k", RTP_WRAP - TICK, True, T0)
    buffer.add(b"p", 0, False, T0 + 0.05)  # wrapped: one frame later, not 13 hours earlier
    buffer.restarted("h264")  # a new publisher: its timestamps start anywhere
    buffer.add(b"k", 123_456_789, True, T0 + 3.05)
    # A timestamp that disagrees with the arrival by minutes is not believed.
    buffer.add(b"p", 123_456_789 + 600 * CLOCK_RATE, False, T0 + 3.1)
    restart = TICK + 3 * CLOCK_RATE
    assert [f.ts for f in buffer.held()] == [0, TICK, restart, restart + CLOCK_RATE // 20]


def test_a_publisher_with_another_codec_starts_the_buffer_afresh() -> None:
    buffer = RecentBuffer(seconds=300, max_bytes=10**9)
    buffer.restarted("h264")
    feed(buffer, 2)
    buffer.restarted("h264")
    assert buffer.frames == 60
    buffer.restarted("vp8")
    assert buffer.frames == 0 and buffer.codec == "vp8"


def test_the_workers_budget_takes_from_the_stream_holding_most() -> None:
    cost = 100 + FRAME_OVERHEAD_BYTES
    budget = RecentBudget(max_bytes=150 * cost)
    big = RecentBuffer(seconds=300, max_bytes=10**9, budget=budget)
    small = RecentBuffer(seconds=300, max_bytes=10**9, budget=budget)
    feed(small, 1)
    feed(big, 5)
    assert budget.bytes == big.bytes + small.bytes <= budget.max_bytes
    assert small.frames == 30  # untouched
    big.close()
    assert budget.bytes == small.bytes and budget.buffers == [small]


def test_a_window_starts_at_the_keyframe_at_or_before_its_start() -> None:
    buffer = RecentBuffer(seconds=300, max_bytes=10**9)
    last = feed(buffer, 10, gop_s=2)
    frames = buffer.window(T0 + 5.0, T0 + 7.5)
    assert frames[0].keyframe and frames[0].at == T0 + 4.0
    assert frames[-1].at <= T0 + 7.5 < frames[-1].at + 2 / FPS
    assert buffer.window(T0 - 100, last) == buffer.held()
    assert buffer.window(T0 - 100, T0 - 50) == []


OPS = st.lists(
    st.tuples(
        st.integers(0, 2),  # which stream
        st.sampled_from(["frame", "key", "lost", "restart", "vp8"]),
        st.integers(0, 4000),  # payload bytes
        st.floats(0, 3),  # seconds since the stream's last frame
    ),
    max_size=300,
)


@given(OPS, st.floats(0.5, 30), st.integers(1, 40_000), st.integers(1, 80_000))
def test_bounds_hold_and_every_buffer_starts_at_a_keyframe(
    ops: list[tuple[int, str, int, float]], seconds: float, per_stream: int, per_worker: int
) -> None:
    budget = RecentBudget(per_worker)
    buffers = [RecentBuffer(seconds, per_stream, budget) for _ in range(3)]
    clocks = [T0] * 3
    for index, op, size, step in ops:
        buffer = buffers[index]
        clocks[index] += step
        if op == "lost":
            buffer.lost()
        elif op in ("restart", "vp8"):
            buffer.restarted("vp8" if op == "vp8" else "h264")
        else:
            pts = round(clocks[index] * CLOCK_RATE) % RTP_WRAP
            buffer.add(bytes(size), pts, op == "key", clocks[index])
        for each in buffers:
            check_invariants(each)
        assert budget.bytes == sum(each.bytes for each in buffers) <= budget.max_bytes
    if ops:
        buffers[0].close()
        assert budget.bytes == buffers[1].bytes + buffers[2].bytes


@given(st.floats(0, 12), st.floats(0, 12))
def test_any_window_starts_at_a_keyframe_and_covers_its_start(start: float, length: float) -> None:
    buffer = RecentBuffer(seconds=300, max_bytes=10**9)
    feed(buffer, 10, gop_s=1.5)
    since, until = T0 + start, T0 + start + length
    frames = buffer.window(since, until)
    if not frames:
        assert until < T0
        return
    assert frames[0].keyframe
    assert frames[0].at <= max(since, T0)
    assert all(f.at <= until for f in frames)
    held = buffer.held()
    first = held.index(frames[0])
    assert held[first : first + len(frames)] == frames  # contiguous, nothing left out


# ---- muxing a window ------------------------------------------------------------------------


def recent_frames(
    codec: str, seconds: float, width: int = 320, height: int = 240
) -> list[RecentFrame]:
    camera = SyntheticCamera(cast(VideoCodec, codec), width, height, FPS, keyframe_interval_s=1)
    buffer = RecentBuffer(seconds=300, max_bytes=10**9)
    buffer.restarted(codec)
    for n in range(round(seconds * FPS)):
        for frame in camera.encode_at(n, T0 + n / FPS):
            buffer.add(frame.data, frame.pts, frame.keyframe, frame.captured_at)
    return buffer.held()


def demuxed(clip: Clip) -> tuple[str, tuple[int, int], list[Any], float]:
    with av.open(io.BytesIO(clip.data), "r") as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        first, last = packets[0].pts, packets[-1].pts
        assert stream.time_base is not None and first is not None and last is not None
        span = float((last - first) * stream.time_base)
        return stream.codec_context.name, (stream.width, stream.height), packets, span


@pytest.mark.parametrize(("codec", "media_type"), [("h264", "video/mp4"), ("vp8", "video/webm")])
def test_a_window_is_remuxed_into_a_file_that_starts_at_a_keyframe(
    codec: str, media_type: str
) -> None:
    frames = recent_frames(codec, 2.0)
    clip = mux_clip(codec, frames)
    assert clip.media_type == media_type and clip.frames == len(frames) == 60
    assert (clip.start, clip.end) == (frames[0].at, frames[-1].at)
    name, size, packets, span = demuxed(clip)
    assert name == codec and size == (320, 240)
    assert len(packets) == 60 and packets[0].is_keyframe
    assert span == pytest.approx(59 / FPS, abs=0.002)
    # Pass-through: the camera's bytes, not a new encoding.
    if codec == "vp8":
        assert bytes(packets[1]) == frames[1].data


def test_h264_goes_into_fragmented_mp4_with_a_fragment_per_keyframe() -> None:
    clip = mux_clip("h264", recent_frames("h264", 3.0))
    assert clip.data[4:8] == b"ftyp"
    assert clip.data.count(b"moof") == 3 and b"avcC" in clip.data


def test_nothing_to_mux_or_no_container_is_refused() -> None:
    with pytest.raises(NotFound):
        mux_clip("h264", [])
    with pytest.raises(Unavailable):
        mux_clip("av1", [RecentFrame(b"x", 0, True, T0)])
    with pytest.raises(Unavailable):
        mux_clip("h264", [RecentFrame(b"\x00\x00\x01\x65garbage", 0, True, T0)])


# ---- the center's clips and ranges --------------------------------------------------------


def clip_of(size: int) -> Clip:
    return Clip(bytes(size), "video/mp4", T0, T0 + 1, 30)


def test_a_clip_is_kept_while_it_is_read_and_within_its_byte_bound() -> None:
    cache = ClipCache(max_bytes=250, keep_s=60)
    cache.put("a", clip_of(100), now=0)
    cache.put("b", clip_of(100), now=1)
    assert cache.get("a", now=50) is not None  # read: kept longer, and newest
    cache.put("c", clip_of(100), now=51)  # over the bound: "b", the least recently read, goes
    assert cache.get("b", now=52) is None and cache.bytes == 200
    assert cache.get("a", now=109) is not None
    assert cache.get("c", now=200) is None and cache.bytes == 0
    cache.put("huge", clip_of(300), now=200)
    assert cache.get("huge", now=200) is None


def test_each_viewer_of_a_kept_clip_is_counted_once() -> None:
    cache = ClipCache(max_bytes=1000, keep_s=60)
    cache.put("a", clip_of(10), now=0)
    assert cache.first_view("a", "alice") and not cache.first_view("a", "alice")
    assert cache.first_view("a", "bob")
    cache.forget_view("a", "bob")
    assert cache.first_view("a", "bob")
    assert cache.first_view("not kept", "alice") and cache.first_view("not kept", "alice")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-", (0, 999)),
        ("bytes=100-199", (100, 199)),
        ("bytes=900-5000", (900, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=0-1,5-9", None),  # several ranges: answered whole
        ("items=0-9", None),
        ("bytes=9-1", None),
        ("bytes=x-y", None),
    ],
)
def test_a_range_header_is_read_as_rfc_9110_says(
    header: str | None, expected: tuple[int, int] | None
) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=-0", "bytes=5000-6000"])
def test_a_range_past_the_end_is_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 1000)

from central.relay.fanout import KEYFRAME_REQUEST_INTERVAL_S, RelayFrame, StreamFanout, ViewerQueue


def drain(viewer: ViewerQueue) -> list[RelayFrame]:
    out = []
    while (frame := viewer.pop()) is not None:
        out.append(frame)
    return out


def test_joining_viewer_gets_the_gop_ending_at_the_live_edge() -> None:
    requests: list[float] = []
    fan = StreamFanout(lambda: requests.append(1))
    for n in range(10):
        fan.publish(b"k" if n in (0, 5) else b"p", n * 3000, n in (0, 5), now=0.0)
    viewer = fan.add_viewer(now=1.0)
    burst = drain(viewer)
    assert [f.data for f in burst] == [b"k", b"p", b"p", b"p", b"p"]
    assert [f.pts for f in burst] == [27000 - 4, 27000 - 3, 27000 - 2, 27000 - 1, 27000]
    fan.publish(b"p", 30000, False, now=1.0)
    assert drain(viewer)[0].pts == 30000
    assert requests == []


def test_viewer_without_cache_waits_for_a_keyframe_and_asks_once() -> None:
    requests: list[int] = []
    fan = StreamFanout(lambda: requests.append(1))
    viewer = fan.add_viewer(now=0.0)
    fan.add_viewer(now=0.1)
    fan.publish(b"p", 0, False, now=0.2)
    assert drain(viewer) == [] and requests == [1]
    fan.publish(b"k", 3000, True, now=0.3)
    fan.publish(b"p", 6000, False, now=0.3)
    assert [f.data for f in drain(viewer)] == [b"k", b"p"]


def test_slow_viewer_is_flushed_to_the_next_keyframe() -> None:
    requests: list[float] = []
    fan = StreamFanout(lambda: requests.append(1), queue_frames=4)
    fan.publish(b"k", 0, True, now=0.0)
    viewer = fan.add_viewer(now=0.0)
    slow_start = len(drain(viewer))
    for n in range(1, 8):
        fan.publish(b"p%d" % n, n * 3000, False, now=float(n))
    assert slow_start == 1 and requests == [1]
    assert drain(viewer) == []  # everything partial was dropped
    fan.publish(b"k2", 30000, True, now=10.0)
    assert [f.data for f in drain(viewer)] == [b"k2"]
    assert viewer.dropped > 0


def test_keyframe_requests_are_rate_limited() -> None:
    requests: list[int] = []
    fan = StreamFanout(lambda: requests.append(1))
    for t in (0.0, 0.1, 0.5, KEYFRAME_REQUEST_INTERVAL_S + 0.01):
        fan.keyframe_wanted(t)
    assert len(requests) == 2


def test_timeline_is_continuous_across_a_publisher_restart() -> None:
    fan = StreamFanout(lambda: None)
    viewer = fan.add_viewer(now=0.0)
    for n in range(3):
        fan.publish(b"k" if n == 0 else b"p", 1_000_000 + n * 3000, n == 0, now=0.0)
    fan.publisher_restarted()
    for n in range(3):
        fan.publish(b"k" if n == 0 else b"p", n * 3000, n == 0, now=1.0)  # restarts at 0
    pts = [f.pts for f in drain(viewer)]
    assert pts == sorted(pts) and len(set(pts)) == 6
    assert pts[3] - pts[2] == 3000


def rtp(seq: int, ts: int, marker: bool) -> object:
    from aiortc.rtp import RtpPacket

    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts, marker=marker)
    packet._data = bytes([seq % 256])  # type: ignore[attr-defined]
    return packet


def test_jitter_buffer_releases_on_marker_and_skips_a_dead_hole() -> None:
    from central.relay.passthrough import HOLE_SKIP_PACKETS, MarkerJitterBuffer

    buffer = MarkerJitterBuffer(capacity=512, is_video=True)
    assert buffer.add(rtp(0, 0, False))[1] is None  # type: ignore[arg-type]
    pli, frame = buffer.add(rtp(1, 0, True))  # type: ignore[arg-type]
    assert frame is not None and frame.data == b"\x00\x01" and not pli  # at the marker
    # A cut: packets 2..9 never come. Complete frames pile up behind the hole.
    seq, ts, released = 10, 3000, []
    while seq < 10 + HOLE_SKIP_PACKETS + 4:
        buffer.add(rtp(seq, ts, False))  # type: ignore[arg-type]
        pli, frame = buffer.add(rtp(seq + 1, ts, True))  # type: ignore[arg-type]
        if frame is not None:
            released.append((pli, frame))
        seq, ts = seq + 2, ts + 3000
    assert released, "the buffer stalled behind the hole"
    pli, first = released[0]
    assert pli and getattr(first, "after_loss", False)

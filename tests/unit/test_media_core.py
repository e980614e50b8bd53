"""The shared media core: GOP cache, keyframe-gated queue, keyframe detection."""

from dataclasses import dataclass

from runtime.media import GopCache, KeyframeQueue, is_keyframe, nal_types


@dataclass(frozen=True)
class Frame:
    name: str
    keyframe: bool = False


def test_the_cache_holds_the_gop_in_progress() -> None:
    cache: GopCache[Frame] = GopCache(max_frames=3)
    cache.add(Frame("p0"))
    assert cache.frames == []  # nothing before the first keyframe
    cache.add(Frame("k1", keyframe=True))
    cache.add(Frame("p1"))
    assert [f.name for f in cache.frames] == ["k1", "p1"]
    cache.add(Frame("k2", keyframe=True))
    assert [f.name for f in cache.frames] == ["k2"]


def test_a_gop_too_long_to_replay_is_dropped_until_the_next_keyframe() -> None:
    cache: GopCache[Frame] = GopCache(max_frames=3)
    for frame in (Frame("k", keyframe=True), Frame("p1"), Frame("p2")):
        cache.add(frame)
    assert len(cache.frames) == 3
    cache.add(Frame("p3"))
    cache.add(Frame("p4"))
    assert cache.frames == []
    cache.add(Frame("k2", keyframe=True))
    assert [f.name for f in cache.frames] == ["k2"]


def test_the_queue_starts_at_a_keyframe() -> None:
    ready: list[int] = []
    queue: KeyframeQueue[Frame] = KeyframeQueue(4, on_ready=lambda: ready.append(1))
    assert queue.offer(Frame("p")) is False
    queue.offer(Frame("k", keyframe=True))
    queue.offer(Frame("p1"))
    assert (queue.dropped, queue.flushed, len(ready)) == (1, 0, 2)
    assert [queue.pop(), queue.pop(), queue.pop()] == [
        Frame("k", keyframe=True),
        Frame("p1"),
        None,
    ]
    assert queue.sent == 2


def test_a_full_queue_is_flushed_to_the_next_keyframe() -> None:
    queue: KeyframeQueue[Frame] = KeyframeQueue(2)
    queue.offer(Frame("k", keyframe=True))
    queue.offer(Frame("p1"))
    assert queue.offer(Frame("p2")) is True  # wants a keyframe
    assert queue.pop() is None and queue.flushed == 3
    assert queue.offer(Frame("p3")) is False
    queue.offer(Frame("k2", keyframe=True))
    assert queue.pop() == Frame("k2", keyframe=True)


def test_a_keyframe_on_a_full_queue_is_kept() -> None:
    queue: KeyframeQueue[Frame] = KeyframeQueue(1)
    queue.offer(Frame("k", keyframe=True))
    assert queue.offer(Frame("k2", keyframe=True)) is False
    assert queue.pop() == Frame("k2", keyframe=True) and queue.flushed == 1


def test_keyframes_are_read_from_the_bitstream() -> None:
    idr = b"\x00\x00\x00\x01\x67sps\x00\x00\x01\x68pps\x00\x00\x01\x65slice"
    non_idr = b"\x00\x00\x00\x01\x41slice"
    assert nal_types(idr) == {7, 8, 5}
    assert is_keyframe("h264", idr) and not is_keyframe("h264", non_idr)
    assert not is_keyframe("h264", b"\x00\x00\x01")  # a start code with nothing after it
    assert is_keyframe("vp8", b"\x10\x02") and not is_keyframe("vp8", b"\x11")
    assert not is_keyframe("vp8", b"")

"""What the publisher sends: the ladder's setting applied to sources, the track's drops, the
substream switch, and the simulator's run-time bitrate."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.ladder import Setting
from agent.media_feed import MAX_SEND_BACKLOG, EncodedVideoTrack, MediaPlan
from agent.streaming import rate_control_of
from firmware_bridge.filesource import FileVideoSource
from firmware_bridge.live import LiveSourceError, SubstreamSwitch
from firmware_bridge.media import EncodedFrame, RateControl, VideoCodec
from firmware_bridge.sim.synthetic import SyntheticCamera, frame_rate_for
from tests.unit.test_video_sources import write_file

TIMEOUT = 5.0


class ScriptedSource:
    """A camera whose frames the test hands over one by one."""

    def __init__(self, name: str, codec: VideoCodec = "h264") -> None:
        self.name = name
        self.codec: VideoCodec = codec
        self.width, self.height, self.fps = 640, 480, 30.0
        self.queue: asyncio.Queue[EncodedFrame] = asyncio.Queue()
        self.opened = self.closed = self.keyframes_asked = 0

    def push(self, pts: int, keyframe: bool, at: float) -> None:
        data = f"{self.name}-{pts}".encode()
        self.queue.put_nowait(EncodedFrame(self.codec, data, pts, keyframe, at))

    def request_keyframe(self) -> None:
        self.keyframes_asked += 1

    async def frames(self) -> AsyncIterator[EncodedFrame]:
        self.opened += 1
        try:
            while True:
                yield await self.queue.get()
        finally:
            self.closed += 1


class ScriptedEncoder(ScriptedSource):
    def __init__(self, name: str, nominal: int = 400_000) -> None:
        super().__init__(name)
        self.rates: list[int] = []
        self._nominal = nominal

    @property
    def nominal_bitrate(self) -> int | None:
        return self._nominal

    def set_bitrate(self, bitrate: int) -> None:
        self.rates.append(bitrate)


async def next_frame(it: AsyncIterator[EncodedFrame]) -> EncodedFrame:
    return await asyncio.wait_for(anext(it), TIMEOUT)


async def until(condition: Callable[[], bool], rounds: int = 1000) -> None:
    """Let other tasks run until `condition` holds (no clock involved)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# ---- MediaPlan -------------------------------------------------------------------------------


def test_plan_offers_the_steps_the_camera_has() -> None:
    assert MediaPlan(ScriptedSource("file")).levels == ("normal", "keyframes")
    encoder = ScriptedEncoder("sim")
    assert MediaPlan(encoder, encoder).levels == ("normal", "reduced", "keyframes")
    with_sub = MediaPlan(ScriptedSource("rtsp"), substream=ScriptedSource("sub"))
    assert with_sub.levels == ("normal", "substream", "keyframes")
    assert isinstance(with_sub.source, SubstreamSwitch)


def test_plan_sets_the_encoder_only_when_the_rate_changes() -> None:
    encoder = ScriptedEncoder("sim")
    plan = MediaPlan(encoder, encoder)
    plan.apply(Setting("reduced", 100_000))
    plan.apply(Setting("reduced", 100_000))
    plan.apply(Setting("keyframes", 64_000))
    assert plan.keyframes_only
    plan.apply(Setting("normal"))
    assert encoder.rates == [100_000, 64_000, 400_000] and not plan.keyframes_only


def test_plan_on_the_substream_leaves_the_main_encoder_at_its_nominal_rate() -> None:
    """The main stream also feeds evidence: the live stream only lowers it when it uses it."""
    encoder = ScriptedEncoder("main")
    plan = MediaPlan(encoder, encoder, substream=ScriptedSource("sub"))
    plan.apply(Setting("reduced", 150_000))
    plan.apply(Setting("substream"))
    assert encoder.rates == [150_000, 400_000]


def test_rate_control_is_found_behind_the_capture_and_not_in_files(tmp_path: Path) -> None:
    from agent.capture import Capture

    camera = SyntheticCamera("vp8", 192, 96)
    assert rate_control_of(Capture(camera, lambda _f: None)) is camera
    path = tmp_path / "clip.webm"
    write_file(path, "vp8", frames=3)
    clip = FileVideoSource(path)
    assert isinstance(clip, RateControl) and clip.nominal_bitrate is None
    clip.set_bitrate(100_000)  # a no-op, not an error
    assert rate_control_of(clip) is None


def test_keyframe_requests_reach_the_camera_at_most_once_a_second() -> None:
    camera = ScriptedSource("cam")
    plan = MediaPlan(camera)
    asked = [plan.keyframe_wanted(t) for t in (10.0, 10.2, 10.9, 11.0, 11.5, 12.1)]
    assert asked == [True, False, False, True, False, True]
    assert camera.keyframes_asked == 3


# ---- the track -------------------------------------------------------------------------------


async def test_track_sends_keyframes_only_then_resumes_at_a_keyframe() -> None:
    camera = ScriptedSource("cam")
    plan = MediaPlan(camera)
    sent: list[int] = []
    track = EncodedVideoTrack(plan, lambda f: sent.append(f.pts))
    for pts in range(12):
        camera.push(pts, keyframe=pts % 4 == 0, at=pts / 10)
    await asyncio.wait_for(track.recv(), TIMEOUT)  # 0 (key)
    plan.apply(Setting("keyframes"))
    await asyncio.wait_for(track.recv(), TIMEOUT)  # 4 (key): 1-3 dropped
    plan.apply(Setting("normal"))
    await asyncio.wait_for(track.recv(), TIMEOUT)  # 5
    assert sent == [0, 4, 5] and track.dropped == 3
    assert camera.keyframes_asked == 0  # P-frames 5.. still decode after keyframe 4
    plan.apply(Setting("keyframes"))
    await asyncio.wait_for(track.recv(), TIMEOUT)  # 8 (key): 6, 7 dropped
    plan.apply(Setting("normal"))
    await asyncio.wait_for(track.recv(), TIMEOUT)  # 9
    assert sent[-2:] == [8, 9]
    track.stop()


async def test_keyframes_only_asks_for_a_picture_a_second() -> None:
    camera = ScriptedSource("cam")
    plan = MediaPlan(camera)
    plan.apply(Setting("keyframes"))
    track = EncodedVideoTrack(plan)
    camera.push(0, keyframe=True, at=0.0)
    await asyncio.wait_for(track.recv(), TIMEOUT)
    for pts in range(1, 26):  # 2.5 s of P-frames from a camera with a long GOP
        camera.push(pts, keyframe=False, at=pts / 10)
    camera.push(26, keyframe=True, at=2.6)
    assert (await asyncio.wait_for(track.recv(), TIMEOUT)).pts == 26
    assert camera.keyframes_asked == 2  # at 1.0 s and 2.0 s
    track.stop()


async def test_track_drops_to_the_next_keyframe_while_the_socket_is_backed_up() -> None:
    camera = ScriptedSource("cam")
    track = EncodedVideoTrack(MediaPlan(camera))
    backlog = [0]
    track.backlog = lambda: backlog[0]
    camera.push(0, keyframe=True, at=0.0)
    await asyncio.wait_for(track.recv(), TIMEOUT)
    backlog[0] = MAX_SEND_BACKLOG + 1
    camera.push(1, keyframe=False, at=1.0)
    camera.push(2, keyframe=True, at=2.0)  # refused too: the socket is still full
    task = asyncio.create_task(track.recv())
    await until(camera.queue.empty)
    backlog[0] = 0
    camera.push(3, keyframe=False, at=3.0)
    camera.push(4, keyframe=False, at=4.0)
    camera.push(5, keyframe=True, at=5.0)
    packet = await asyncio.wait_for(task, TIMEOUT)
    assert packet.pts == 5  # 3 and 4 depend on what was dropped
    assert camera.keyframes_asked == 1 and track.dropped == 4
    track.stop()


# ---- the substream switch --------------------------------------------------------------------


async def test_switch_happens_at_a_fresh_keyframe_with_continuous_timestamps() -> None:
    main, sub = ScriptedSource("main"), ScriptedSource("sub")
    switch = SubstreamSwitch(main, sub)
    frames = switch.frames()
    main.push(0, True, 10.0)
    assert (await next_frame(frames)).data == b"main-0"
    switch.use_substream(True)
    main.push(3000, False, 10.1)
    assert (await next_frame(frames)).data == b"main-3000"
    await until(lambda: sub.opened == 1)
    assert sub.keyframes_asked == 1
    sub.push(900_000, False, 10.15)  # mid-GOP: not a place to switch
    sub.push(903_000, True, 10.05)  # captured before the last frame sent: too old
    main.push(6000, False, 10.2)
    assert (await next_frame(frames)).data == b"main-6000"
    sub.push(906_000, True, 10.3)
    switched = await next_frame(frames)
    assert switched.data == b"sub-906000" and switched.pts == 6000 + 9000
    assert switch.on_substream and switch.switches == 1
    sub.push(909_000, False, 10.4)
    after = await next_frame(frames)
    assert after.pts == 6000 + 9000 + 3000
    assert main.closed == 1  # only the stream in use is read
    await frames.aclose()  # type: ignore[attr-defined]
    assert sub.closed == 1


async def test_a_switch_asked_for_and_withdrawn_closes_the_other_stream() -> None:
    main, sub = ScriptedSource("main"), ScriptedSource("sub")
    switch = SubstreamSwitch(main, sub)
    frames = switch.frames()
    main.push(0, True, 1.0)
    await next_frame(frames)
    switch.use_substream(True)
    main.push(1, False, 1.1)
    await next_frame(frames)
    await until(lambda: sub.opened == 1)
    switch.use_substream(False)
    main.push(2, False, 1.2)
    assert (await next_frame(frames)).data == b"main-2"
    assert sub.opened == 1 and sub.closed == 1 and not switch.on_substream
    await frames.aclose()  # type: ignore[attr-defined]
    assert main.closed == 1


def test_substream_must_share_the_codec() -> None:
    with pytest.raises(LiveSourceError):
        SubstreamSwitch(ScriptedSource("main"), ScriptedSource("sub", codec="vp8"))


# ---- the simulator's bitrate at run time -----------------------------------------------------


def test_frame_rate_follows_the_bitrate_in_steps() -> None:
    assert frame_rate_for(400_000, 400_000, 30) == 30
    assert frame_rate_for(200_000, 400_000, 30) == 30
    assert frame_rate_for(150_000, 400_000, 30) == 15
    assert frame_rate_for(60_000, 400_000, 30) == 10
    assert frame_rate_for(10_000, 400_000, 2) == 1


def mean_size(frames: list[EncodedFrame]) -> float:
    return sum(len(f.data) for f in frames) / len(frames)


def test_h264_follows_the_bitrate_and_bounds_keyframes_after_a_big_drop() -> None:
    camera = SyntheticCamera("h264", 320, 240, fps=30, keyframe_interval_s=10, bitrate=400_000)
    before = [f for n in range(60) for f in camera.encode_at(n, 1000 + n / 30)]
    camera.set_bitrate(250_000)  # within 2x of the encoder's buffer: reconfigured in place
    assert camera.fps == 30
    mid = [f for n in range(60, 90) for f in camera.encode_at(n, 1000 + n / 30)]
    assert not any(f.keyframe for f in mid)
    camera.set_bitrate(40_000)  # far below: reopened, with a buffer to match
    assert camera.fps == 10 and camera.nominal_bitrate == 400_000
    low = [f for n in range(90, 150) for f in camera.encode_at(n, 1000 + n / 30)]
    assert low[0].keyframe and not any(f.keyframe for f in low[1:])
    assert len(low[0].data) * 8 <= 40_000  # a keyframe carries at most a second's worth
    # Bytes per second of video: fewer frames, none of them bigger for it.
    assert mean_size(low[-30:]) * camera.fps < 0.5 * mean_size(before[-30:]) * 30
    camera.set_bitrate(10_000_000)
    assert camera.fps == 30  # capped at the nominal rate, full frame rate again


def test_vp8_reopens_its_encoder_only_for_a_real_change() -> None:
    camera = SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=60, bitrate=400_000)
    first = [f for n in range(10) for f in camera.encode_at(n, 1000 + n / 30)]
    assert first[0].keyframe and not any(f.keyframe for f in first[1:])
    camera.set_bitrate(105_000)
    changed = camera.encode_at(10, 1000.4)
    assert changed[0].keyframe  # libvpx cannot reconfigure: a new encoder, a keyframe
    camera.set_bitrate(110_000)  # under 10 % and the same frame rate: left as it is
    same = [f for n in range(11, 20) for f in camera.encode_at(n, 1000 + n / 30)]
    assert not any(f.keyframe for f in same)


async def test_a_new_reader_carries_on_while_the_old_one_finishes() -> None:
    """A rebuilt stream reads the camera again while the old reader's last frame may still
    be encoding: one encoder, used in turn, and a timeline that carries on."""
    camera = SyntheticCamera("h264", 192, 96, fps=30, keyframe_interval_s=1)
    old = camera.frames()
    before = [await next_frame(old) for _ in range(3)]
    in_flight = asyncio.create_task(next_frame(old))
    await asyncio.sleep(0)
    new = camera.frames()
    after = [await next_frame(new) for _ in range(3)]
    await in_flight
    await old.aclose()  # type: ignore[attr-defined]
    await new.aclose()  # type: ignore[attr-defined]
    assert after[0].pts > before[-1].pts
    assert [f.pts for f in after] == sorted(f.pts for f in after)


async def test_frames_keep_time_across_a_frame_rate_change() -> None:
    camera = SyntheticCamera("h264", 192, 96, fps=30, keyframe_interval_s=1, bitrate=400_000)
    frames = camera.frames()
    pts = [(await next_frame(frames)).pts for _ in range(4)]
    camera.set_bitrate(100_000)  # a quarter: 15 fps
    pts += [(await next_frame(frames)).pts for _ in range(4)]
    await frames.aclose()  # type: ignore[attr-defined]
    steps = [b - a for a, b in itertools.pairwise(pts)]
    assert steps[:3] == [3000] * 3 and steps[-3:] == [6000] * 3

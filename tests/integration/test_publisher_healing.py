"""The publisher heals itself against a real relay on loopback: a relay that falls silent,
or stops receiving, is left for a new session within the watchdog's time; `rebuild()` brings
a new session at once; the degrade ladder steps down under a throttled receive path at the
relay and back up when it opens; a camera's substream is switched to and back; a refused
token waits for a new one; a 404 is retried."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import RTCRtpReceiver, clock
from aiortc.rtp import RtcpSrPacket, RtpPacket

from agent.config import AgentSettings
from agent.ladder import LadderConfig, Setting
from agent.publisher import PublishOptions, WhipPublisher
from agent.streaming import LiveStream
from central.errors import NotFound
from central.relay.session import Relay
from firmware_bridge.filesource import FileVideoSource
from firmware_bridge.live import SubstreamSwitch
from firmware_bridge.sim.pattern import PatternRenderer
from firmware_bridge.sim.synthetic import SyntheticCamera
from runtime.backoff import Backoff
from runtime.config import load_settings
from tests.helpers import wait_for
from tests.integration.relay_helpers import (
    CONFIG,
    SIGNER,
    RelayViewer,
    relay_server,
    viewer_token,
)

WATCHDOG_S = 2.0
FAST = Backoff(initial_s=0.05, max_s=0.2)


@contextlib.asynccontextmanager
async def published(
    base: str, stream: str, camera: SyntheticCamera, options: PublishOptions
) -> AsyncIterator[WhipPublisher]:
    token = SIGNER.issue("whip", stream, time.time(), 300)
    publisher = WhipPublisher(f"{base}/whip/{stream}", token, camera, CONFIG, options=options)
    task = asyncio.create_task(publisher.run())
    try:
        await wait_for(publisher.connected.is_set, timeout=10)
        yield publisher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def watching(base: str, stream: str) -> RelayViewer:
    viewer = RelayViewer("vp8")
    assert (await viewer.join(base, stream, viewer_token(stream))).status_code == 201
    await wait_for(lambda: len(viewer.stamps) > 15, timeout=15)
    return viewer


async def decodes_on(viewer: RelayViewer, frames: int = 15) -> None:
    """The viewer decodes `frames` more pictures, in order (a new session's camera stream
    numbers its pictures afresh)."""
    before = len(viewer.stamps)
    await wait_for(lambda: len(viewer.stamps) > before + frames, timeout=15)
    numbers = [stamp.frame_no for stamp, _ in viewer.stamps[before:]]
    assert numbers[-1] > numbers[0]


async def _muted(*_args: object, **_kwargs: object) -> None:
    return None


def receiver_of(relay: Relay, stream: str) -> RTCRtpReceiver:
    receiver = relay.streams[stream].receiver
    assert receiver is not None
    return receiver


@contextlib.asynccontextmanager
async def watched_session(stream: str) -> AsyncIterator[tuple[Relay, WhipPublisher, RelayViewer]]:
    """A 320x240 VP8 camera published with the media watchdog on, and a viewer decoding it."""
    camera = SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=1)
    options = PublishOptions(watchdog_s=WATCHDOG_S)
    async with relay_server() as (base, relay), published(base, stream, camera, options) as pub:
        viewer = await watching(base, stream)
        try:
            yield relay, pub, viewer
        finally:
            await viewer.close()


async def a_second_session(pub: WhipPublisher, timeout: float) -> None:
    """Until the publisher has left its first session and is connected in a second."""
    await wait_for(lambda: pub.sessions == 2 and pub.connected.is_set(), timeout=timeout)


async def test_a_relay_that_falls_silent_is_left_for_a_new_session() -> None:
    async with watched_session("q") as (relay, pub, viewer):
        await wait_for(lambda: pub.uplink.loss is not None, timeout=10)  # reports flow
        # The relay's end goes quiet (its RTCP is dropped) while ICE consent keeps both
        # ends "connected": only the media watchdog can tell.
        transport = receiver_of(relay, "q").transport
        setattr(transport, "_send_rtp", _muted)  # noqa: B010
        muted_at = time.monotonic()
        await a_second_session(pub, timeout=15)
        healed_s = time.monotonic() - muted_at
        assert pub.last_end == "no_rtcp" and pub.rebuilds == 1
        assert healed_s < WATCHDOG_S + 4.0, healed_s
        await decodes_on(viewer)


async def test_a_path_that_stops_carrying_media_is_left_too() -> None:
    """A one-way cut: the relay still reports, but never anything new."""
    async with watched_session("o") as (relay, pub, viewer):
        setattr(receiver_of(relay, "o"), "_handle_rtp_packet", _muted)  # noqa: B010
        await a_second_session(pub, timeout=15)
        assert pub.last_end == "no_progress"
        await decodes_on(viewer)


async def test_rebuild_brings_a_new_session_and_the_viewer_decodes_on() -> None:
    async with watched_session("r") as (_relay, pub, viewer):
        asked = time.monotonic()
        pub.rebuild("network change")
        await a_second_session(pub, timeout=10)
        assert pub.last_end == "rebuild: network change"
        assert time.monotonic() - asked < 5.0  # no backoff: signalling and ICE only
        await decodes_on(viewer)
        assert viewer.pc.connectionState == "connected"  # the viewer never noticed


async def test_a_rebuild_keeps_what_the_ladder_learnt_unless_the_network_is_new() -> None:
    async with watched_session("k") as (_relay, pub, _viewer):
        pub.ladder.ceiling_bps = 120_000  # what a thin link was seen to carry
        pub.rebuild("the center sees no media")
        await a_second_session(pub, timeout=10)
        assert pub.ladder.ceiling_bps == 120_000  # the same link: no climb past it
        pub.rebuild("network changed", new_network=True)
        assert pub.ladder.ceiling_bps is None  # a new network is probed afresh
        await wait_for(lambda: pub.sessions == 3 and pub.connected.is_set(), timeout=10)


class Bottleneck:
    """The relay's receive path squeezed to `rate_bps` behind a bounded queue, as a token
    bucket on the path would: packets keep their order, the excess is dropped at the tail,
    and each is handed to aiortc when the link would have delivered it (arrival times on
    aiortc's own clock, which counts from 1900). Sender reports wait in the same queue, so
    the round trip the publisher measures grows with it, as on a real link."""

    def __init__(self, receiver: RTCRtpReceiver, rate_bps: int, queue_s: float = 0.5) -> None:
        self._receiver = receiver
        self._rtp: Any = receiver._handle_rtp_packet
        self._rtcp: Any = receiver._handle_rtcp_packet
        self._rate = rate_bps / 8
        self._limit = self._rate * queue_s
        self._queue: deque[RtpPacket | RtcpSrPacket] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self.dropped = 0
        setattr(receiver, "_handle_rtp_packet", self._arrive)  # noqa: B010
        setattr(receiver, "_handle_rtcp_packet", self._arrive_rtcp)  # noqa: B010
        self._task = asyncio.create_task(self._drain(), name="bottleneck")

    @staticmethod
    def _size(packet: RtpPacket | RtcpSrPacket) -> int:
        payload = len(packet.payload) if isinstance(packet, RtpPacket) else 40
        return payload + 50  # RTP, SRTP, UDP and IP headers

    async def _arrive(self, packet: RtpPacket | RtcpSrPacket, arrival_time_ms: int = 0) -> None:
        if self._queued + self._size(packet) > self._limit:
            self.dropped += 1
            return
        self._queue.append(packet)
        self._queued += self._size(packet)
        self._ready.set()

    async def _arrive_rtcp(self, packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            await self._arrive(packet)
        else:
            await self._rtcp(packet)

    async def _deliver(self, packet: RtpPacket | RtcpSrPacket) -> None:
        if isinstance(packet, RtpPacket):
            await self._rtp(packet, arrival_time_ms=clock.current_ms())
        else:
            await self._rtcp(packet)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        free_at = loop.time()
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            packet = self._queue[0]
            free_at = max(free_at, loop.time()) + self._size(packet) / self._rate
            await asyncio.sleep(free_at - loop.time())
            self._queue.popleft()
            self._queued -= self._size(packet)
            await self._deliver(packet)

    async def open(self) -> None:
        """The link recovers: everything queued is delivered, then packets pass untouched."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        while self._queue:
            await self._deliver(self._queue.popleft())
        delattr(self._receiver, "_handle_rtp_packet")
        delattr(self._receiver, "_handle_rtcp_packet")


async def test_the_ladder_steps_down_on_a_thin_path_and_back_up_when_it_opens() -> None:
    camera = SyntheticCamera("h264", 640, 480, fps=30, keyframe_interval_s=2, bitrate=600_000)
    ladder = LadderConfig(settle_s=1.5, up_hold_s=1.0, up_hold_max_s=3.0, increase=2.0)
    options = PublishOptions(watchdog_s=5.0, ladder=ladder)
    async with relay_server() as (base, relay), published(base, "t", camera, options) as pub:
        viewer = RelayViewer("h264")
        assert (await viewer.join(base, "t", viewer_token("t"))).status_code == 201
        await wait_for(lambda: len(viewer.stamps) > 15, timeout=15)
        await wait_for(lambda: (pub.uplink.sent_bps or 0) > 100_000, timeout=10)
        # Our sessions negotiate REMB (goog-remb, abs-send-time): the relay's estimate comes.
        await wait_for(lambda: pub.uplink.remb_bps is not None, timeout=10)
        capacity = (pub.uplink.sent_bps or 0) // 2
        bottleneck = Bottleneck(receiver_of(relay, "t"), capacity)
        await wait_for(lambda: pub.uplink.degraded, timeout=20, interval=0.2)
        assert pub.ladder.reason in ("loss", "queueing", "remb")
        assert camera.fps < 30 or pub.uplink.level == "keyframes"  # the encoder was asked
        # Below the bottleneck the viewer keeps getting pictures.
        await wait_for(lambda: (pub.uplink.target_bps or capacity) < 0.8 * capacity, timeout=20)
        await decodes_on(viewer, frames=10)
        assert pub.sessions == 1  # degraded, not dead: the watchdog kept out of it
        await bottleneck.open()
        await wait_for(lambda: pub.uplink.level == "normal", timeout=60, interval=0.2)
        assert camera.fps == 30 and bottleneck.dropped > 0
        await decodes_on(viewer)
        await viewer.close()


def write_clip(path: Path, width: int, height: int, frames: int = 30) -> None:
    """One second of the pattern, H.264; each loop of it starts with a keyframe."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        renderer = PatternRenderer(width, height)
        for n in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane, data in zip(frame.planes, renderer.render(n, n), strict=True):
                plane.update(data)
            frame.pts = n
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


async def test_a_camera_substream_is_switched_to_and_back_while_the_viewer_watches(
    tmp_path: Path,
) -> None:
    write_clip(tmp_path / "main.mp4", 320, 240)
    write_clip(tmp_path / "sub.mp4", 192, 112)
    main, sub = FileVideoSource(tmp_path / "main.mp4"), FileVideoSource(tmp_path / "sub.mp4")
    options = PublishOptions(adapt=False)
    token = SIGNER.issue("whip", "s", time.time(), 300)
    async with relay_server() as (base, _relay):
        pub = WhipPublisher(f"{base}/whip/s", token, main, CONFIG, substream=sub, options=options)
        task = asyncio.create_task(pub.run())
        try:
            await wait_for(pub.connected.is_set, timeout=10)
            assert pub.plan.levels == ("normal", "substream", "keyframes")
            switch = pub.plan.source
            assert isinstance(switch, SubstreamSwitch)
            viewer = RelayViewer("h264")
            assert (await viewer.join(base, "s", viewer_token("s"))).status_code == 201
            await wait_for(lambda: viewer.frames > 15, timeout=15)
            pub.plan.apply(Setting("substream"))
            await wait_for(lambda: (192, 112) in viewer.sizes, timeout=10)
            assert switch.on_substream
            pub.plan.apply(Setting("normal"))
            await wait_for(lambda: not switch.on_substream, timeout=10)
            seen = viewer.frames
            await wait_for(lambda: viewer.frames > seen + 15, timeout=10)
            assert viewer.sizes == {(320, 240), (192, 112)} and pub.sessions == 1
            await viewer.close()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def settings_for(base: str) -> AgentSettings:
    return load_settings(
        AgentSettings,
        unit_id="unit-7",
        center_url=base,
        ice={"host_addresses": ["127.0.0.1"]},
        video={"codec": "vp8", "width": 320, "height": 240, "bitrate": 300_000},
    )


async def test_a_refused_stream_starts_again_with_a_new_token() -> None:
    async with relay_server() as (base, _relay):
        wrong = SIGNER.issue("whep", "k", time.time(), 300)  # not a publishing token: 403
        stream = LiveStream(settings_for(base), "k", wrong)
        await wait_for(lambda: not stream.running, timeout=10)
        assert stream.refused and stream.uplink is None
        stream.update_token(SIGNER.issue("whip", "k", time.time(), 300))
        assert await stream.wait_live(10)
        assert stream.running and not stream.refused
        report = stream.uplink
        assert report is not None and report.level == "normal"
        stream.rebuild("mqtt reconnected")
        await wait_for(lambda: stream.publisher.sessions == 2 and stream.live, timeout=10)
        await stream.stop()
        assert not stream.running


async def test_an_unknown_stream_is_retried_until_the_center_knows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with relay_server() as (base, relay):
        original = relay.publish
        refusals = [0]

        async def not_yet(stream_id: str, offer: str) -> tuple[str, str]:
            if refusals[0] < 2:
                refusals[0] += 1
                raise NotFound("no such stream (yet)")
            return await original(stream_id, offer)

        monkeypatch.setattr(relay, "publish", not_yet)
        token = SIGNER.issue("whip", "u", time.time(), 300)
        camera = SyntheticCamera("vp8", 320, 240)
        publisher = WhipPublisher(f"{base}/whip/u", token, camera, CONFIG, backoff=FAST)
        task = asyncio.create_task(publisher.run())
        await wait_for(publisher.connected.is_set, timeout=10)
        assert refusals[0] == 2 and publisher.sessions == 1 and not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

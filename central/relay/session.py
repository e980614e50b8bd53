"""Peer connections of the relay: publishers in (WHIP), viewers out (WHEP)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import structlog
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from central.errors import CenterError, Invalid, NotFound
from central.relay.arrival import use_kernel_arrival
from central.relay.fanout import StreamFanout
from central.relay.recent import RecentBudget, RecentBuffer, RecentLimits
from central.relay.sdp import answer_codec, loopback_candidates_only
from central.relay.viewer import Viewer, ViewerTrack
from runtime.webrtc import prefer_codec

log = structlog.get_logger("rtcc.relay")
MAX_SDP_BYTES = 64 * 1024
DELAY_SAMPLES = 4096
# A stream is live while frames keep coming: one arrived within this window.
LIVE_WINDOW_S = 2.0
WATCH_INTERVAL_S = 0.5
# A new session has this long to connect (ICE, DTLS) before silence counts.
CONNECT_GRACE_S = 10.0
# A stream nobody publishes or watches is forgotten after this long.
FORGET_AFTER_S = 120.0


@dataclass
class Stream:
    stream_id: str
    fanout: StreamFanout
    created: float
    codec: str | None = None
    publisher: RTCPeerConnection | None = None
    publisher_session: str | None = None
    receiver: RTCRtpReceiver | None = None
    pump: asyncio.Task[None] | None = None
    live_since: float | None = None
    publisher_joined: float | None = None
    last_media: float | None = None
    last_rtcp: float | None = None
    # Since when nobody publishes or watches it (it is forgotten after a while).
    idle_since: float | None = None
    # Set while frames arrive, cleared when the publisher goes: what a remote start waits on.
    media: asyncio.Event = field(default_factory=asyncio.Event)
    viewers: dict[str, Viewer] = field(default_factory=dict)
    # Frame complete at the relay -> handed to a viewer's sender, last samples (seconds).
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=DELAY_SAMPLES))
    # The last minutes of its frames, for rewind (None when rewind is off); kept across
    # publisher sessions while the stream is.
    recent: RecentBuffer | None = None

    def live(self, now: float) -> bool:
        """Live means media is arriving, not merely that a publisher session exists."""
        return (
            self.publisher is not None
            and self.last_media is not None
            and now - self.last_media <= LIVE_WINDOW_S
        )


def check_sdp(sdp: str) -> None:
    if not sdp or len(sdp.encode()) > MAX_SDP_BYTES or not sdp.lstrip().startswith("v=0"):
        raise Invalid("not an SDP offer")
    if "m=video" not in sdp:
        raise Invalid("the offer has no video")


class Relay:
    def __init__(
        self,
        configuration: RTCConfiguration,
        loopback_only: bool = False,
        clock: Callable[[], float] = time.time,
        media_timeout_s: float = 3.0,
        viewer_timeout_s: float = 5.0,
        recent: RecentLimits | None = None,
    ) -> None:
        self._configuration = configuration
        self._loopback_only = loopback_only
        self._clock = clock
        self._media_timeout_s = media_timeout_s
        self._viewer_timeout_s = viewer_timeout_s
        self.streams: dict[str, Stream] = {}
        self._recent = recent if recent is not None and recent.seconds > 0 else None
        self.recent_budget = (
            RecentBudget(self._recent.worker_max_bytes) if self._recent is not None else None
        )
        self.publishers_dropped = 0
        self.viewers_dropped = 0

    def _stream(self, stream_id: str) -> Stream:
        stream = self.streams.get(stream_id)
        if stream is None:
            stream = Stream(
                stream_id, StreamFanout(lambda: self._request_keyframe(stream_id)), self._clock()
            )
            if self._recent is not None:
                limits = self._recent
                stream.recent = RecentBuffer(limits.seconds, limits.max_bytes, self.recent_budget)
            self.streams[stream_id] = stream
        return stream

    async def publish(self, stream_id: str, offer: str) -> tuple[str, str]:
        """WHIP: take a publisher's offer; returns (session id, answer)."""
        check_sdp(offer)
        pc = RTCPeerConnection(self._configuration)
        stream = self._stream(stream_id)
        session_id = uuid.uuid4().hex
        self._watch(pc, lambda: self._publisher_gone(stream_id, session_id))
        try:
            answer = await self._negotiate(pc, offer)
        except Exception:
            await pc.close()
            raise
        codec = answer_codec(answer)
        if codec is None:
            await pc.close()
            raise Invalid("offer has neither H.264 nor VP8")
        receiver = next(t.receiver for t in pc.getTransceivers() if t.kind == "video")
        # Its REMB is to measure the publisher's uplink, not this process's load.
        use_kernel_arrival(receiver)
        old = stream.publisher
        if stream.pump is not None:
            stream.pump.cancel()
        stream.publisher, stream.publisher_session, stream.codec = pc, session_id, codec
        stream.receiver, stream.publisher_joined = receiver, self._clock()
        self._hear_rtcp(stream, receiver)
        stream.last_media = stream.last_rtcp = None
        stream.media.clear()
        stream.fanout.publisher_restarted()
        stream.pump = asyncio.create_task(self._pump(stream, receiver.track))
        if old is not None:
            await old.close()
        log.info("publisher_joined", stream_id=stream_id, codec=codec, session=session_id)
        return session_id, answer

    async def view(self, stream_id: str, offer: str, who: str = "") -> tuple[str, str]:
        """WHEP: take a viewer's offer; returns (session id, answer)."""
        check_sdp(offer)
        stream = self.streams.get(stream_id)
        # A stream whose publisher is away (reconnecting) keeps its viewers and takes new
        # ones: they get video the moment it is back, without joining again.
        if stream is None or stream.codec is None:
            raise NotFound("stream is not live")
        pc = RTCPeerConnection(self._configuration)
        track = ViewerTrack(stream.fanout, self._clock(), stream.delays)
        session_id = uuid.uuid4().hex
        transceiver = pc.addTransceiver(track, direction="sendonly")
        prefer_codec(transceiver, stream.codec)
        self._watch(pc, lambda: self._viewer_gone(stream_id, session_id))
        try:
            answer = await self._negotiate(pc, offer)
            if answer_codec(answer) != stream.codec:
                raise Invalid(f"the viewer does not offer {stream.codec}")
        except Exception:
            stream.fanout.remove_viewer(track.queue)
            track.stop()
            await pc.close()
            raise
        # aiortc turns a viewer's PLI/FIR into an encoder flag; send it to the publisher.
        sender = transceiver.sender
        sender._send_keyframe = lambda: stream.fanout.keyframe_wanted(self._clock())  # type: ignore[method-assign]
        viewer = Viewer(pc, track, who, self._clock())
        handle_rtcp = sender._handle_rtcp_packet

        async def on_rtcp(packet: Any) -> None:
            viewer.last_rtcp = self._clock()
            await handle_rtcp(packet)

        sender._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign]
        stream.viewers[session_id] = viewer
        log.info(
            "viewer_joined",
            stream_id=stream_id,
            session=session_id,
            who=who,
            viewers=len(stream.viewers),
        )
        return session_id, answer

    async def end(self, stream_id: str, session_id: str) -> bool:
        """WHIP/WHEP DELETE of one session."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return False
        if stream.publisher_session == session_id:
            await self._publisher_gone(stream_id, session_id)
            return True
        viewer = stream.viewers.get(session_id)
        if viewer is None:
            return False
        await self._viewer_gone(stream_id, session_id)
        return True

    async def wait_live(self, stream_id: str, timeout: float) -> bool:
        """Wait until media of this stream arrives (at most `timeout` seconds). A stream
        not published yet is waited for too, without creating it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (stream := self.streams.get(stream_id)) is None:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        if not stream.live(self._clock()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.media.wait(), max(0.0, deadline - loop.time()))
        return stream.live(self._clock())

    async def watch(self) -> None:
        """The media watchdog: a publisher whose media stopped, or a viewer whose RTCP
        stopped, is on a dead path (ICE consent alone takes up to 30 s to say so). Drop it
        at once; the publisher's agent and the viewer reconnect by themselves."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            try:
                await self.check_paths(self._clock())
            except Exception:
                log.exception("watchdog_failed")

    async def check_paths(self, now: float) -> None:
        for stream_id, stream in list(self.streams.items()):
            if stream.last_media is not None and now - stream.last_media > LIVE_WINDOW_S:
                stream.media.clear()
            session, joined = stream.publisher_session, stream.publisher_joined
            heard = max(stream.last_media or 0.0, stream.last_rtcp or 0.0) or None
            if session is not None and self._silent(heard, joined, now):
                log.warning("publisher_silent", stream_id=stream_id)
                self.publishers_dropped += 1
                await self._publisher_gone(stream_id, session)
            # Viewers report only what they receive: judge them while media flows to them.
            live_since = stream.live_since if stream.live(now) else None
            for viewer_session, viewer in list(stream.viewers.items()):
                if live_since is None:
                    continue
                since = max(viewer.joined, live_since)
                if self._silent(viewer.last_rtcp, since, now, self._viewer_timeout_s):
                    log.warning("viewer_silent", stream_id=stream_id, session=viewer_session)
                    self.viewers_dropped += 1
                    await self._viewer_gone(stream_id, viewer_session)
            if stream.publisher is not None or stream.viewers:
                stream.idle_since = None
            elif stream.idle_since is None:
                stream.idle_since = now
            elif now - stream.idle_since > FORGET_AFTER_S and self.streams.get(stream_id) is stream:
                self._forget(stream_id)

    def _hear_rtcp(self, stream: Stream, receiver: RTCRtpReceiver) -> None:
        """A publisher's sender reports prove its path alive between sparse frames (a unit
        sending keyframes only on a thin link)."""
        handle_rtcp = receiver._handle_rtcp_packet

        async def on_rtcp(packet: Any) -> None:
            stream.last_rtcp = self._clock()
            await handle_rtcp(packet)

        receiver._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign]

    def _silent(
        self, heard: float | None, since: float | None, now: float, timeout: float | None = None
    ) -> bool:
        """Nothing heard for `timeout` (a path still setting up gets CONNECT_GRACE_S)."""
        if since is None:
            return False
        if heard is None or heard < since:
            return now - since > max(CONNECT_GRACE_S, timeout or self._media_timeout_s)
        return now - heard > (timeout or self._media_timeout_s)

    async def drop(self, stream_id: str) -> bool:
        """End a stream: its publisher and every viewer."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return False
        for session_id in list(stream.viewers):
            await self._viewer_gone(stream_id, session_id)
        if stream.publisher_session is not None:
            await self._publisher_gone(stream_id, stream.publisher_session)
        self._forget(stream_id)
        return True

    async def close(self) -> None:
        for stream_id in list(self.streams):
            stream = self.streams[stream_id]
            for session_id in list(stream.viewers):
                await self._viewer_gone(stream_id, session_id)
            if stream.publisher_session is not None:
                await self._publisher_gone(stream_id, stream.publisher_session)
            self._forget(stream_id)

    # ---- internals --------------------------------------------------------------------

    def _forget(self, stream_id: str) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None and stream.recent is not None:
            stream.recent.close()  # its bytes go back to the worker's budget

    async def _negotiate(self, pc: RTCPeerConnection, offer: str) -> str:
        if self._loopback_only:
            offer = loopback_candidates_only(offer)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except CenterError:
            raise
        except Exception as exc:
            raise Invalid(f"unusable SDP offer: {exc}") from None
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return str(pc.localDescription.sdp)

    def _watch(self, pc: RTCPeerConnection, gone: Callable[[], Any]) -> None:
        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await gone()

    async def _pump(self, stream: Stream, track: MediaStreamTrack) -> None:
        recent = stream.recent
        if recent is not None and stream.codec is not None:
            recent.restarted(stream.codec)
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                packet = await track.recv()
                if not isinstance(packet, av.Packet):
                    continue
                now = self._clock()
                if stream.live_since is None:
                    stream.live_since = now
                stream.last_media = now
                stream.media.set()
                if packet.is_corrupt:
                    stream.fanout.lost_frames(now)
                arrived = packet.opaque if isinstance(packet.opaque, float) else None
                data, pts, keyframe = bytes(packet), int(packet.pts or 0), bool(packet.is_keyframe)
                stream.fanout.publish(data, pts, keyframe, now, arrived)
                if recent is not None:
                    if packet.is_corrupt:
                        recent.lost()
                    recent.add(data, pts, keyframe, now)

    def _request_keyframe(self, stream_id: str) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.receiver is None:
            return
        receiver = stream.receiver
        for source in receiver.getSynchronizationSources():
            task = asyncio.get_running_loop().create_task(receiver._send_rtcp_pli(source.source))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _publisher_gone(self, stream_id: str, session_id: str) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.publisher_session != session_id:
            return
        pc, stream.publisher, stream.publisher_session = stream.publisher, None, None
        stream.receiver, stream.live_since = None, None
        stream.publisher_joined, stream.last_media, stream.last_rtcp = None, None, None
        stream.media.clear()
        if stream.pump is not None:
            stream.pump.cancel()
            stream.pump = None
        stream.fanout.publisher_restarted()
        if pc is not None:
            await pc.close()
        log.info("publisher_left", stream_id=stream_id, session=session_id)

    async def _viewer_gone(self, stream_id: str, session_id: str) -> None:
        stream = self.streams.get(stream_id)
        viewer = stream.viewers.pop(session_id, None) if stream else None
        if stream is None or viewer is None:
            return
        stream.fanout.remove_viewer(viewer.track.queue)
        viewer.track.stop()
        await viewer.pc.close()
        log.info(
            "viewer_left", stream_id=stream_id, session=session_id, viewers=len(stream.viewers)
        )

"""Publishing the body-cam over WHIP (RFC 9725): encoded frames sent as they are.

The agent only dials out: it POSTs its SDP offer to the center with a bearer token, gets
201 + answer + Location, and DELETEs the Location to stop. aiortc has no ICE restart, so
after a failed or closed connection the publisher builds a new PeerConnection and signals
again, with jittered backoff, until stopped or refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import av
import httpx
import structlog
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from firmware_bridge.media import EncodedFrame, VideoSource
from runtime.backoff import Backoff
from runtime.webrtc import prefer_codec

log = structlog.get_logger("rtcc.agent.publisher")
TIME_BASE = fractions.Fraction(1, 90_000)


class PublishRefused(Exception):
    """The center refused the session for good (token, unknown stream): do not retry."""


class EncodedVideoTrack(MediaStreamTrack):
    """Hands the source's encoded frames to aiortc, which packetizes them without encoding."""

    kind = "video"

    def __init__(self, source: VideoSource) -> None:
        super().__init__()
        self._source = source
        self._frames: AsyncIterator[EncodedFrame] = source.frames()
        self.last_frame: EncodedFrame | None = None

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            frame = await anext(self._frames)
        except StopAsyncIteration:
            self.stop()
            raise MediaStreamError from None
        self.last_frame = frame
        packet: av.Packet[Any] = av.Packet(frame.data)
        packet.pts = frame.pts
        packet.time_base = TIME_BASE
        return packet

    def stop(self) -> None:
        super().stop()
        closer = getattr(self._frames, "aclose", None)
        if closer is not None:
            task = asyncio.get_running_loop().create_task(closer())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())


class WhipPublisher:
    def __init__(
        self,
        whip_url: str,
        token: str,
        source: VideoSource,
        configuration: RTCConfiguration,
        backoff: Backoff = Backoff(initial_s=0.5, max_s=10.0),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.whip_url = whip_url
        self._token = token
        self._source = source
        self._configuration = configuration
        self._backoff = backoff
        self._rand = rand
        self.sessions = 0
        self.connected = asyncio.Event()
        self._log = log.bind(url=whip_url)

    async def run(self) -> None:
        """Publish until cancelled; raises PublishRefused when the center says no."""
        attempt = 0
        async with httpx.AsyncClient(timeout=10.0) as http:
            while True:
                try:
                    lasted = await self._session(http)
                    attempt = 0 if lasted else attempt + 1
                except (httpx.HTTPError, OSError) as exc:
                    self._log.warning("whip_signalling_failed", error=str(exc))
                    attempt += 1
                await asyncio.sleep(self._backoff.delay(attempt, self._rand))

    async def _session(self, http: httpx.AsyncClient) -> bool:
        """One PeerConnection's life; True if it got connected."""
        pc = RTCPeerConnection(self._configuration)
        track = EncodedVideoTrack(self._source)
        self._source.request_keyframe()
        transceiver = pc.addTransceiver(track, direction="sendonly")
        prefer_codec(transceiver, self._source.codec)
        # A PLI/FIR from the relay asks the camera for a keyframe.
        transceiver.sender._send_keyframe = self._source.request_keyframe  # type: ignore[method-assign]
        ended = asyncio.Event()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()
            elif pc.connectionState in ("failed", "closed"):
                ended.set()

        location = None
        was_connected = False
        try:
            await pc.setLocalDescription(await pc.createOffer())
            response = await http.post(
                self.whip_url,
                content=pc.localDescription.sdp,
                headers={
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {self._token}",
                },
            )
            if response.status_code in (401, 403, 404):
                raise PublishRefused(f"{response.status_code}: {response.text[:200]}")
            if response.status_code != 201:
                self._log.warning("whip_rejected", status=response.status_code)
                return False
            location = str(httpx.URL(self.whip_url).join(response.headers["Location"]))
            await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
            self.sessions += 1
            self._log.info("whip_session_started", session=self.sessions)
            await ended.wait()
            was_connected = self.connected.is_set()
            self._log.warning("whip_session_ended", state=pc.connectionState)
            return was_connected
        finally:
            self.connected.clear()
            track.stop()
            await pc.close()
            if location is not None:
                with contextlib.suppress(httpx.HTTPError, OSError):
                    await http.delete(location, headers={"Authorization": f"Bearer {self._token}"})

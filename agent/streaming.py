"""One live stream of the agent: the configured camera, published over WHIP. Imported only
when a stream starts, so an idle agent never loads the media stack.

The rest of the agent drives it through `rebuild` (a network change, an MQTT reconnect),
`update_token` (the center re-issued the WHIP token) and reads `uplink`."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from agent.capture import Capture
from agent.config import AgentSettings, StreamSettings
from agent.publisher import PublishOptions, PublishRefused, WhipPublisher
from agent.uplink import UplinkReport
from firmware_bridge.filesource import FileVideoSource
from firmware_bridge.live import rtsp_source, v4l2_source
from firmware_bridge.media import RateControl, VideoSource
from firmware_bridge.sim.synthetic import SyntheticCamera
from runtime.backoff import Backoff
from runtime.webrtc import apply_ice

log = structlog.get_logger("rtcc.agent.stream")


CAMERA_RETRY = Backoff(initial_s=0.5, max_s=10.0)


def make_source(settings: AgentSettings) -> VideoSource:
    video = settings.video
    if video.source == "file":
        assert video.file is not None
        return FileVideoSource(video.file)
    if video.source == "rtsp":
        assert video.url is not None
        return rtsp_source(video.url, CAMERA_RETRY.delay, video.rtsp_transport)
    if video.source == "v4l2":
        return v4l2_source(video.device, CAMERA_RETRY.delay, video.width, video.height, video.fps)
    return SyntheticCamera(
        video.codec, video.width, video.height, video.fps, video.keyframe_interval_s, video.bitrate
    )


def make_substream(settings: AgentSettings) -> VideoSource | None:
    """The camera's low-rate substream, opened only while the live stream is on it."""
    video = settings.video
    if video.substream_url is None:
        return None
    return rtsp_source(video.substream_url, CAMERA_RETRY.delay, video.rtsp_transport)


def rate_control_of(source: VideoSource) -> RateControl | None:
    """The encoder behind `source` if its bitrate can change (the always-on capture hands
    the camera's frames on; the camera itself decides)."""
    inner = source.source if isinstance(source, Capture) else source
    if isinstance(inner, RateControl) and inner.nominal_bitrate is not None:
        return inner
    return None


def publish_options(live: StreamSettings) -> PublishOptions:
    return PublishOptions(
        watchdog_s=live.watchdog_s,
        adapt=live.adapt,
        min_bitrate=live.min_bitrate,
        media_dscp=live.media_dscp,
    )


class LiveStream:
    def __init__(
        self,
        settings: AgentSettings,
        stream_id: str,
        token: str,
        source: VideoSource | None = None,
        *,
        substream: VideoSource | None = None,
        options: PublishOptions | None = None,
    ) -> None:
        assert settings.center_url is not None
        self.stream_id = stream_id
        source = source or make_source(settings)
        self.publisher = WhipPublisher(
            f"{settings.center_url.rstrip('/')}/whip/{stream_id}",
            token,
            source,
            apply_ice(settings.ice),
            rate=rate_control_of(source),
            substream=substream or make_substream(settings),
            options=options or publish_options(settings.video.live),
            stream_id=stream_id,
            verify=settings.center_tls(),
        )
        self.refused = False
        self._stopped = False
        self._task = self._start()

    def _start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self._run(), name=f"stream-{self.stream_id}")

    @property
    def running(self) -> bool:
        return not self._task.done()

    @property
    def live(self) -> bool:
        return self.running and self.publisher.connected.is_set()

    @property
    def uplink(self) -> UplinkReport | None:
        """The uplink as the publisher sees it; None while the stream is not running."""
        return self.publisher.uplink if self.running else None

    def rebuild(self, reason: str, new_network: bool = False) -> None:
        """Drop the current PeerConnection now and reconnect at once (no backoff)."""
        if self.running:
            self.publisher.rebuild(reason, new_network)

    def update_token(self, token: str) -> None:
        """Sign the next signalling with `token`; a stream the center refused starts again."""
        self.publisher.update_token(token)
        if self.refused and not self.running and not self._stopped:
            self.refused = False
            log.info("stream_restarted_with_new_token", stream_id=self.stream_id)
            self._task = self._start()

    async def _run(self) -> None:
        try:
            await self.publisher.run()
        except PublishRefused as exc:
            self.refused = True
            log.error("stream_refused", stream_id=self.stream_id, reason=str(exc))

    async def wait_live(self, timeout: float) -> bool:
        waiter = asyncio.create_task(self.publisher.connected.wait())
        await asyncio.wait(
            [waiter, self._task], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        return self.live

    async def stop(self) -> None:
        self._stopped = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

"""One live stream of the agent: the configured camera, published over WHIP. Imported only
when a stream starts, so an idle agent never loads the media stack."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from agent.config import AgentSettings
from agent.publisher import PublishRefused, WhipPublisher
from firmware_bridge.filesource import FileVideoSource
from firmware_bridge.live import rtsp_source, v4l2_source
from firmware_bridge.media import VideoSource
from firmware_bridge.synthetic import SyntheticCamera
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


class LiveStream:
    def __init__(
        self,
        settings: AgentSettings,
        stream_id: str,
        token: str,
        source: VideoSource | None = None,
    ) -> None:
        assert settings.center_url is not None
        self.stream_id = stream_id
        self.publisher = WhipPublisher(
            f"{settings.center_url.rstrip('/')}/whip/{stream_id}",
            token,
            source or make_source(settings),
            apply_ice(settings.ice),
        )
        self._task = asyncio.create_task(self._run(), name=f"stream-{stream_id}")
        self.refused = False

    @property
    def running(self) -> bool:
        return not self._task.done()

    @property
    def live(self) -> bool:
        return self.running and self.publisher.connected.is_set()

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
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

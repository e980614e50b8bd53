"""The camera, always on while evidence is kept: one reader of the video source hands every
frame to the evidence side (pre-event buffer, recorder) and to any live stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import structlog

from firmware_bridge.media import (
    AudioFormat,
    AudioSource,
    EncodedAudio,
    EncodedFrame,
    VideoCodec,
    VideoSource,
)
from runtime.media import GopCache, KeyframeQueue

log = structlog.get_logger("rtcc.agent.capture")
SUBSCRIBER_FRAMES = 120


class _Subscriber:
    """One live stream's queue, and the event its reader waits on."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.queue: KeyframeQueue[EncodedFrame] = KeyframeQueue(
            SUBSCRIBER_FRAMES, on_ready=self.ready.set
        )


class Capture:
    """A VideoSource itself, so the live publisher takes it like any camera."""

    def __init__(
        self,
        source: VideoSource,
        on_frame: Callable[[EncodedFrame], None],
        on_audio: Callable[[EncodedAudio], None] | None = None,
    ) -> None:
        self.source = source
        self.codec: VideoCodec = source.codec
        self._on_frame = on_frame
        if on_audio is not None and isinstance(source, AudioSource):
            source.audio_sink = on_audio
        self._subscribers: set[_Subscriber] = set()
        # The GOP in progress, so a new live stream starts at once from its keyframe instead
        # of waiting for the camera's next one (a pass-through camera cannot be asked).
        self._gop: GopCache[EncodedFrame] = GopCache(SUBSCRIBER_FRAMES // 2)
        self.frames_seen = 0
        self.dropped_for_subscribers = 0

    # A live camera learns its size when it connects: always ask the source.
    @property
    def width(self) -> int:
        return self.source.width

    @property
    def height(self) -> int:
        return self.source.height

    @property
    def fps(self) -> float:
        return self.source.fps

    @property
    def audio(self) -> AudioFormat | None:
        return self.source.audio if isinstance(self.source, AudioSource) else None

    async def run(self) -> None:
        async for frame in self.source.frames():
            self.frames_seen += 1
            self._on_frame(frame)
            self._gop.add(frame)
            for sub in self._subscribers:
                self._offer(sub, frame)
        log.warning("camera_source_ended")

    def _offer(self, sub: _Subscriber, frame: EncodedFrame) -> None:
        flushed = sub.queue.flushed
        # A consumer this far behind gets a clean restart at the next keyframe.
        if sub.queue.offer(frame):
            self.source.request_keyframe()
        self.dropped_for_subscribers += sub.queue.flushed - flushed

    async def frames(self) -> AsyncIterator[EncodedFrame]:
        sub = _Subscriber()
        for cached in self._gop.frames:
            sub.queue.offer(cached)
        self._subscribers.add(sub)
        if sub.queue.waiting_for_keyframe:
            self.source.request_keyframe()
        try:
            while True:
                queued = sub.queue.pop()
                if queued is not None:
                    yield queued
                    continue
                sub.ready.clear()
                await sub.ready.wait()
        finally:
            self._subscribers.discard(sub)

    def request_keyframe(self) -> None:
        self.source.request_keyframe()

"""Live cameras read through FFmpeg: RTSP (body-cam docks, IP cameras) and V4L2 / UVC
devices that deliver H.264. Packets pass through as received, no decode, no encode.
Demuxing blocks, so it runs in a thread of its own that hands frames to the event loop;
when the camera goes away the source reconnects with the caller's backoff, for as long as
it is read. `SubstreamSwitch` serves a live stream from a camera's main stream or its
low-rate substream, switching between them while running."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from typing import Any

import av

from firmware_bridge.media import (
    AudioFormat,
    EncodedAudio,
    EncodedFrame,
    VideoCodec,
    VideoSource,
    audio_format,
)
from runtime.media import CLOCK_RATE, nal_types

FRAME_QUEUE = 120
SWITCH_QUEUE = 8
OPEN_TIMEOUT_US = 5_000_000
NAL_SPS = 7


class LiveSourceError(Exception):
    pass


class LiveVideoSource:
    def __init__(
        self,
        url: str,
        retry_delay: Callable[[int], float],
        container_format: str | None = None,
        options: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.codec: VideoCodec = "h264"
        self.width = 0
        self.height = 0
        self.fps = 30.0
        self.connects = 0
        self.failures = 0
        self.audio: AudioFormat | None = None
        self.audio_sink: Callable[[EncodedAudio], None] | None = None
        self._retry_delay = retry_delay
        self._format = container_format
        self._options = options or {}
        self._clock = clock

    def request_keyframe(self) -> None:
        """Neither RTSP nor V4L2 can ask; the camera's own GOP decides."""

    async def frames(self) -> AsyncIterator[EncodedFrame]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[EncodedFrame | Exception | None] = asyncio.Queue(FRAME_QUEUE)
        stop = threading.Event()

        def deliver(item: EncodedFrame | Exception | None) -> None:
            if queue.full() and isinstance(item, EncodedFrame):
                return  # the consumer stalled: drop, never block the reader
            queue.put_nowait(item)

        def reader() -> None:
            try:
                self._read(
                    stop,
                    lambda item: loop.call_soon_threadsafe(deliver, item),
                    lambda audio: loop.call_soon_threadsafe(self._to_sink, audio),
                )
            except Exception as exc:
                loop.call_soon_threadsafe(deliver, exc)

        attempt = 0
        while True:
            stop.clear()
            thread = threading.Thread(target=reader, name="camera-reader", daemon=True)
            thread.start()
            try:
                while True:
                    item = await queue.get()
                    if item is None or isinstance(item, Exception):
                        break
                    attempt = 0
                    yield item
            finally:
                stop.set()
                await asyncio.to_thread(thread.join)
            self.failures += 1
            delay = self._retry_delay(attempt)
            attempt += 1
            await asyncio.sleep(delay)

    def _to_sink(self, packet: EncodedAudio) -> None:
        if self.audio_sink is not None:
            self.audio_sink(packet)

    def _read(
        self,
        stop: threading.Event,
        emit: Callable[[Any], object],
        emit_audio: Callable[[EncodedAudio], object],
    ) -> None:
        """One connection: demux until it ends, fails, or `stop` is set."""
        try:
            container: Any = av.open(
                self.url, format=self._format, options=self._options, timeout=5.0
            )
        except (av.FFmpegError, OSError) as exc:
            emit(LiveSourceError(f"{self.url}: {exc}"))
            return
        with container:
            streams = container.streams.video
            if not streams or streams[0].codec_context.name != "h264":
                emit(LiveSourceError(f"{self.url}: no H.264 video"))
                return
            stream = streams[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            self.audio = audio_format(audio) if audio is not None else None
            if self.audio is None or self.audio_sink is None:
                audio = None
            self.connects += 1
            self.width, self.height = stream.codec_context.width, stream.codec_context.height
            self.fps = float(stream.average_rate or stream.guessed_rate or 30)
            extradata = bytes(stream.codec_context.extradata or b"")
            time_base = stream.time_base
            first: int | None = None
            with contextlib.suppress(av.FFmpegError, OSError):
                for packet in container.demux(*(s for s in (stream, audio) if s is not None)):
                    if stop.is_set():
                        return
                    if packet.size == 0 or packet.pts is None or time_base is None:
                        continue
                    if packet.stream.type == "audio":
                        duration = float((packet.duration or 0) * (packet.time_base or 0))
                        emit_audio(EncodedAudio(bytes(packet), duration, self._clock()))
                        continue
                    first = packet.pts if first is None else first
                    data = bytes(packet)
                    keyframe = bool(packet.is_keyframe)
                    # Out-of-band SPS/PPS (from the SDP) go in front of each keyframe, so
                    # every keyframe starts a decodable stream on its own.
                    if keyframe and extradata and NAL_SPS not in nal_types(data):
                        data = extradata + data
                    pts = round(float((packet.pts - first) * time_base) * CLOCK_RATE)
                    emit(EncodedFrame("h264", data, pts, keyframe, self._clock()))
        emit(None)


def rtsp_source(
    url: str, retry_delay: Callable[[int], float], transport: str = "tcp"
) -> LiveVideoSource:
    if not url.startswith(("rtsp://", "rtsps://")):
        raise LiveSourceError(f"{url!r} is not an rtsp:// URL")
    options = {"rtsp_transport": transport, "timeout": str(OPEN_TIMEOUT_US)}
    return LiveVideoSource(url, retry_delay, options=options)


def v4l2_source(
    device: str, retry_delay: Callable[[int], float], width: int, height: int, fps: float
) -> LiveVideoSource:
    """A UVC camera that encodes H.264 itself (MJPEG or raw ones would need an encoder)."""
    options = {
        "input_format": "h264",
        "video_size": f"{width}x{height}",
        "framerate": f"{fps:g}",
    }
    return LiveVideoSource(device, retry_delay, container_format="v4l2", options=options)


class _Timeline:
    """Timestamps that continue across a switch: the new stream's first keyframe follows the
    last frame sent by the capture time between them."""

    def __init__(self) -> None:
        self._offset = 0
        self._last_pts: int | None = None
        self._last_at: float | None = None

    def is_after_last(self, frame: EncodedFrame) -> bool:
        return self._last_at is None or frame.captured_at >= self._last_at

    def place(self, frame: EncodedFrame) -> EncodedFrame:
        self._last_pts, self._last_at = frame.pts + self._offset, frame.captured_at
        return replace(frame, pts=self._last_pts) if self._offset else frame

    def rebase(self, frame: EncodedFrame) -> EncodedFrame:
        if self._last_pts is not None and self._last_at is not None:
            gap = max(1, round((frame.captured_at - self._last_at) * CLOCK_RATE))
            self._offset = self._last_pts + gap - frame.pts
        return self.place(frame)


_Item = tuple[bool, EncodedFrame | None] | None  # (from the substream?, frame or end); None: wake


class SubstreamSwitch:
    """A live stream from a camera's main stream, or from its low-rate substream while
    `use_substream(True)`. A switch takes effect at the other stream's first keyframe
    captured after the last frame sent (the old stream flows until then), so a viewer never
    gets a broken picture; timestamps continue across it. Only the stream in use is read,
    both during a switch, so the substream's connection exists only while it is wanted."""

    def __init__(self, main: VideoSource, sub: VideoSource) -> None:
        if sub.codec != main.codec:
            raise LiveSourceError(f"substream codec {sub.codec} differs from {main.codec}")
        self.codec: VideoCodec = main.codec
        self._main, self._sub = main, sub
        self._want_sub = False
        self._wake: Callable[[], None] | None = None
        self.on_substream = False
        self.switches = 0

    def _current(self) -> VideoSource:
        return self._sub if self.on_substream else self._main

    @property
    def width(self) -> int:
        return self._current().width

    @property
    def height(self) -> int:
        return self._current().height

    @property
    def fps(self) -> float:
        return self._current().fps

    def request_keyframe(self) -> None:
        self._current().request_keyframe()

    def use_substream(self, on: bool) -> None:
        self._want_sub = on
        if self._wake is not None:
            self._wake()

    async def _pump(self, on_sub: bool, queue: asyncio.Queue[_Item]) -> None:
        frames = (self._sub if on_sub else self._main).frames()
        try:
            async for frame in frames:
                await queue.put((on_sub, frame))
            await queue.put((on_sub, None))
        finally:
            closer = getattr(frames, "aclose", None)
            if closer is not None:
                await closer()

    async def frames(self) -> AsyncIterator[EncodedFrame]:
        queue: asyncio.Queue[_Item] = asyncio.Queue(SWITCH_QUEUE)
        pumps = _Pumps(self._pump, queue)

        def wake() -> None:
            if not queue.full():
                queue.put_nowait(None)

        current = self.on_substream = self._want_sub
        timeline = _Timeline()
        pumps.start(current)
        self._wake = wake
        try:
            while True:
                if await pumps.follow(self._want_sub, current):
                    (self._sub if not current else self._main).request_keyframe()
                item = await queue.get()
                if item is None or not pumps.running(item[0]):
                    continue
                on_sub, frame = item
                if frame is None:
                    if on_sub == current:
                        return
                    # The other stream is gone: stay on this one until asked again.
                    await pumps.stop(on_sub)
                    self._want_sub = current
                elif on_sub == current:
                    yield timeline.place(frame)
                elif frame.keyframe and timeline.is_after_last(frame):
                    await pumps.stop(current)
                    current = self.on_substream = on_sub
                    self.switches += 1
                    yield timeline.rebase(frame)
        finally:
            self._wake = None
            await pumps.close()


class _Pumps:
    """The tasks pumping the main stream and the substream into one queue."""

    def __init__(
        self,
        pump: Callable[[bool, asyncio.Queue[_Item]], Coroutine[Any, Any, None]],
        queue: asyncio.Queue[_Item],
    ) -> None:
        self._pump = pump
        self._queue = queue
        self._tasks: dict[bool, asyncio.Task[None]] = {}

    def running(self, on_sub: bool) -> bool:
        return on_sub in self._tasks

    def start(self, on_sub: bool) -> None:
        name = "substream" if on_sub else "main-stream"
        self._tasks[on_sub] = asyncio.create_task(self._pump(on_sub, self._queue), name=name)

    async def stop(self, on_sub: bool) -> None:
        task = self._tasks.pop(on_sub, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def follow(self, want: bool, current: bool) -> bool:
        """Start the other stream when it is wanted (True: it was started), stop it when
        it is not."""
        other = not current
        if want == other and other not in self._tasks:
            self.start(other)
            return True
        if want == current and other in self._tasks:
            await self.stop(other)
        return False

    async def close(self) -> None:
        for on_sub in list(self._tasks):
            await self.stop(on_sub)

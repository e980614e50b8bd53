"""Live cameras read through FFmpeg: RTSP (body-cam docks, IP cameras) and V4L2 / UVC
devices that deliver H.264. Packets pass through as received, no decode, no encode.
Demuxing blocks, so it runs in a thread of its own that hands frames to the event loop;
when the camera goes away the source reconnects with the caller's backoff, for as long as
it is read."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import av

from firmware_bridge.media import (
    CLOCK_RATE,
    AudioFormat,
    EncodedAudio,
    EncodedFrame,
    VideoCodec,
    audio_format,
)

FRAME_QUEUE = 120
OPEN_TIMEOUT_US = 5_000_000
NAL_SPS = 7


class LiveSourceError(Exception):
    pass


def _nal_types(annexb: bytes) -> set[int]:
    types = set()
    start = annexb.find(b"\x00\x00\x01")
    while start >= 0 and start + 3 < len(annexb):
        types.add(annexb[start + 3] & 0x1F)
        start = annexb.find(b"\x00\x00\x01", start + 3)
    return types


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
                    if keyframe and extradata and NAL_SPS not in _nal_types(data):
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

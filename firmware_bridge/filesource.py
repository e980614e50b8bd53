"""A video file as a camera: H.264 or VP8 packets passed through as they are (no decode,
no encode), paced by their timestamps, looping if asked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import av

from firmware_bridge.media import CLOCK_RATE, EncodedFrame, VideoCodec

CODECS: dict[str, VideoCodec] = {"h264": "h264", "vp8": "vp8"}


class FileSourceError(Exception):
    pass


class FileVideoSource:
    def __init__(
        self, path: Path, loop: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.loop = loop
        self._clock = clock
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                name = stream.codec_context.name
                self.width = stream.codec_context.width
                self.height = stream.codec_context.height
                self.fps = float(stream.average_rate or 30)
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise FileSourceError(f"{path}: not a readable video file ({exc})") from None
        if name not in CODECS:
            raise FileSourceError(f"{path}: codec {name} cannot pass through (H.264 or VP8)")
        self.codec: VideoCodec = CODECS[name]

    def request_keyframe(self) -> None:
        """Pass-through cannot make keyframes; the file's own keyframes come in time."""

    async def frames(self) -> AsyncIterator[EncodedFrame]:
        loop = asyncio.get_running_loop()
        offset = 0
        while True:
            started = loop.time()
            last_pts = 0
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                time_base = stream.time_base
                if time_base is None:
                    raise FileSourceError(f"{self.path}: video stream has no time base")
                bsf = (
                    av.BitStreamFilterContext("h264_mp4toannexb", stream)
                    if self.codec == "h264"
                    else None
                )
                first: int | None = None
                for packet in container.demux(stream):
                    if packet.pts is None or packet.size == 0:
                        continue
                    first = packet.pts if first is None else first
                    pts = round(float((packet.pts - first) * time_base) * CLOCK_RATE)
                    delay = started + pts / CLOCK_RATE - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    # Read before filtering: the filter takes the packet's contents.
                    keyframe = bool(packet.is_keyframe)
                    for out in bsf.filter(packet) if bsf is not None else [packet]:
                        yield EncodedFrame(
                            self.codec, bytes(out), offset + pts, keyframe, self._clock()
                        )
                    last_pts = pts
            if not self.loop:
                return
            offset += last_pts + round(CLOCK_RATE / self.fps)

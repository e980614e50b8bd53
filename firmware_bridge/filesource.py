"""A video file as a camera: H.264 or VP8 packets passed through as they are (no decode,
no encode), paced by their timestamps, looping if asked. An AAC or Opus track goes, also
untouched, to the audio sink if one is set."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import av

from firmware_bridge.media import (
    AudioFormat,
    EncodedAudio,
    EncodedFrame,
    VideoCodec,
    audio_format,
)
from runtime.media import CLOCK_RATE

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
        self.audio: AudioFormat | None = None
        self.audio_sink: Callable[[EncodedAudio], None] | None = None
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                name = stream.codec_context.name
                self.width = stream.codec_context.width
                self.height = stream.codec_context.height
                self.fps = float(stream.average_rate or 30)
                if container.streams.audio:
                    self.audio = audio_format(container.streams.audio[0])
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise FileSourceError(f"{path}: not a readable video file ({exc})") from None
        if name not in CODECS:
            raise FileSourceError(f"{path}: codec {name} cannot pass through (H.264 or VP8)")
        self.codec: VideoCodec = CODECS[name]

    def request_keyframe(self) -> None:
        """Pass-through cannot make keyframes; the file's own keyframes come in time."""

    @property
    def nominal_bitrate(self) -> int | None:
        """The file's bitrate is what it is: pass-through cannot change it."""
        return None

    def set_bitrate(self, bitrate: int) -> None:
        """Pass-through cannot re-encode; the live stream steps down by other means."""

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
                sink = self.audio_sink if self.audio is not None else None
                audio = container.streams.audio[0] if sink is not None else None
                first: int | None = None
                for packet in container.demux(*(s for s in (stream, audio) if s is not None)):
                    if packet.pts is None or packet.size == 0:
                        continue
                    if packet.stream.type == "audio":
                        assert sink is not None
                        duration = float((packet.duration or 0) * (packet.time_base or 0))
                        sink(EncodedAudio(bytes(packet), duration, self._clock()))
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

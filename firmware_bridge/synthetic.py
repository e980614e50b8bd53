"""The simulator's camera: the test pattern, encoded once, paced in real time."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import av
from av.video.codeccontext import VideoCodecContext

from firmware_bridge.media import CLOCK_RATE, EncodedFrame, VideoCodec
from firmware_bridge.pattern import PatternRenderer

ENCODERS = {"h264": "libx264", "vp8": "libvpx"}


class SyntheticCamera:
    def __init__(
        self,
        codec: VideoCodec = "h264",
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        keyframe_interval_s: float = 2.0,
        bitrate: int = 1_000_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if codec not in ENCODERS:
            raise ValueError(f"unsupported codec {codec!r}")
        if not 1 <= fps <= 60:
            raise ValueError("fps must be within 1..60")
        self.codec: VideoCodec = codec
        self.width, self.height, self.fps = width, height, fps
        self._renderer = PatternRenderer(width, height)
        self._clock = clock
        self._keyframe_wanted = True
        self._encoder = cast(VideoCodecContext, av.CodecContext.create(ENCODERS[codec], "w"))
        enc = self._encoder
        enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
        enc.bit_rate = bitrate
        enc.time_base = fractions.Fraction(1, CLOCK_RATE)
        enc.framerate = fractions.Fraction(round(fps * 1000), 1000)
        enc.gop_size = max(1, round(fps * keyframe_interval_s))
        if codec == "h264":
            enc.profile = "Baseline"
            enc.options = {"tune": "zerolatency", "level": "31", "preset": "veryfast"}
        else:
            enc.options = {
                "deadline": "realtime",
                "cpu-used": "-6",
                "lag-in-frames": "0",
                "kf-max-dist": str(enc.gop_size),
            }

    def request_keyframe(self) -> None:
        self._keyframe_wanted = True

    def encode_at(self, frame_no: int, wall: float) -> list[EncodedFrame]:
        """Picture `frame_no`, captured at `wall`, encoded now (no pacing)."""
        pts = round(frame_no * CLOCK_RATE / self.fps)
        return [
            EncodedFrame(self.codec, bytes(packet), pts, packet.is_keyframe, wall)
            for packet in self._encode(frame_no, wall, pts)
        ]

    def _encode(self, frame_no: int, wall: float, pts: int) -> list[av.Packet[Any]]:
        y, u, v = self._renderer.render(frame_no, int(wall * 1000))
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, data in zip(frame.planes, (y, u, v), strict=True):
            plane.update(data)
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, CLOCK_RATE)
        if self._keyframe_wanted:
            frame.pict_type = av.video.frame.PictureType.I
            self._keyframe_wanted = False
        return list(self._encoder.encode(frame))

    async def frames(self) -> AsyncIterator[EncodedFrame]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        frame_no = 0
        while True:
            delay = started + frame_no / self.fps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                # Fell far behind (a stalled loop): skip ahead rather than burst.
                started = loop.time() - frame_no / self.fps
            for frame in await asyncio.to_thread(self.encode_at, frame_no, self._clock()):
                yield frame
            frame_no += 1

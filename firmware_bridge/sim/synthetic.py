"""The simulator's camera: the test pattern, encoded once, paced in real time.

Its bitrate can change while it runs (`set_bitrate`, for a thin uplink). The encoder opens
with a one-second VBV buffer at the bitrate asked: no frame, keyframes included, carries
more than a second's worth, so a keyframe fits the queue of a thin link. x264 takes a new
bitrate without a keyframe (FFmpeg reconfigures it before the next frame, VBV being on) as
long as that buffer stays within 2x of it; past that, or for VP8 (FFmpeg's libvpx wrapper
cannot reconfigure) on a change of more than 10 %, the encoder reopens, which costs one
keyframe. Below half the nominal bitrate the frame rate drops too (fewer, better pictures);
x264 budgets bits per frame at the rate it was opened with, so the bitrate asked of it is
scaled up by the ratio (libvpx reads the timestamps and needs no such help).

One encoder serves every reader in turn: a live stream rebuilt at once starts reading while
the old reader's last frame may still be encoding in its thread (a thread cannot be
cancelled), so encoding is serialized, and picture numbers and timestamps carry on from one
reader to the next instead of starting again at zero.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import av
from av.video.codeccontext import VideoCodecContext

from firmware_bridge.media import EncodedFrame, VideoCodec
from firmware_bridge.sim.pattern import PatternRenderer
from runtime.media import CLOCK_RATE, TIME_BASE

ENCODERS = {"h264": "libx264", "vp8": "libvpx"}
MIN_BITRATE = 16_000
REOPEN_CHANGE = 0.1
VBV_SPAN = 2.0


def frame_rate_for(bitrate: int, nominal_bitrate: int, nominal_fps: float) -> float:
    """Full rate down to half the nominal bitrate, then half, then a third (at least 1)."""
    ratio = bitrate / nominal_bitrate
    divisor = 1 if ratio >= 0.5 else 2 if ratio >= 0.25 else 3
    return max(1.0, min(nominal_fps, nominal_fps / divisor))


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
        self._nominal_fps = fps
        self._nominal_bitrate = bitrate
        self._keyframe_interval_s = keyframe_interval_s
        self._renderer = PatternRenderer(width, height)
        self._clock = clock
        self._keyframe_wanted = True
        # Asked for on the event loop, applied by the encoding thread before its next frame.
        self._wanted_bitrate = bitrate
        self._applied_bitrate = bitrate
        self._applied_fps = fps
        self._rate_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        # Where the next reader of frames() starts: picture number and timestamp.
        self._next_no = 0
        self._next_pts = 0
        self._vbv_bits = bitrate
        self._encoder = self._open(bitrate, fps)

    def _budget(self, bitrate: int, fps: float) -> int:
        return round(bitrate * self._nominal_fps / fps) if self.codec == "h264" else bitrate

    def _open(self, bitrate: int, fps: float) -> VideoCodecContext:
        enc = cast(VideoCodecContext, av.CodecContext.create(ENCODERS[self.codec], "w"))
        enc.width, enc.height, enc.pix_fmt = self.width, self.height, "yuv420p"
        enc.bit_rate = self._budget(bitrate, fps)
        enc.time_base = TIME_BASE
        enc.framerate = fractions.Fraction(round(self._nominal_fps * 1000), 1000)
        enc.gop_size = max(1, round(self._nominal_fps * self._keyframe_interval_s))
        # One thread: a test pattern takes about a millisecond a frame, and encoder threads
        # that wait on each other stall for tens of milliseconds when other processes hold
        # the cores (a gateway's or a test machine's), costing frames.
        enc.thread_count = 1
        self._vbv_bits = bitrate
        if self.codec == "h264":
            enc.profile = "Baseline"
            enc.options = {
                "tune": "zerolatency",
                "level": "31",
                "preset": "veryfast",
                # The ceiling stays nominal, so that a higher bitrate can be reconfigured.
                "maxrate": str(self._nominal_bitrate),
                "bufsize": str(bitrate),
            }
        else:
            enc.options = {
                "deadline": "realtime",
                "cpu-used": "-6",
                "lag-in-frames": "0",
                "kf-max-dist": str(enc.gop_size),
                "bufsize": str(bitrate),
            }
        return enc

    @property
    def nominal_bitrate(self) -> int | None:
        return self._nominal_bitrate

    def set_bitrate(self, bitrate: int) -> None:
        bitrate = max(MIN_BITRATE, min(self._nominal_bitrate, bitrate))
        with self._rate_lock:
            self._wanted_bitrate = bitrate
            self.fps = frame_rate_for(bitrate, self._nominal_bitrate, self._nominal_fps)

    def _apply_rate(self) -> None:
        """In the encoding thread: bring the encoder to the wanted bitrate and frame rate."""
        with self._rate_lock:
            wanted, fps = self._wanted_bitrate, self.fps
        if wanted == self._applied_bitrate and fps == self._applied_fps:
            return
        vbv = self._vbv_bits
        if self.codec == "h264" and vbv / VBV_SPAN <= wanted <= vbv * VBV_SPAN:
            self._encoder.bit_rate = self._budget(wanted, fps)
        elif (
            self.codec == "vp8"
            and abs(wanted - self._applied_bitrate) <= REOPEN_CHANGE * self._applied_bitrate
            and fps == self._applied_fps
        ):
            return
        else:
            self._encoder = self._open(wanted, fps)
        self._applied_bitrate, self._applied_fps = wanted, fps

    def request_keyframe(self) -> None:
        self._keyframe_wanted = True

    def encode_at(self, frame_no: int, wall: float, pts: int | None = None) -> list[EncodedFrame]:
        """Picture `frame_no`, captured at `wall`, encoded now (no pacing). `pts` defaults to
        the frame's place at the nominal frame rate."""
        if pts is None:
            pts = round(frame_no * CLOCK_RATE / self._nominal_fps)
        with self._encode_lock:
            self._apply_rate()
            packets = self._encode(frame_no, wall, pts)
        return [
            EncodedFrame(self.codec, bytes(packet), pts, packet.is_keyframe, wall)
            for packet in packets
        ]

    def _encode(self, frame_no: int, wall: float, pts: int) -> list[av.Packet[Any]]:
        y, u, v = self._renderer.render(frame_no, int(wall * 1000))
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, data in zip(frame.planes, (y, u, v), strict=True):
            plane.update(data)
        frame.pts = pts
        frame.time_base = TIME_BASE
        if self._keyframe_wanted:
            frame.pict_type = av.video.frame.PictureType.I
            self._keyframe_wanted = False
        return list(self._encoder.encode(frame))

    async def frames(self) -> AsyncIterator[EncodedFrame]:
        loop = asyncio.get_running_loop()
        # Pacing and timestamps restart from each change of frame rate, so both stay exact.
        fps = self.fps
        started, first_no, first_pts = loop.time(), self._next_no, self._next_pts
        frame_no = first_no
        while True:
            if self.fps != fps:
                first_pts += round((frame_no - first_no) * CLOCK_RATE / fps)
                started += (frame_no - first_no) / fps
                first_no, fps = frame_no, self.fps
            delay = started + (frame_no - first_no) / fps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                # Fell far behind (a stalled loop): skip ahead rather than burst.
                started = loop.time() - (frame_no - first_no) / fps
            pts = first_pts + round((frame_no - first_no) * CLOCK_RATE / fps)
            self._next_no, self._next_pts = frame_no + 1, pts + round(CLOCK_RATE / fps)
            for frame in await asyncio.to_thread(self.encode_at, frame_no, self._clock(), pts):
                yield frame
            frame_no += 1

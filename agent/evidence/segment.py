"""One evidence segment on disk: encoded frames remuxed, never re-encoded, into fragmented
MP4 (H.264) or WebM (VP8), so even a segment cut short by a power loss stays playable up to
its last complete fragment."""

from __future__ import annotations

import fractions
import os
from pathlib import Path
from typing import Any

import av

from firmware_bridge.media import AudioFormat, EncodedAudio, EncodedFrame, VideoCodec
from runtime.files import fsync_dir, sha256_file
from runtime.media import CLOCK_RATE, TIME_BASE

CONTAINERS: dict[VideoCodec, tuple[str, dict[str, str]]] = {
    "h264": ("mp4", {"movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof"}),
    "vp8": ("webm", {}),
}
PARTIAL = ".part"


def segment_name(recording_id: str, index: int, codec: VideoCodec) -> str:
    return f"{recording_id}-{index:05d}.{CONTAINERS[codec][0]}"


class SegmentWriter:
    """Writes `<name>.part`; `finish()` flushes, fsyncs and renames it to `<name>`."""

    def __init__(
        self,
        directory: Path,
        name: str,
        codec: VideoCodec,
        width: int,
        height: int,
        audio: AudioFormat | None = None,
    ) -> None:
        self.path = directory / name
        self.partial = directory / (name + PARTIAL)
        self.codec = codec
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.frames = 0
        container_format, options = CONTAINERS[codec]
        self._out: Any = av.open(str(self.partial), "w", format=container_format, options=options)
        stream = self._out.add_stream(codec, rate=30)
        stream.width, stream.height = width, height
        stream.time_base = TIME_BASE
        self._stream = stream
        self._last_pts = -1
        self._audio: Any = None
        if audio is not None and (codec == "h264" or audio.codec == "opus"):
            # WebM carries only Opus; MP4 both.
            self._audio = self._out.add_stream(audio.codec, rate=audio.sample_rate)
            self._audio.codec_context.layout = "stereo" if audio.channels == 2 else "mono"
            if audio.extradata:
                self._audio.codec_context.extradata = audio.extradata
            self._audio.time_base = fractions.Fraction(1, audio.sample_rate)
        self._next_audio_pts: int | None = None
        self.audio_packets = 0

    def write(self, frame: EncodedFrame) -> None:
        if self.first_at is None:
            self.first_at = frame.captured_at
        # Wall-clock capture times, never going backwards even if the clock is stepped.
        pts = max(self._last_pts + 1, round((frame.captured_at - self.first_at) * CLOCK_RATE))
        self._last_pts = pts
        packet = av.Packet(frame.data)
        packet.stream = self._stream
        packet.pts = packet.dts = pts
        packet.time_base = TIME_BASE
        packet.is_keyframe = frame.keyframe
        self._out.mux(packet)
        self.last_at = frame.captured_at
        self.frames += 1

    def write_audio(self, packet: EncodedAudio) -> None:
        """Sound from the segment's first picture on (earlier sound has no picture to join)."""
        if self._audio is None or self.first_at is None or packet.captured_at < self.first_at:
            return
        rate = self._audio.time_base.denominator
        # The first packet is placed by its capture time, the rest follow on by their own
        # durations: sound read in bursts must still play evenly.
        if self._next_audio_pts is None:
            pts = round((packet.captured_at - self.first_at) * rate)
        else:
            pts = self._next_audio_pts
        self._next_audio_pts = pts + max(1, round(packet.duration_s * rate))
        out = av.Packet(packet.data)
        out.stream = self._audio
        out.pts = out.dts = pts
        out.time_base = self._audio.time_base
        self._out.mux(out)
        self.audio_packets += 1

    def finish(self) -> tuple[int, str]:
        """Close, make durable, publish under the final name; (size, SHA-256)."""
        self._out.close()
        with self.partial.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.partial, self.path)
        fsync_dir(self.path.parent)
        return self.path.stat().st_size, sha256_file(self.path)

    def abandon(self) -> None:
        """Close without publishing (the .part stays for recovery to quarantine)."""
        self._out.close()

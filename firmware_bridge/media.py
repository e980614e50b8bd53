"""Encoded video as every source hands it to the agent: one interface for the simulator,
files, RTSP and V4L2 cameras."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

VideoCodec = Literal["h264", "vp8"]
AudioCodec = Literal["aac", "opus"]


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded picture. H.264 is an Annex-B access unit (start codes, SPS/PPS before
    each keyframe); VP8 is one frame. `pts` counts 1/90000 s; `captured_at` is wall-clock."""

    codec: VideoCodec
    data: bytes
    pts: int
    keyframe: bool
    captured_at: float


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A source's audio track. `extradata` is the codec's setup (AAC AudioSpecificConfig)."""

    codec: AudioCodec
    sample_rate: int
    channels: int
    extradata: bytes = b""


@dataclass(frozen=True, slots=True)
class EncodedAudio:
    """One encoded audio packet; `captured_at` is wall-clock, like a video frame's."""

    data: bytes
    duration_s: float
    captured_at: float


AUDIO_CODECS: dict[str, AudioCodec] = {"aac": "aac", "opus": "opus"}


def audio_format(stream: Any) -> AudioFormat | None:
    """A demuxed audio stream's format if it can be recorded as it is (AAC or Opus)."""
    context = stream.codec_context
    if context.name not in AUDIO_CODECS:
        return None
    return AudioFormat(
        AUDIO_CODECS[context.name],
        context.sample_rate,
        context.channels,
        bytes(context.extradata or b""),
    )


class VideoSource(Protocol):
    codec: VideoCodec

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def fps(self) -> float: ...

    def frames(self) -> AsyncIterator[EncodedFrame]:
        """Frames paced in real time, until the source ends or the iterator is closed."""
        ...

    def request_keyframe(self) -> None:
        """Ask for a keyframe soon (a viewer joined or lost one); a pass-through source
        that cannot encode ignores it."""
        ...


@runtime_checkable
class RateControl(Protocol):
    """Optional capability of a video source: change the bitrate while running, without a
    restart (a thin uplink). Only a source that encodes itself can; pass-through sources
    (files, RTSP and V4L2 cameras) report `nominal_bitrate` None and ignore `set_bitrate`."""

    @property
    def nominal_bitrate(self) -> int | None:
        """The configured bitrate (bits per second), or None if the rate cannot change."""
        ...

    def set_bitrate(self, bitrate: int) -> None:
        """Aim at `bitrate` (capped at the nominal one) from the next frame on; the source
        picks a frame rate to suit and avoids a keyframe where its encoder allows."""
        ...


@runtime_checkable
class AudioSource(Protocol):
    """A source that also has sound: it hands each audio packet, as read, to `audio_sink`
    (set by the consumer before reading frames; None: the source drops its audio)."""

    audio: AudioFormat | None
    audio_sink: Callable[[EncodedAudio], None] | None

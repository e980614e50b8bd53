"""A window of a stream's recent frames as a file a browser plays: H.264 remuxed into
fragmented MP4 (a fragment per keyframe, so a player starts and seeks at any of them),
VP8 into WebM. Remuxed, never transcoded: the bytes of every frame are the camera's.
No I/O and no clock; blocking (CPU), so callers run it off their event loop."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import av

from central.errors import NotFound, Unavailable
from central.relay.keyframe_size import TruncatedHeader, keyframe_size
from central.relay.recent import RecentFrame
from central.relay.rewind_models import Clip
from runtime.media import TIME_BASE

# codec -> (container, media type, muxer options)
CONTAINERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "h264": (
        "mp4",
        "video/mp4",
        {"movflags": "frag_keyframe+empty_moov+default_base_moof"},
    ),
    "vp8": ("webm", "video/webm", {}),
}
# Only a hint in the file's headers: every frame carries its own timestamp.
NOMINAL_FPS = 30


def mux_clip(codec: str, frames: Sequence[RecentFrame]) -> Clip:
    """The frames (starting with a keyframe) in one file. NotFound when there are none;
    Unavailable for a codec without a container here or a keyframe that does not say its
    picture size."""
    if codec not in CONTAINERS:
        raise Unavailable(f"no rewind of {codec} streams")
    if not frames:
        raise NotFound("the relay holds nothing of that time")
    try:
        size = keyframe_size(codec, frames[0].data)
    except TruncatedHeader as exc:
        raise Unavailable(f"the first keyframe has a broken header: {exc}") from None
    if size is None:
        raise Unavailable("the first keyframe does not say its picture size")
    container, media_type, options = CONTAINERS[codec]
    out = io.BytesIO()
    try:
        _mux(av.open(out, "w", format=container, options=options), codec, size, frames)
    except av.FFmpegError as exc:
        raise Unavailable(f"the frames could not be put in a file: {exc}") from None
    return Clip(out.getvalue(), media_type, frames[0].at, frames[-1].at, len(frames))


def _mux(muxer: Any, codec: str, size: tuple[int, int], frames: Sequence[RecentFrame]) -> None:
    try:
        stream = muxer.add_stream(codec, rate=NOMINAL_FPS)
        stream.width, stream.height = size
        stream.time_base = TIME_BASE
        origin = frames[0].ts
        for frame in frames:
            packet = av.Packet(frame.data)
            packet.stream = stream
            packet.pts = packet.dts = frame.ts - origin
            packet.time_base = TIME_BASE
            packet.is_keyframe = frame.keyframe
            muxer.mux(packet)
    finally:
        muxer.close()

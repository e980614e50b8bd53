"""A still of a live stream: its latest keyframe decoded once, at the center, into a JPEG.

Only the keyframe is decoded, not the frames after it: it needs no other frame, so the cost
is one picture, and the still is exactly what the relay holds as the stream's latest
keyframe. The size its headers announce is checked before a decoder opens, and the decoder
itself refuses more pixels than that bound (a second SPS could say otherwise).
No I/O and no clock; blocking (CPU), so callers run it off their event loop.
"""

from __future__ import annotations

import fractions
from typing import Any, cast

import av
from av.video.codeccontext import VideoCodecContext

from central.errors import TooLarge, Unavailable
from central.relay.keyframe_size import TruncatedHeader, keyframe_size

MAX_SIDE = 4096
DECODERS = frozenset({"h264", "vp8"})
# FFmpeg's JPEG quantiser scale (2 best .. 31 worst); 3 keeps fine detail (plates, faces).
JPEG_QSCALE = 3
JPEG_PIXEL_FORMAT = "yuvj420p"
# An undecodable keyframe is worth asking again for: the next one may decode.
RETRY_S = 1


def keyframe_jpeg(codec: str, keyframe: bytes) -> bytes:
    """A JPEG of `keyframe` (one H.264 Annex-B access unit with its parameter sets, or one
    VP8 key frame). TooLarge for a picture wider or taller than MAX_SIDE; Unavailable when
    it cannot be decoded on its own (a later keyframe may be)."""
    if codec not in DECODERS:
        raise Unavailable(f"no stills of {codec} streams")
    try:
        size = keyframe_size(codec, keyframe)
    except TruncatedHeader as exc:
        raise Unavailable(
            f"the latest keyframe has a broken header: {exc}", retry_after_s=RETRY_S
        ) from None
    if size is None:
        raise Unavailable(
            "the latest keyframe does not say its picture size", retry_after_s=RETRY_S
        )
    width, height = size
    if width > MAX_SIDE or height > MAX_SIDE:
        raise TooLarge(f"a {width}x{height} picture is larger than {MAX_SIDE}x{MAX_SIDE}")
    return _jpeg(_decoded(codec, keyframe))


def _decoded(codec: str, keyframe: bytes) -> av.VideoFrame:
    decoder = cast(VideoCodecContext, av.CodecContext.create(codec, "r"))
    decoder.options = {"max_pixels": str(MAX_SIDE * MAX_SIDE)}
    # One picture: threads would only add a frame of delay and take cores from the media.
    decoder.thread_count = 1
    try:
        pictures = decoder.decode(av.Packet(keyframe)) or decoder.decode(None)
    except av.FFmpegError as exc:
        raise Unavailable(
            f"the latest keyframe could not be decoded: {exc}", retry_after_s=RETRY_S
        ) from None
    if not pictures:
        raise Unavailable("the latest keyframe decoded to no picture", retry_after_s=RETRY_S)
    return pictures[0]


def _jpeg(picture: av.VideoFrame) -> bytes:
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = picture.width, picture.height
    encoder.pix_fmt = JPEG_PIXEL_FORMAT
    encoder.time_base = fractions.Fraction(1, 1)
    encoder.qmin = encoder.qmax = JPEG_QSCALE
    # Full-range YUV, as JPEG (JFIF) has it: swscale expands the video range.
    full_range = picture.reformat(format=JPEG_PIXEL_FORMAT)
    full_range.pts = 0
    packets: list[av.Packet[Any]] = [*encoder.encode(full_range), *encoder.encode(None)]
    return b"".join(bytes(packet) for packet in packets)

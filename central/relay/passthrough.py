"""aiortc hooks that make a receiver hand over encoded frames instead of decoded pictures.

aiortc offers no forwarding without decoding, so two of its module globals are replaced,
process-wide (run relay media in its own process):
- `rtcrtpreceiver.get_decoder`: video "decoders" that wrap the reassembled frame in an
  `av.Packet` (pts = RTP timestamp, time base 1/90000, keyframe flag set);
- `rtcrtpreceiver.JitterBuffer`: releases a video frame as soon as its last packet (RTP
  marker bit) is in, instead of waiting for the next frame's first packet; and gives up on
  a hole that retransmission did not fill (a link cut), instead of stalling until 512
  packets have piled up behind it. The frame after such a hole is flagged (`is_corrupt`
  on its packet) so the relay waits for a keyframe, which the jitter buffer requests.
Pinned to aiortc 1.16.0; covered by the relay tests.
"""

from __future__ import annotations

import time
from typing import Any

import av
from aiortc import rtcrtpreceiver
from aiortc.codecs import get_decoder as aiortc_get_decoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from runtime.encoded_track import encoded_packet
from runtime.media import is_keyframe

PASSTHROUGH_MIME = {"video/H264": "h264", "video/VP8": "vp8"}


class PassthroughDecoder:
    """Stands where aiortc expects a decoder; never decodes."""

    def __init__(self, codec: str) -> None:
        self.codec = codec

    def decode(self, encoded_frame: JitterFrame) -> list[av.Packet[Any]]:
        packet = encoded_packet(encoded_frame.data, encoded_frame.timestamp)
        packet.is_keyframe = is_keyframe(self.codec, encoded_frame.data)
        packet.is_corrupt = getattr(encoded_frame, "after_loss", False)
        packet.opaque = getattr(encoded_frame, "released_at", None)
        return [packet]


def _get_decoder(codec: RTCRtpCodecParameters) -> Any:
    name = PASSTHROUGH_MIME.get(codec.mimeType)
    return PassthroughDecoder(name) if name else aiortc_get_decoder(codec)


# A hole with this many packets behind it will not be filled by retransmission.
HOLE_SKIP_PACKETS = 48


class MarkerJitterBuffer(JitterBuffer):
    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
        if frame is None and packet.marker and self._is_video:
            frame = self._release_marked(packet)
            if (
                frame is None
                and self._origin is not None
                and uint16_add(packet.sequence_number, -self._origin) > HOLE_SKIP_PACKETS
            ):
                frame = self._skip_hole(packet)
                pli = pli or frame is not None
        if frame is not None:
            # When the frame was complete here: the start of the relay's own delay.
            frame.released_at = time.monotonic()  # type: ignore[attr-defined]
        return pli, frame

    def _skip_hole(self, marked: RtpPacket) -> JitterFrame | None:
        """Drop what is before the newest provably complete frame and hand that frame over.
        A frame is provably complete when the packet just before it belongs to another
        frame (so its first packet is here) and none is missing up to its marker."""
        assert self._origin is not None
        start = uint16_add(marked.sequence_number, -self._origin)
        while start > 0:
            before = self._packets[(self._origin + start - 1) % self.capacity]
            if before is None:
                return None
            if before.timestamp != marked.timestamp:
                break
            start -= 1
        if start == 0:
            return None
        self.remove(start)
        frame = self._release_marked(marked)
        if frame is not None:
            frame.after_loss = True  # type: ignore[attr-defined]
        return frame

    def _release_marked(self, marked: RtpPacket) -> JitterFrame | None:
        """Hand over the oldest frame if it is complete up to the marked packet."""
        if self._origin is None:
            return None
        packets = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None or packet.timestamp != marked.timestamp:
                return None
            packets.append(packet)
            if packet is marked:
                self.remove(count + 1)
                data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
                return JitterFrame(data=data, timestamp=marked.timestamp)
        return None


def install() -> None:
    """Switch this process's aiortc receivers to pass-through. Idempotent."""
    setattr(rtcrtpreceiver, "get_decoder", _get_decoder)  # noqa: B010
    setattr(rtcrtpreceiver, "JitterBuffer", MarkerJitterBuffer)  # noqa: B010


def installed() -> bool:
    return getattr(rtcrtpreceiver, "get_decoder", None) is _get_decoder

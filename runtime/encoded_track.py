"""aiortc video tracks that emit already-encoded frames: aiortc packetizes them without
encoding (the agent's camera, the relay's viewers)."""

from __future__ import annotations

from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from runtime.media import TIME_BASE


def encoded_packet(data: bytes, pts: int) -> av.Packet[Any]:
    """An encoded frame as aiortc takes it: `pts` in 1/90000 s."""
    packet: av.Packet[Any] = av.Packet(data)
    packet.pts = pts
    packet.time_base = TIME_BASE
    return packet


class EncodedTrack(MediaStreamTrack):
    """Subclasses say what goes next in `next_encoded`."""

    kind = "video"

    async def next_encoded(self) -> tuple[bytes, int] | None:
        """The next frame's data and pts; None to look again (the track may have ended
        meanwhile); raise MediaStreamError when there is no more."""
        raise NotImplementedError

    async def recv(self) -> av.Packet[Any]:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            encoded = await self.next_encoded()
            if encoded is not None:
                return encoded_packet(*encoded)

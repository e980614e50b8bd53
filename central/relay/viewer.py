"""One viewer of a relayed stream: its peer connection and its video track."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from aiortc import RTCPeerConnection

from central.relay.fanout import StreamFanout, ViewerQueue
from runtime.encoded_track import EncodedTrack


class ViewerTrack(EncodedTrack):
    """One viewer's video: encoded frames from the fan-out, handed to aiortc's packetizer."""

    def __init__(self, fanout: StreamFanout, now: float, delays: deque[float]) -> None:
        super().__init__()
        self._ready = asyncio.Event()
        self._delays = delays
        self.queue: ViewerQueue = fanout.add_viewer(now, on_ready=self._ready.set)

    async def next_encoded(self) -> tuple[bytes, int] | None:
        frame = self.queue.pop()
        if frame is None:
            self._ready.clear()
            await self._ready.wait()
            return None
        if frame.arrived is not None:
            self._delays.append(time.monotonic() - frame.arrived)
        return frame.data, frame.pts

    def stop(self) -> None:
        super().stop()
        self._ready.set()


@dataclass
class Viewer:
    pc: RTCPeerConnection
    track: ViewerTrack
    who: str
    joined: float
    # The viewer's last RTCP (receiver report, PLI, REMB): proof its path is alive.
    last_rtcp: float | None = None

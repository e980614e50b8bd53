"""Rewind at a relay worker: a window of a stream's recent frames (`recent`) muxed into a
file (`rewind_mux`) in a thread, so the event loop that forwards media never waits on it.
A few muxes per worker at a time; the window is taken once a mux may start, so requests
waiting for their turn hold no frames."""

from __future__ import annotations

import asyncio

from central.errors import NotFound
from central.relay.recent import RecentBuffer
from central.relay.rewind_models import Clip, RecentSpan
from central.relay.rewind_mux import mux_clip
from central.relay.session import Relay

PARALLEL_MUXES = 2


class Rewinds:
    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._muxers = asyncio.Semaphore(PARALLEL_MUXES)

    def span(self, stream_id: str) -> RecentSpan:
        """What the worker holds of the stream. NotFound when nothing."""
        buffer = self._buffer(stream_id)
        span = buffer.span
        if span is None or buffer.codec is None:
            raise NotFound("the relay holds nothing of this stream")
        return RecentSpan(
            stream_id=stream_id,
            codec=buffer.codec,
            start=span[0],
            end=span[1],
            frames=buffer.frames,
            bytes=buffer.bytes,
        )

    async def clip(self, stream_id: str, since: float, until: float) -> Clip:
        """The frames that show [since, until] in one file (see `RecentBuffer.window`).
        NotFound when the worker holds none of them."""
        async with self._muxers:
            buffer = self._buffer(stream_id)
            codec, frames = buffer.codec, buffer.window(since, until)
            if codec is None or not frames:
                raise NotFound("the relay holds nothing of that time")
            return await asyncio.to_thread(mux_clip, codec, frames)

    def _buffer(self, stream_id: str) -> RecentBuffer:
        stream = self._relay.streams.get(stream_id)
        if stream is None or stream.recent is None:
            raise NotFound("the relay holds nothing of this stream")
        return stream.recent

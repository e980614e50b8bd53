"""Stills at a relay worker: the latest keyframe a live stream's fan-out caches, decoded
into a JPEG (`keyframe_jpeg`) in a thread, so the event loop that forwards media never
waits on a decoder.

- One still per stream at a time: a request while one is under way gets the same answer.
- A few decodes per worker at a time, however many streams are asked for at once.
- A live stream without a cached keyframe (just after a loss or a publisher's restart, or
  a GOP too long to cache) is asked for one, and it is waited for a little.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from central.errors import NotFound
from central.relay.keyframe_jpeg import keyframe_jpeg
from central.relay.session import Relay

KEYFRAME_WAIT_S = 2.0
# The fan-out is pure and signals nothing: a keyframe asked for is looked for this often.
KEYFRAME_POLL_S = 0.05
PARALLEL_DECODES = 2


class Stills:
    def __init__(self, relay: Relay, clock: Callable[[], float]) -> None:
        self._relay = relay
        self._clock = clock
        self._under_way: dict[str, asyncio.Task[bytes]] = {}
        self._decoders = asyncio.Semaphore(PARALLEL_DECODES)

    async def jpeg(self, stream_id: str) -> bytes:
        """A JPEG of the stream's latest keyframe. NotFound when the stream is not live or
        no keyframe came in time; see `keyframe_jpeg` for the rest."""
        task = self._under_way.get(stream_id)
        if task is None:
            task = asyncio.create_task(self._take(stream_id), name=f"still-{stream_id}")
            self._under_way[stream_id] = task
            task.add_done_callback(lambda done: self._finished(stream_id, done))
        # A caller that gives up does not cancel the still for the others waiting on it.
        return await asyncio.shield(task)

    def _finished(self, stream_id: str, task: asyncio.Task[bytes]) -> None:
        if self._under_way.get(stream_id) is task:
            del self._under_way[stream_id]
        if not task.cancelled():
            task.exception()  # retrieved here: every caller may have given up

    async def _take(self, stream_id: str) -> bytes:
        codec, keyframe = await self._latest_keyframe(stream_id)
        async with self._decoders:
            return await asyncio.to_thread(keyframe_jpeg, codec, keyframe)

    async def _latest_keyframe(self, stream_id: str) -> tuple[str, bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KEYFRAME_WAIT_S
        while True:
            stream = self._relay.streams.get(stream_id)
            if stream is None or stream.codec is None or not stream.live(self._clock()):
                raise NotFound("stream is not live")
            keyframe = stream.fanout.latest_keyframe
            if keyframe is not None:
                return stream.codec, keyframe.data
            if loop.time() >= deadline:
                raise NotFound("no keyframe from the stream yet")
            # At most once a second, however often it is called (the viewers' rate limit).
            stream.fanout.keyframe_wanted(self._clock())
            await asyncio.sleep(KEYFRAME_POLL_S)

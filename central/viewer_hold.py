"""Viewers held for a publisher on its way back.

After the center starts, or a relay worker restarts, the relay knows no stream until its unit
publishes again (the agent reconnects first, with backoff). A viewer joining then would be
answered 404 and wait out its own backoff after the video is back. Within a grace window
after the relay lost its streams, a join for a stream the center wants is held instead until
the stream's media reaches the relay, up to `hold_s`. Outside that window (a unit that is
simply offline) the 404 is immediate, so no page keeps connections open for nothing.

One wait per stream, shared by all its held viewers; at most MAX_HELD viewers at once; every
hold ends at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

# A unit back after a center restart has reconnected within this (its reconnect backoff is
# capped at 15 s by default).
GRACE_S = 30.0
MAX_HELD = 1000


class ViewerHold:
    def __init__(
        self,
        wait_live: Callable[[str, float], Coroutine[Any, Any, bool]],
        hold_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`wait_live(stream_id, seconds)`: True once the stream's media reaches the relay."""
        self._wait_live = wait_live
        self.hold_s = hold_s
        self._clock = clock
        self._lost_at = clock()  # at the center's start the relay knows no stream
        self._waits: dict[str, asyncio.Task[bool]] = {}
        self._closed: asyncio.Future[None] | None = None
        self.held = 0

    def relay_lost(self) -> None:
        """The relay (a worker) started afresh: its streams come back as units publish."""
        self._lost_at = self._clock()

    def may_hold(self) -> bool:
        closed = self._closed is not None and self._closed.done()
        recent = self._clock() - self._lost_at < GRACE_S
        return self.hold_s > 0 and recent and self.held < MAX_HELD and not closed

    async def wait(self, stream_id: str) -> bool:
        """True once the stream's media reached the relay; False after `hold_s` or when the
        center shuts down."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        task = self._waits.get(stream_id)
        if task is None or task.done():
            task = asyncio.create_task(self._wait_live(stream_id, self.hold_s))
            self._waits[stream_id] = task
            task.add_done_callback(self._forget)
        self.held += 1
        try:
            either: set[asyncio.Future[Any]] = {task, self._closed}
            await asyncio.wait(either, timeout=self.hold_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.held -= 1
        return task.done() and not task.cancelled() and task.exception() is None and task.result()

    async def close(self) -> None:
        """Ends every hold (its viewer gets the 404) and every wait."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        if not self._closed.done():
            self._closed.set_result(None)
        waits = list(self._waits.values())
        for task in waits:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waits, return_exceptions=True)

    def _forget(self, task: asyncio.Task[bool]) -> None:
        if not task.cancelled():
            task.exception()  # a failed wait is a "no": its error is nobody's to raise
        for stream_id, kept in list(self._waits.items()):
            if kept is task:
                del self._waits[stream_id]

"""A page's live feed as a test reads it: Server-Sent Events from /api/v1/live, parsed into
(id, name, data) as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.helpers import wait_for


@dataclass(frozen=True)
class LiveEvent:
    id: str | None
    name: str
    data: Any


@dataclass
class LiveFeed:
    events: list[LiveEvent] = field(default_factory=list)
    status: int | None = None
    ended: bool = False

    @property
    def last_id(self) -> str | None:
        return next((e.id for e in reversed(self.events) if e.id), None)

    def named(self, name: str) -> list[Any]:
        return [e.data for e in self.events if e.name == name]

    def units(self) -> dict[str, dict[str, Any]]:
        """Every unit as the page would show it now (snapshot, then updates)."""
        shown: dict[str, dict[str, Any]] = {}
        for event in self.events:
            if event.name == "snapshot":
                shown = {u["unit_id"]: u for u in event.data["units"]}
            elif event.name == "units":
                shown.update({u["unit_id"]: u for u in event.data["units"]})
        return shown

    async def wait(self, check: Callable[[LiveFeed], Any], timeout: float = 10) -> None:
        await wait_for(lambda: bool(check(self)), timeout=timeout)


def parse(block: str) -> LiveEvent | None:
    event_id, name, data = None, "message", []
    for line in block.split("\n"):
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "id":
            event_id = value
        elif key == "event":
            name = value
        elif key == "data":
            data.append(value)
    if not data:
        return None
    return LiveEvent(event_id, name, json.loads("\n".join(data)))


@contextlib.asynccontextmanager
async def following(
    http: httpx.AsyncClient, last_event_id: str | None = None
) -> AsyncIterator[LiveFeed]:
    """Follows the feed in the background while the block runs."""
    feed = LiveFeed()
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}

    async def read() -> None:
        async with http.stream("GET", "/api/v1/live", headers=headers, timeout=None) as answer:
            feed.status = answer.status_code
            buffer = ""
            async for chunk in answer.aiter_text():
                buffer += chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    event = parse(block)
                    if event is not None:
                        feed.events.append(event)
        feed.ended = True

    task = asyncio.create_task(read())
    try:
        await wait_for(lambda: feed.status is not None or task.done(), timeout=10)
        yield feed
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

"""The device records as the database has them, read again within a second of any change.

The database is the one record of who is enrolled and what is revoked: changes come from
the API, from `rtcc provision revoke` in another process, or from another center process
sharing the database. What the center refuses over HTTP (a revoked unit's WHIP publishing,
its uploads) and what the fleet ignores follow this view, whatever broker the center uses
and whether or not that broker is up; central/broker_access.py brings the supervised
broker in line with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from sqlalchemy.exc import SQLAlchemyError

from central.db.devices import DeviceStanding, Revision
from central.provisioning import Provisioning
from runtime.backoff import Backoff, Retry

log = structlog.get_logger("rtcc.device_watch")

CHECK_S = 1.0


class DeviceWatch:
    def __init__(self, provisioning: Provisioning) -> None:
        self._provisioning = provisioning
        self.standing = DeviceStanding(frozenset(), {}, frozenset())
        self._revision: Revision | None = None
        self._nudge = asyncio.Event()
        # Called whenever `standing` changed.
        self.listeners: list[Callable[[], None]] = []

    def load(self) -> DeviceStanding:
        """Reads the records now (blocking: at start, before the loop runs)."""
        self._revision = self._provisioning.revision()
        self.standing = self._provisioning.standing()
        return self.standing

    def shut_out(self, unit_id: str) -> bool:
        """Whether the unit enrolled once and holds no usable certificate now."""
        return self.standing.shut_out(unit_id)

    def nudge(self) -> None:
        """Look again now (a change was just committed here)."""
        self._nudge.set()

    async def run(self) -> None:
        retry = Retry(Backoff(initial_s=0.5, max_s=10.0))
        while True:
            self._nudge.clear()
            try:
                await self.check()
                retry.reset()
                delay = CHECK_S
            except SQLAlchemyError as exc:
                retry.failed()
                delay = retry.delay()
                log.error("device_records_unreadable", error=str(exc), retry_in_s=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), delay)

    async def check(self) -> None:
        """Reads the revision, and the records when it moved."""
        revision = await asyncio.to_thread(self._provisioning.revision)
        if revision == self._revision:
            return
        standing = await asyncio.to_thread(self._provisioning.standing)
        self.standing, self._revision = standing, revision
        for listener in self.listeners:
            listener()

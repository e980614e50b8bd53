"""Drains the outbox over MQTT: in order, a bounded window in flight, a row deleted only on
its PUBACK. After a lost connection it starts again from the oldest row (receivers drop
repeats by message id).

A publish the broker refuses as not authorized keeps its row: the unit may have just
enrolled, or be being added back by the center, and its rights reach the broker moments
later. Sending then pauses for a growing, jittered while and starts again from the oldest
row. Any other refusal is final for that row (it could never be delivered)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import structlog

from agent.outbox import Outbox, OutboxRow
from protocol import ProtocolError
from runtime.backoff import Backoff, Retry
from runtime.mqtt import MqttLink, NotConnected, PublishRejected

log = structlog.get_logger("rtcc.agent.outbox")

Render = Callable[[OutboxRow], tuple[str, bytes]]
# MQTT 5's reason code for a publish the broker's ACL refused.
NOT_AUTHORIZED = 135


class OutboxPump:
    def __init__(
        self,
        outbox: Outbox,
        link: MqttLink,
        render: Render,
        window: int = 32,
        idle_poll_s: float = 5.0,
        held_backoff: Backoff = Backoff(initial_s=1.0, max_s=60.0),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._outbox = outbox
        self._link = link
        self._render = render
        self._window = window
        self._idle_poll_s = idle_poll_s
        self._wake: asyncio.Future[None] | None = None
        self._held = Retry(held_backoff, rand=rand)
        self.sent = 0
        # Publishes the broker refused as not authorized (their rows kept for a retry).
        self.not_authorized = 0

    def notify(self) -> None:
        """New rows, or a new connection: look again."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def run(self) -> None:
        while True:
            await self._link.connected.wait()
            if await self._drain():
                # New rows do not cut this short: they would only be refused as well.
                delay = self._held.delay()
                log.warning(
                    "outbox_held_not_authorized",
                    retry_in_s=round(delay, 2),
                    rows=self._outbox.rows,
                    refused_total=self.not_authorized,
                )
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0.05)

    async def _drain(self) -> bool:
        """Send until the link is lost (False) or the broker refuses a row as not
        authorized (True: hold off, the row kept)."""
        loop = asyncio.get_running_loop()
        inflight: dict[asyncio.Future[None], int] = {}
        after = 0
        try:
            while True:
                room = self._window - len(inflight)
                for row in self._outbox.peek(after, room) if room > 0 else []:
                    after = row.row_id
                    try:
                        topic, payload = self._render(row)
                    except ProtocolError as exc:
                        log.error("outbox_row_unreadable", row_id=row.row_id, error=str(exc))
                        self._outbox.discard(row.row_id)
                        continue
                    inflight[self._link.publish(topic, payload)] = row.row_id
                self._wake = loop.create_future()
                done, _ = await asyncio.wait(
                    [*inflight, self._wake],
                    timeout=self._idle_poll_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                acked, held = self._settle(done, inflight)
                if held:
                    # What is already in flight gets its answer first: rows the broker took
                    # are not sent again.
                    if inflight:
                        finished, _ = await asyncio.wait(list(inflight), timeout=self._idle_poll_s)
                        self._settle(finished, inflight)
                    self._held.failed()
                    return True
                if acked:
                    self._held.reset()
        except NotConnected:
            return False
        finally:
            for future in inflight:
                future.cancel()

    def _settle(
        self, done: set[asyncio.Future[None]], inflight: dict[asyncio.Future[None], int]
    ) -> tuple[int, bool]:
        """Ack or discard the rows whose publishes are done: how many the broker took, and
        whether it refused one as not authorized (that row is left in the outbox)."""
        acked, held = 0, False
        for future in done:
            row_id = inflight.pop(future, None)
            if row_id is None:
                continue
            try:
                future.result()
            except PublishRejected as exc:
                if exc.code == NOT_AUTHORIZED:
                    self.not_authorized += 1
                    held = True
                    continue
                log.error("outbox_row_refused_by_broker", row_id=row_id, reason=str(exc))
                self._outbox.discard(row_id)
                continue
            self._outbox.ack(row_id)
            self.sent += 1
            acked += 1
        return acked, held

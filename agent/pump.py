"""Drains the outbox over MQTT: in order, a bounded window in flight, a row deleted only on
its PUBACK. After a lost connection it starts again from the oldest row (receivers drop
repeats by message id)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from agent.outbox import Outbox, OutboxRow
from protocol import ProtocolError
from runtime.mqtt import MqttLink, NotConnected, PublishRejected

log = structlog.get_logger("rtcc.agent.outbox")

Render = Callable[[OutboxRow], tuple[str, bytes]]


class OutboxPump:
    def __init__(
        self,
        outbox: Outbox,
        link: MqttLink,
        render: Render,
        window: int = 32,
        idle_poll_s: float = 5.0,
    ) -> None:
        self._outbox = outbox
        self._link = link
        self._render = render
        self._window = window
        self._idle_poll_s = idle_poll_s
        self._wake: asyncio.Future[None] | None = None
        self.sent = 0

    def notify(self) -> None:
        """New rows, or a new connection: look again."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def run(self) -> None:
        while True:
            await self._link.connected.wait()
            await self._drain()
            await asyncio.sleep(0.05)

    async def _drain(self) -> None:
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
                for future in done:
                    row_id = inflight.pop(future, None)
                    if row_id is None:
                        continue
                    try:
                        future.result()
                    except PublishRejected as exc:
                        log.error("outbox_row_refused_by_broker", row_id=row_id, reason=str(exc))
                        self._outbox.discard(row_id)
                        continue
                    self._outbox.ack(row_id)
                    self.sent += 1
        except NotConnected:
            return
        finally:
            for future in inflight:
                future.cancel()

"""Alerts and stream requests raised by units (a drawn weapon, a "watch me" button): kept
for the console, and a unit that asks to go live is started at once, since the center
issues the WHIP token a unit needs to publish."""

from __future__ import annotations

import asyncio
from collections import deque

import structlog
from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from central.access.policy import Action
from central.errors import CenterError
from central.fleet import FleetService, ReceivedEvent
from central.gate import Gate
from central.http_errors import status_of
from central.streams import StartRequest, StreamService
from protocol.events import TRIGGER_EVENTS, TriggerBody

log = structlog.get_logger("rtcc.alerts")
RECENT_ALERTS = 500


class AlertView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    unit_id: str
    type: str
    trigger: str | None
    data: dict[str, JsonValue]
    ts: float
    received: float
    stream_id: str | None = None
    stream_error: str | None = None


class AlertDesk:
    def __init__(self, fleet: FleetService, streams: StreamService) -> None:
        self.streams = streams
        self.recent: deque[AlertView] = deque(maxlen=RECENT_ALERTS)
        self._starting: dict[str, asyncio.Task[None]] = {}
        fleet.event_listeners.append(self.on_event)

    def on_event(self, received: ReceivedEvent) -> None:
        event = received.event
        if event.type not in TRIGGER_EVENTS:
            return
        try:
            body: TriggerBody | None = TriggerBody.model_validate(event.data)
        except ValidationError as exc:
            body = None
            log.warning("alert_body_invalid", unit_id=received.unit_id, error=str(exc)[:200])
        alert = AlertView(
            id=received.id,
            unit_id=received.unit_id,
            type=event.type,
            trigger=body.trigger if body else None,
            data=event.data,
            ts=received.ts,
            received=received.received,
        )
        self.recent.append(alert)
        log.warning("unit_alert", unit_id=alert.unit_id, type=alert.type, trigger=alert.trigger)
        if body is not None and body.stream and alert.unit_id not in self._starting:
            task = asyncio.create_task(self._go_live(alert), name=f"go-live-{alert.unit_id}")
            self._starting[alert.unit_id] = task
            task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[None]) -> None:
        for unit, running in list(self._starting.items()):
            if running is task:
                del self._starting[unit]

    async def _go_live(self, alert: AlertView) -> None:
        try:
            grant = await self.streams.start(
                alert.unit_id,
                f"unit:{alert.type}",
                StartRequest(reason=f"{alert.type}: {alert.trigger or 'unit request'}"),
            )
            alert.stream_id = grant.stream_id
        except CenterError as exc:
            alert.stream_error = f"{status_of(exc)}: {exc}"
            log.warning("alert_stream_failed", unit_id=alert.unit_id, error=alert.stream_error)

    async def close(self) -> None:
        tasks = list(self._starting.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def add_alert_routes(app: FastAPI, desk: AlertDesk, gate: Gate) -> None:
    @app.get("/api/v1/alerts", dependencies=[Depends(gate.require(Action.ALERTS_READ))])
    def list_alerts(unit_id: str | None = None, limit: int = 100) -> list[AlertView]:
        """Newest first."""
        found = [a for a in reversed(desk.recent) if unit_id is None or a.unit_id == unit_id]
        return found[: max(1, min(limit, RECENT_ALERTS))]

"""Alerts: raised by units (a drawn weapon, a "watch me" button, a battery or disk running
out) or by the center itself (a unit gone offline while recording), stored, pushed to every
console at once, and acknowledged by a person with a note (audited). A unit that asks to go
live is started at once, since the center issues the WHIP token a unit needs to publish."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace

import structlog
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from central.alert_rules import EVENTS_RAISING_ALERTS, AlertKind, Thresholds, UnitWatch, kind_of
from central.console_hub import ConsoleHub
from central.db.alerts import AlertRecord, Alerts
from central.db.audit_chain import AuditEntry
from central.errors import CenterError
from central.fleet import FleetService, ReceivedEvent
from central.gate import Caller, Gate
from central.http_errors import status_of
from central.live_feed import CONSOLE
from central.registry import UnitRecord
from central.streams import StartRequest, StreamService
from central.unit_board import Reading
from protocol.events import TRIGGER_EVENTS, TriggerBody
from runtime.supervise import BoundedTasks

log = structlog.get_logger("rtcc.alerts")
MAX_PENDING = 1000
# A condition the center watches raises one alert until someone acknowledges it.
ONE_OPEN_AT_A_TIME = frozenset(
    {AlertKind.BATTERY_CRITICAL, AlertKind.STORAGE_CRITICAL, AlertKind.OFFLINE_RECORDING}
)


class AlertView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    unit_id: str
    kind: AlertKind
    type: str
    trigger: str | None
    data: dict[str, JsonValue]
    ts: float
    received: float
    lat: float | None = None
    lon: float | None = None
    stream_id: str | None = None
    stream_error: str | None = None
    acked_at: float | None = None
    acked_by: str | None = None
    ack_note: str | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, kind: object) -> object:
        """A stored kind this version does not know (another version kept it) reads `other`."""
        return kind if kind in AlertKind.__members__.values() else AlertKind.OTHER

    @classmethod
    def of(cls, record: AlertRecord) -> AlertView:
        return cls.model_validate(record, from_attributes=True)


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=1024, description="What was done (audited).")


class AlertDesk:
    def __init__(
        self,
        fleet: FleetService,
        streams: StreamService,
        hub: ConsoleHub,
        gate: Gate,
        thresholds: Thresholds,
    ) -> None:
        self.streams = streams
        self.hub = hub
        self.gate = gate
        self.database = gate.database
        self.watch = UnitWatch(thresholds)
        self.open_by_unit: dict[str, set[str]] = {}
        # Called with each new alert a unit's trigger raised (auto-share, group recording).
        self.trigger_listeners: list[Callable[[AlertView], None]] = []
        # Called with the alert once the unit it asked to go live is (auto-share).
        self.live_listeners: list[Callable[[AlertView], None]] = []
        self._tasks = BoundedTasks("alerts", MAX_PENDING)
        self._starting: set[str] = set()
        fleet.event_listeners.append(self.on_event)
        hub.unit_listeners.append(self.on_unit)
        hub.snapshot_parts.append(self._snapshot_part)

    async def load(self) -> None:
        """The alerts still open from before a restart."""
        for alert in await asyncio.to_thread(self.open_alerts, 10_000):
            self._track(alert)

    # ---- raising ---------------------------------------------------------------------------

    def on_event(self, received: ReceivedEvent) -> None:
        event = received.event
        if event.type in TRIGGER_EVENTS:
            try:
                body: TriggerBody | None = TriggerBody.model_validate(event.data)
            except ValidationError as exc:
                body = None
                log.warning("alert_body_invalid", unit_id=received.unit_id, error=str(exc)[:200])
            trigger = body.trigger if body else None
            kind = kind_of(trigger)
        elif event.type in EVENTS_RAISING_ALERTS:
            body, trigger, kind = None, None, kind_of(event.type)
        else:
            return
        record = self._record(received.id, received.unit_id, kind, event.type, trigger)
        record = replace(record, ts=received.ts, data=dict(event.data))
        wants_stream = body is not None and body.stream
        self._tasks.spawn(self._raise(record, wants_stream, from_trigger=body is not None))

    def on_unit(self, unit: UnitRecord, reading: Reading | None) -> None:
        for kind in self.watch.observe(unit.unit_id, unit.online, reading):
            record = self._record(str(uuid.uuid4()), unit.unit_id, kind, f"center.{kind}", None)
            self._tasks.spawn(self._raise(record, False, from_trigger=False))

    def _record(
        self, alert_id: str, unit_id: str, kind: AlertKind, type_: str, trigger: str | None
    ) -> AlertRecord:
        now = self.hub.fleet.clock()
        unit = self.hub.readings.get(unit_id)
        lat, lon = (unit["lat"], unit["lon"]) if unit is not None else (None, None)
        return AlertRecord(alert_id, unit_id, kind, type_, trigger, now, now, lat, lon, {})

    async def _raise(self, record: AlertRecord, wants_stream: bool, from_trigger: bool) -> None:
        try:
            stored = await asyncio.to_thread(self._store, record)
        except Exception as exc:  # the database away: the console still hears of it
            log.error("alert_not_stored", unit_id=record.unit_id, error=str(exc)[:200])
            stored = True
        if not stored:
            return
        alert = AlertView.of(record)
        log.warning("unit_alert", unit_id=alert.unit_id, kind=alert.kind, trigger=alert.trigger)
        self._track(alert)
        self.hub.publish("alert", alert, {CONSOLE})
        if from_trigger:
            for listener in self.trigger_listeners:
                listener(alert)
        if wants_stream and alert.unit_id not in self._starting:
            self._starting.add(alert.unit_id)
            try:
                await self._go_live(alert)
            finally:
                self._starting.discard(alert.unit_id)

    def _store(self, record: AlertRecord) -> bool:
        """False when it is a repeat (a resend, or a condition already alerted)."""
        with self.database.write() as tx:
            alerts = Alerts(tx)
            if record.kind in ONE_OPEN_AT_A_TIME and alerts.open_of(record.unit_id, record.kind):
                return False
            return alerts.add(record)

    def _track(self, alert: AlertView) -> None:
        opened = self.open_by_unit.setdefault(alert.unit_id, set())
        if alert.acked_at is None:
            opened.add(alert.id)
        else:
            opened.discard(alert.id)
        if opened:
            self.hub.alerting.add(alert.unit_id)
        else:
            self.open_by_unit.pop(alert.unit_id, None)
            self.hub.alerting.discard(alert.unit_id)
        self.hub.mark_changed(alert.unit_id)

    async def _go_live(self, alert: AlertView) -> None:
        stream_id, error = None, None
        try:
            grant = await self.streams.start(
                alert.unit_id,
                f"unit:{alert.type}",
                StartRequest(reason=f"{alert.kind}: {alert.trigger or 'unit request'}"),
            )
            stream_id = grant.stream_id
        except CenterError as exc:
            error = f"{status_of(exc)}: {exc}"
            log.warning("alert_stream_failed", unit_id=alert.unit_id, error=error)
        detail: dict[str, JsonValue] = {
            "alert_id": alert.id,
            "kind": alert.kind,
            "stream_id": stream_id,
            "error": error,
        }
        outcome = "ok" if stream_id is not None else "failed"
        entry = AuditEntry(
            self.hub.fleet.clock(),
            "center",
            "streams.alert_start",
            outcome,
            None,
            "center",
            alert.unit_id,
            detail,
        )
        try:
            await asyncio.to_thread(self.gate.append, entry)
            record = await asyncio.to_thread(self._set_stream, alert.id, stream_id, error)
        except Exception as exc:
            log.error("alert_not_stored", unit_id=alert.unit_id, error=str(exc)[:200])
            return
        updated = AlertView.of(record)
        self.hub.publish("alert", updated, {CONSOLE})
        if stream_id is not None:
            for listener in self.live_listeners:
                listener(updated)

    def _set_stream(self, alert_id: str, stream_id: str | None, error: str | None) -> AlertRecord:
        with self.database.write() as tx:
            return Alerts(tx).set_stream(alert_id, stream_id, error)

    # ---- reading and acknowledging (blocking: call from a thread) ---------------------------

    def open_alerts(self, limit: int = 500) -> list[AlertView]:
        with self.database.read() as tx:
            return [AlertView.of(record) for record in Alerts(tx).open(limit)]

    def recent(self, limit: int, unit_id: str | None) -> list[AlertView]:
        with self.database.read() as tx:
            return [AlertView.of(record) for record in Alerts(tx).recent(limit, unit_id)]

    def acknowledge(self, caller: Caller, alert_id: str, note: str) -> AlertView:
        now = self.hub.fleet.clock()
        with self.database.write() as tx:
            record = Alerts(tx).acknowledge(alert_id, caller.name, note, now)
        alert = AlertView.of(record)
        detail: dict[str, JsonValue] = {"unit_id": alert.unit_id, "kind": alert.kind, "note": note}
        self.gate.audit(caller, "alerts.acknowledge", "ok", alert_id, detail)
        return alert

    def acknowledged(self, alert: AlertView) -> None:
        """On the loop, after `acknowledge`: every console hears of it."""
        self._track(alert)
        self.hub.publish("alert", alert, {CONSOLE})

    async def _snapshot_part(self, audience: str) -> dict[str, list[AlertView]]:
        if audience != CONSOLE:
            return {}
        try:
            return {"alerts": await asyncio.to_thread(self.open_alerts)}
        except Exception as exc:  # the page still gets the map; the next resync has them
            log.error("alerts_not_read", error=str(exc)[:200])
            return {}

    async def close(self) -> None:
        await self._tasks.close()

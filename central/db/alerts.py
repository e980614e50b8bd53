"""Alerts as kept: raised by a unit or by the center, acknowledged by a person with a note."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db.models import AlertRow
from central.db.records import columns_of, record_of
from central.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: str
    unit_id: str
    kind: str
    type: str
    trigger: str | None
    ts: float
    received: float
    lat: float | None
    lon: float | None
    data: dict[str, Any]
    stream_id: str | None = None
    stream_error: str | None = None
    acked_at: float | None = None
    acked_by: str | None = None
    ack_note: str | None = None

    @classmethod
    def of(cls, row: AlertRow) -> AlertRecord:
        return record_of(cls, row, data=dict(row.data))


class Alerts:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, alert: AlertRecord) -> bool:
        """False when an alert with this id is kept already (a unit's resend)."""
        if self._session.get(AlertRow, alert.id) is not None:
            return False
        self._session.add(AlertRow(**columns_of(alert)))
        self._session.flush()
        return True

    def get(self, alert_id: str) -> AlertRecord | None:
        row = self._session.get(AlertRow, alert_id, populate_existing=True)
        return None if row is None else AlertRecord.of(row)

    def set_stream(self, alert_id: str, stream_id: str | None, error: str | None) -> AlertRecord:
        row = self._row(alert_id)
        row.stream_id, row.stream_error = stream_id, error
        self._session.flush()
        return AlertRecord.of(row)

    def acknowledge(self, alert_id: str, by: str, note: str, now: float) -> AlertRecord:
        """Raises Conflict when someone acknowledged it already (their note stands)."""
        row = self._row(alert_id)
        if row.acked_at is not None:
            raise Conflict(f"alert acknowledged already by {row.acked_by}")
        row.acked_at, row.acked_by, row.ack_note = now, by, note
        self._session.flush()
        return AlertRecord.of(row)

    def open(self, limit: int) -> list[AlertRecord]:
        rows = self._session.scalars(
            select(AlertRow)
            .where(AlertRow.acked_at.is_(None))
            .order_by(AlertRow.received.desc())
            .limit(limit)
        )
        return [AlertRecord.of(row) for row in rows]

    def recent(self, limit: int, unit_id: str | None = None) -> list[AlertRecord]:
        query = select(AlertRow).order_by(AlertRow.received.desc()).limit(limit)
        if unit_id is not None:
            query = query.where(AlertRow.unit_id == unit_id)
        return [AlertRecord.of(row) for row in self._session.scalars(query)]

    def open_of(self, unit_id: str, kind: str) -> AlertRecord | None:
        row = self._session.scalars(
            select(AlertRow)
            .where(AlertRow.unit_id == unit_id, AlertRow.kind == kind, AlertRow.acked_at.is_(None))
            .limit(1)
        ).first()
        return None if row is None else AlertRecord.of(row)

    def _row(self, alert_id: str) -> AlertRow:
        row = self._session.get(AlertRow, alert_id, populate_existing=True, with_for_update=True)
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return row

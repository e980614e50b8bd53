"""Shares to patrols and the stills they carry, as kept: who shared what with which units,
until when, and when each unit received and opened it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.db.models import ShareRecipientRow, ShareRow, StillRow, ViewerGrantRow
from central.db.records import columns_of, record_of
from central.errors import NotFound


@dataclass(frozen=True, slots=True)
class Recipient:
    unit_id: str
    distance_m: float | None
    received_at: float | None = None
    opened_at: float | None = None


@dataclass(frozen=True, slots=True)
class ShareRecord:
    id: str
    created_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None
    stream_id: str | None
    unit_id: str | None
    still_id: str | None
    text: str
    scene_lat: float
    scene_lon: float
    radius_m: float | None
    recipients: tuple[Recipient, ...]

    def holds(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def recipient(self, unit_id: str) -> Recipient | None:
        return next((r for r in self.recipients if r.unit_id == unit_id), None)


@dataclass(frozen=True, slots=True)
class StillRecord:
    id: str
    stream_id: str
    unit_id: str
    taken_at: float
    taken_by: str
    alert_id: str | None
    sha256: str


class Shares:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, share: ShareRecord) -> ShareRecord:
        self._session.add(ShareRow(**columns_of(share, leave={"recipients"})))
        self._session.flush()
        for recipient in share.recipients:
            self._session.add(
                ShareRecipientRow(
                    share_id=share.id, unit_id=recipient.unit_id, distance_m=recipient.distance_m
                )
            )
        self._session.flush()
        return self.get(share.id)

    def get(self, share_id: str) -> ShareRecord:
        row = self._session.get(ShareRow, share_id, populate_existing=True)
        if row is None:
            raise NotFound(f"no share {share_id}")
        return self._record(row)

    def active(self, now: float, unit_id: str | None = None) -> list[ShareRecord]:
        """Shares neither revoked nor expired; only those addressed to `unit_id` if given."""
        query = select(ShareRow).where(ShareRow.revoked_at.is_(None), ShareRow.expires_at > now)
        if unit_id is not None:
            query = query.join(ShareRecipientRow, ShareRecipientRow.share_id == ShareRow.id).where(
                ShareRecipientRow.unit_id == unit_id
            )
        rows = self._session.scalars(query.order_by(ShareRow.created_at.desc()))
        return [self._record(row) for row in rows]

    def revoke(self, share_id: str, by: str, now: float) -> ShareRecord:
        """Ends the share and every viewer token issued through it; a share revoked before
        keeps its first revocation."""
        row = self._session.get(ShareRow, share_id, populate_existing=True, with_for_update=True)
        if row is None:
            raise NotFound(f"no share {share_id}")
        if row.revoked_at is None:
            row.revoked_at, row.revoked_by = now, by
        self._session.execute(
            update(ViewerGrantRow)
            .where(ViewerGrantRow.share_id == share_id, ViewerGrantRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        self._session.flush()
        return self._record(row)

    def end_expired_grants(self, now: float) -> int:
        """Revokes the viewer tokens of shares past their end; returns how many."""
        ended = self._session.execute(
            update(ViewerGrantRow)
            .where(
                ViewerGrantRow.revoked_at.is_(None),
                ViewerGrantRow.share_id.in_(select(ShareRow.id).where(ShareRow.expires_at <= now)),
            )
            .values(revoked_at=now)
        )
        return int(getattr(ended, "rowcount", 0) or 0)

    def mark(self, share_id: str, unit_id: str, now: float, *, opened: bool) -> bool:
        """Records that the unit received (or opened) the share; False if that was known."""
        row = self._session.get(
            ShareRecipientRow, (share_id, unit_id), populate_existing=True, with_for_update=True
        )
        if row is None:
            raise NotFound(f"share {share_id} is not addressed to {unit_id}")
        changed = False
        if row.received_at is None:
            row.received_at, changed = now, True
        if opened and row.opened_at is None:
            row.opened_at, changed = now, True
        self._session.flush()
        return changed

    def _record(self, row: ShareRow) -> ShareRecord:
        recipients = self._session.scalars(
            select(ShareRecipientRow)
            .where(ShareRecipientRow.share_id == row.id)
            .order_by(ShareRecipientRow.unit_id)
            .execution_options(populate_existing=True)
        )
        return record_of(
            ShareRecord, row, recipients=tuple(record_of(Recipient, r) for r in recipients)
        )


class Stills:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, still: StillRecord, jpeg: bytes) -> StillRecord:
        self._session.add(StillRow(**columns_of(still), jpeg=jpeg))
        self._session.flush()
        return still

    def jpeg(self, still_id: str) -> tuple[StillRecord, bytes]:
        row = self._session.get(StillRow, still_id)
        if row is None:
            raise NotFound(f"no still {still_id}")
        record = record_of(StillRecord, row)
        return record, row.jpeg

    def shared_with(self, still_id: str, unit_id: str, now: float) -> bool:
        """Whether an active share addressed to `unit_id` carries the still."""
        found = self._session.scalar(
            select(ShareRow.id)
            .join(ShareRecipientRow, ShareRecipientRow.share_id == ShareRow.id)
            .where(
                ShareRow.still_id == still_id,
                ShareRecipientRow.unit_id == unit_id,
                ShareRow.revoked_at.is_(None),
                ShareRow.expires_at > now,
            )
            .limit(1)
        )
        return found is not None

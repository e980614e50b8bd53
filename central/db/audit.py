"""The audit log in the database: append-only, hash-chained (see `audit_chain`).

Appends lock the chain's head row (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the
write transaction, begun IMMEDIATE, holds the file), so several center processes extend
one chain in turn. Append inside `Database.write()`; the record commits with whatever the
same transaction did, or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from central.db.audit_chain import (
    AuditEntry,
    AuditRecord,
    ChainHead,
    ChainProblem,
    Tamper,
    fields,
    seal,
    verify_chain,
)
from central.db.models import AuditHeadRow, AuditRow
from central.errors import Invalid

_HEAD_ID = 1
MAX_PAGE = 1000
PURGE_ACTION = "audit.purge"


class AuditQuery(BaseModel):
    """Which records, newest first unless asked otherwise; `cursor` is the `next_cursor`
    of the previous page."""

    model_config = ConfigDict(extra="forbid")

    actor: str | None = None
    action: str | None = None
    object: str | None = None
    since: float | None = Field(default=None, description="At or after (epoch seconds).")
    until: float | None = Field(default=None, description="Before (epoch seconds).")
    cursor: int | None = Field(default=None, ge=0)
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)
    newest_first: bool = True


@dataclass(frozen=True, slots=True)
class AuditPage:
    records: list[AuditRecord]
    next_cursor: int | None


def _record(row: AuditRow) -> AuditRecord:
    entry = AuditEntry(
        at=row.at,
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        role=row.role,
        source=row.source,
        object=row.object,
        detail=row.detail,
    )
    return AuditRecord(row.seq, entry, row.prev_hash, row.hash)


def _columns(record: AuditRecord) -> dict[str, Any]:
    return {**fields(record.seq, record.entry, record.prev_hash), "hash": record.hash}


def _check_lengths(columns: dict[str, Any]) -> None:
    """The same refusal on either engine (SQLite would store an over-long text, PostgreSQL
    would fail the whole transaction with a less helpful error)."""
    for name, value in columns.items():
        limit = getattr(AuditRow.__table__.c[name].type, "length", None)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            raise Invalid(f"audit {name} is longer than {limit} characters")


def _purge_recorded(records: Sequence[AuditRecord], base: ChainHead) -> bool:
    """Whether the kept chain holds the purge that moved its base to `base`."""
    return any(
        r.entry.action == PURGE_ACTION
        and r.entry.detail.get("through_seq") == base.seq
        and r.entry.detail.get("through_hash") == base.hash
        for r in records
    )


def _filtered(query: AuditQuery) -> Select[tuple[AuditRow]]:
    statement = select(AuditRow)
    for column, wanted in (
        (AuditRow.actor, query.actor),
        (AuditRow.action, query.action),
        (AuditRow.object, query.object),
    ):
        if wanted is not None:
            statement = statement.where(column == wanted)
    if query.since is not None:
        statement = statement.where(AuditRow.at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditRow.at < query.until)
    if query.newest_first:
        if query.cursor is not None:
            statement = statement.where(AuditRow.seq < query.cursor)
        return statement.order_by(AuditRow.seq.desc())
    if query.cursor is not None:
        statement = statement.where(AuditRow.seq > query.cursor)
    return statement.order_by(AuditRow.seq)


_LOCK_HEAD = (
    select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == _HEAD_ID).with_for_update()
)
_INSERT = insert(AuditRow)
_MOVE_HEAD = (
    update(AuditHeadRow)
    .where(AuditHeadRow.id == _HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


class Audit:
    def __init__(self, session: Session) -> None:
        self._session = session

    def append(self, entry: AuditEntry) -> AuditRecord:
        """Seals `entry` onto the chain and stores it (in the caller's write transaction)."""
        connection = self._session.connection()
        head = connection.execute(_LOCK_HEAD).one()
        record = seal(entry, ChainHead(head.seq, head.hash))
        columns = _columns(record)
        _check_lengths(columns)
        # Statements built once, values bound: no per-record compilation.
        connection.execute(_INSERT, columns)
        connection.execute(_MOVE_HEAD, {"new_seq": record.seq, "new_hash": record.hash})
        return record

    def head(self) -> ChainHead:
        """The chain's head as the database keeps it (what an append attaches to)."""
        head = self._session.execute(
            select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == _HEAD_ID)
        ).one()
        return ChainHead(head.seq, head.hash)

    def query(self, query: AuditQuery) -> AuditPage:
        rows = list(self._session.scalars(_filtered(query).limit(query.limit + 1)))
        records = [_record(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return AuditPage(records, records[-1].seq if more else None)

    def scan(self, after_seq: int = 0, batch: int = MAX_PAGE) -> Iterator[AuditRecord]:
        """Every record after `after_seq`, in chain order, read in batches."""
        while True:
            rows = self._session.scalars(
                select(AuditRow).where(AuditRow.seq > after_seq).order_by(AuditRow.seq).limit(batch)
            ).all()
            if not rows:
                return
            yield from (_record(row) for row in rows)
            after_seq = rows[-1].seq

    def base(self) -> ChainHead:
        """The record the oldest kept one follows (GENESIS unless records were purged)."""
        found = self._session.execute(
            select(AuditHeadRow.base_seq, AuditHeadRow.base_hash).where(AuditHeadRow.id == _HEAD_ID)
        ).one()
        return ChainHead(found.base_seq, found.base_hash)

    def purge(self, before: float) -> tuple[int, ChainHead]:
        """Deletes the records older than `before` that start the chain (a record kept
        stops the purge, so the chain stays whole) and moves the base past them; returns
        how many went and the new base. The caller audits the purge in the same
        transaction: `verify` accepts a moved base only with that record."""
        base = self.base()
        first_kept = self._session.scalar(
            select(func.min(AuditRow.seq)).where(AuditRow.at >= before, AuditRow.seq > base.seq)
        )
        through = first_kept - 1 if first_kept is not None else self.head().seq
        last = self._session.execute(
            select(AuditRow.seq, AuditRow.hash).where(
                AuditRow.seq == through, AuditRow.seq > base.seq
            )
        ).first()
        if last is None:
            return 0, base
        removed = self._session.execute(delete(AuditRow).where(AuditRow.seq <= last.seq))
        new_base = ChainHead(last.seq, last.hash)
        self._session.execute(
            update(AuditHeadRow)
            .where(AuditHeadRow.id == _HEAD_ID)
            .values(base_seq=new_base.seq, base_hash=new_base.hash)
        )
        return int(getattr(removed, "rowcount", 0) or 0), new_base

    def verify(
        self, anchors: Sequence[ChainHead] = (), bases: Sequence[ChainHead] | None = None
    ) -> ChainProblem | None:
        """The first tampered record, checked against the database's own head and any
        `anchors` kept elsewhere; None when the chain holds. A chain whose start was purged
        must hold the audited purge, and `bases` (the anchor file's purge lines, when
        given) the start it moved to."""
        head = self.head()
        base = self.base()
        records = list(self.scan(after_seq=base.seq))
        problem = verify_chain(records, start=base, anchors=[head, *anchors])
        if problem is None and base.seq > 0:
            recorded = _purge_recorded(records, base) and (bases is None or base in bases)
            if not recorded:
                return ChainProblem(
                    Tamper.REMOVED, 1, f"records up to {base.seq} are gone without a purge"
                )
        if problem is None and records and records[-1].seq > head.seq:
            return ChainProblem(
                Tamper.INSERTED, head.seq + 1, f"the chain's head is {head.seq}, not beyond"
            )
        return problem

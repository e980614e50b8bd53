"""`rtcc audit verify` and `rtcc audit export`: the audit log checked against its own hash
chain and the anchor file, and written out for a records request (oldest first, in a time
window, as JSON Lines or CSV). An export is itself audited."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO

from pydantic import JsonValue

from central.config import CentralSettings
from central.db.audit import MAX_PAGE, PURGE_ACTION, Audit, AuditQuery
from central.db.audit_chain import (
    AnchorsUnreadable,
    AuditEntry,
    AuditRecord,
    fields,
    head_of,
    timestamp,
)
from central.db.engine import Database
from central.errors import CenterError
from central.people import (
    CommandRefused,
    Operator,
    anchor_file,
    open_center_database,
)

ExportFormat = Literal["jsonl", "csv"]
COLUMNS = (
    "seq",
    "at",
    "actor",
    "role",
    "source",
    "action",
    "object",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
)


def parse_time(text: str) -> float:
    """ISO 8601 as epoch seconds; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandRefused(
            f"{text[:80]!r} is not an ISO 8601 time, e.g. 2026-12-01T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def exported(record: AuditRecord) -> dict[str, JsonValue]:
    """One record as an export writes it: its fields, its time in ISO 8601 UTC, and the
    hashes that let the receiver check the chain themselves."""
    return {
        **fields(record.seq, record.entry, record.prev_hash),
        "at": timestamp(record.entry.at),
        "hash": record.hash,
    }


def verify_audit(database: Database, data_dir: Path) -> tuple[bool, str]:
    """Whether the chain holds (against the anchor file in `data_dir` too), and the line
    that says so or names the first bad record."""
    anchors = anchor_file(data_dir)
    try:
        heads, bases = anchors.heads(), anchors.bases()
    except AnchorsUnreadable as exc:
        return False, f"audit anchors {anchors.path}: {exc}"
    with database.read() as tx:
        audit = Audit(tx)
        problem = audit.verify(heads, bases)
        purged = audit.base().seq
        count = audit.head().seq - purged
    if problem is not None:
        return False, f"audit chain broken: {problem}"
    if count and not heads:
        # Without a head kept apart, a database rewritten and re-sealed would pass.
        return False, f"audit anchors {anchors.path}: none, for a chain of {count} records"
    after = f" after {purged} purged" if purged else ""
    return True, f"audit chain intact: {count} records{after}, {len(heads)} anchors"


def records_between(
    database: Database, since: float | None, until: float | None
) -> Iterator[AuditRecord]:
    """The records at or after `since` and before `until`, oldest first, page by page (each
    page in a transaction of its own, so an export never holds the database long)."""
    cursor: int | None = None
    while True:
        query = AuditQuery(
            since=since, until=until, cursor=cursor, limit=MAX_PAGE, newest_first=False
        )
        with database.read() as tx:
            page = Audit(tx).query(query)
        yield from page.records
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def write_records(records: Iterator[AuditRecord], form: ExportFormat, out: TextIO) -> int:
    """Writes `records` to `out` as JSON Lines or CSV (detail as JSON text); returns how
    many."""
    count = 0
    writer = csv.DictWriter(out, fieldnames=COLUMNS)  # RFC 4180: CRLF, quoted as needed
    if form == "csv":
        writer.writeheader()
    for record in records:
        row = exported(record)
        if form == "csv":
            writer.writerow({**row, "detail": json.dumps(row["detail"], sort_keys=True)})
        else:
            # ASCII only: no reader splits a line at U+0085 or U+2028 inside a field.
            out.write(json.dumps(row) + "\n")
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class ExportRequest:
    since: str | None = None
    until: str | None = None
    form: ExportFormat = "jsonl"
    output: Path | None = None


def run_verify(settings: CentralSettings, out: TextIO) -> bool:
    database = open_center_database(settings.database())
    try:
        intact, message = verify_audit(database, settings.data_dir)
    finally:
        database.close()
    print(message, file=out)
    return intact


def run_purge(settings: CentralSettings, out: TextIO, now: float | None = None) -> int:
    """Deletes the records older than the retention (refused when none is set), audited in
    the same transaction; returns how many went."""
    days = settings.access.audit_retention_days
    if days is None:
        raise CommandRefused(
            "no retention is set (RTCC_ACCESS__AUDIT_RETENTION_DAYS): the audit log is kept forever"
        )
    now = time.time() if now is None else now
    before = now - days * 86_400
    operator = Operator.at_command_line()
    database = open_center_database(settings.database())
    try:
        with database.write() as tx:
            audit = Audit(tx)
            removed, base = audit.purge(before)
            if removed:
                detail: dict[str, JsonValue] = {
                    "removed": removed,
                    "before": before,
                    "retention_days": days,
                    "through_seq": base.seq,
                    "through_hash": base.hash,
                }
                entry = AuditEntry(
                    now,
                    operator.actor,
                    PURGE_ACTION,
                    "ok",
                    operator.role,
                    operator.source,
                    None,
                    detail,
                )
                record = audit.append(entry)
        if removed:
            anchors = anchor_file(settings.data_dir)
            anchors.record_base(base, now)
            anchors.record(head_of(record), now)
    except CenterError as exc:
        raise CommandRefused(str(exc)) from None
    finally:
        database.close()
    print(f"purged {removed} audit records older than {days:g} days", file=out)
    return removed


def run_export(settings: CentralSettings, request: ExportRequest, stdout: TextIO) -> int:
    """Writes the export to `request.output` (created 0600) or `stdout`; audits it and
    returns how many records were written."""
    since = None if request.since is None else parse_time(request.since)
    until = None if request.until is None else parse_time(request.until)
    if since is not None and until is not None and since >= until:
        raise CommandRefused("--since must be before --until")
    database = open_center_database(settings.database())
    try:
        count = _export(database, request, since, until, stdout)
        _audit_export(database, request, count, settings.data_dir)
    except CenterError as exc:
        raise CommandRefused(str(exc)) from None
    finally:
        database.close()
    return count


def _export(
    database: Database,
    request: ExportRequest,
    since: float | None,
    until: float | None,
    stdout: TextIO,
) -> int:
    records = records_between(database, since, until)
    if request.output is None:
        return write_records(records, request.form, stdout)
    try:
        descriptor = os.open(request.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "w", encoding="utf-8", newline="") as out:
            return write_records(records, request.form, out)
    except OSError as exc:
        raise CommandRefused(f"cannot write {request.output}: {exc.strerror}") from None


def _audit_export(database: Database, request: ExportRequest, count: int, data_dir: Path) -> None:
    operator = Operator.at_command_line()
    now = time.time()
    detail: dict[str, JsonValue] = {
        "since": request.since,
        "until": request.until,
        "format": request.form,
        "records": count,
    }
    with database.write() as tx:
        record = Audit(tx).append(
            AuditEntry(
                now,
                operator.actor,
                "audit.export",
                "ok",
                operator.role,
                operator.source,
                None,
                detail,
            )
        )
    anchor_file(data_dir).record(head_of(record), now)

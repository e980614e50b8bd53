"""`rtcc audit verify` and `rtcc audit export` through the real command entry, on an SQLite
file and on a real PostgreSQL server: the chain passes, then a record edited, removed or
cut off behind a consistent head by someone with direct access to the database is named;
an export keeps to its time window in JSON Lines and CSV, oldest first, across pages."""

from __future__ import annotations

import csv
import json
import stat
from datetime import UTC, datetime

import pytest

from central.db.audit import MAX_PAGE, Audit, AuditQuery
from central.db.audit_chain import AuditEntry, AuditRecord
from tests.center_cli import Center

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC).timestamp()


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def append(center: Center, count: int, start: int = 0, t0: float = T0) -> list[AuditRecord]:
    """Records at t0 + i minutes, i = start .. start + count - 1."""
    with center.database.write() as tx:
        return [
            Audit(tx).append(
                AuditEntry(
                    t0 + 60 * i,
                    "ana",
                    "streams.watch",
                    "ok",
                    "dispatcher",
                    "10.0.0.7",
                    f"unit-{i % 3:02d}",
                    {"i": i, "note": 'comma, "quote" and é'},
                )
            )
            for i in range(start, start + count)
        ]


def verify(center: Center) -> tuple[int, str]:
    code, out, err = center.run("audit", "verify")
    assert err == ""
    return code, out.strip()


def test_verify_passes_then_names_an_edited_record(center: Center) -> None:
    assert verify(center) == (0, "audit chain intact: 0 records, 0 anchors")
    append(center, 3)
    for name in ("ana", "bob"):
        assert center.run("users", "add", name, "--role", "dispatcher")[0] == 0
    assert verify(center) == (0, "audit chain intact: 5 records, 2 anchors")

    center.sql("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    code, line = verify(center)
    assert code == 1
    assert line == "audit chain broken: audit record 2 edited: its fields do not match its hash"


def test_verify_names_a_removed_record(center: Center) -> None:
    append(center, 5)
    center.sql("DELETE FROM audit WHERE seq = 3")
    code, line = verify(center)
    assert code == 1
    assert line.startswith("audit chain broken: audit record 3 removed")


def test_verify_catches_a_consistent_cut_through_the_anchor_file(center: Center) -> None:
    """The last records removed and the head row moved back to match: the database alone
    is consistent, the heads the commands wrote to the anchor file are not."""
    append(center, 2)
    assert center.run("users", "add", "ana", "--role", "tech")[0] == 0
    assert center.run("users", "disable", "ana")[0] == 0
    with center.database.read() as tx:
        kept = Audit(tx).query(AuditQuery(limit=2, newest_first=False)).records[-1]
    center.sql(
        "DELETE FROM audit WHERE seq > 2",
        f"UPDATE audit_head SET seq = 2, hash = '{kept.hash}'",
    )
    with center.database.read() as tx:
        assert Audit(tx).verify() is None  # the database agrees with itself
    code, line = verify(center)
    assert code == 1
    assert "audit record 3 removed" in line


def test_verify_refuses_a_chain_whose_anchor_file_is_gone(center: Center) -> None:
    """Deleting the anchor file along with a rewrite must not make the chain pass."""
    assert center.run("users", "add", "ana", "--role", "dispatcher")[0] == 0
    (center.data_dir / "audit-anchors.jsonl").unlink()
    code, line = verify(center)
    assert code == 1 and "none, for a chain of 1 records" in line


def test_verify_refuses_an_anchor_file_that_was_edited(center: Center) -> None:
    assert center.run("users", "add", "ana", "--role", "tech")[0] == 0
    anchors = center.data_dir / "audit-anchors.jsonl"
    anchors.write_text(anchors.read_text() + "not a head\n")
    code, line = verify(center)
    assert code == 1
    assert "anchor file line 2 is not a chain head" in line


def read_jsonl(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_export_keeps_to_its_window_in_both_formats(center: Center) -> None:
    made = append(center, 10)
    window = ["--since", iso(T0 + 120), "--until", iso(T0 + 420)]  # records 2..6
    code, out, err = center.run("audit", "export", *window)
    assert code == 0, err
    rows = read_jsonl(out)
    assert [row["seq"] for row in rows] == [r.seq for r in made[2:7]]
    first = made[2]
    assert rows[0] == {
        "seq": first.seq,
        "at": "2026-11-01T08:02:00.000000Z",
        "actor": "ana",
        "role": "dispatcher",
        "source": "10.0.0.7",
        "action": "streams.watch",
        "object": "unit-02",
        "outcome": "ok",
        "detail": {"i": 2, "note": 'comma, "quote" and é'},
        "prev_hash": first.prev_hash,
        "hash": first.hash,
    }

    target = center.data_dir / "export.csv"
    code, out, err = center.run(
        "audit", "export", *window, "--format", "csv", "--output", str(target)
    )
    assert code == 0 and out == ""
    assert err == "rtcc audit export: 5 records\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with target.open(newline="", encoding="utf-8") as file:
        table = list(csv.DictReader(file))
    assert [int(row["seq"]) for row in table] == [r.seq for r in made[2:7]]
    assert [json.loads(row["detail"]) for row in table] == [dict(r.entry.detail) for r in made[2:7]]
    assert table[0]["hash"] == first.hash and table[0]["object"] == "unit-02"

    # Each export is itself on the record, after the chain still holds.
    with center.database.read() as tx:
        exports = Audit(tx).query(AuditQuery(action="audit.export", newest_first=False)).records
    assert [e.entry.detail["format"] for e in exports] == ["jsonl", "csv"]
    assert [e.entry.detail["records"] for e in exports] == [5, 5]
    assert verify(center)[0] == 0


def test_export_pages_through_everything_oldest_first(center: Center) -> None:
    made = append(center, MAX_PAGE + 7)
    code, out, err = center.run("audit", "export", "--until", iso(T0 + 60 * (MAX_PAGE + 7)))
    assert code == 0, err
    assert [row["seq"] for row in read_jsonl(out)] == [r.seq for r in made]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (("--since", "yesterday"), "'yesterday' is not an ISO 8601 time"),
        (("--since", "2026-11-02T00:00:00Z", "--until", "2026-11-01"), "--since must be before"),
    ],
)
def test_export_refuses_a_bad_window(center: Center, window: tuple[str, ...], message: str) -> None:
    code, out, err = center.run("audit", "export", *window)
    assert code == 2 and out == ""
    assert err.startswith("rtcc audit export: ") and message in err and err.count("\n") == 1


def test_purge_needs_a_retention_and_keeps_the_chain_verifiable(
    center: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(center, 5, t0=T0 - 400 * 86_400)  # over a year old
    assert center.run("users", "add", "ana", "--role", "tech")[0] == 0  # now
    code, _, err = center.run("audit", "purge")
    assert code == 2 and "kept forever" in err
    monkeypatch.setenv("RTCC_ACCESS__AUDIT_RETENTION_DAYS", "30")
    code, _, err = center.run("audit", "purge")
    assert code == 2 and "365" in err  # less than a year is refused as configuration
    monkeypatch.setenv("RTCC_ACCESS__AUDIT_RETENTION_DAYS", "366")
    code, out, _ = center.run("audit", "purge")
    assert (code, out.strip()) == (0, "purged 5 audit records older than 366 days")
    with center.database.read() as tx:
        kept = Audit(tx).query(AuditQuery(limit=100, newest_first=False)).records
    assert [r.entry.action for r in kept] == ["user.create", "audit.purge"]
    assert kept[1].entry.detail["through_seq"] == 5
    assert verify(center) == (0, "audit chain intact: 2 records after 5 purged, 2 anchors")
    assert center.run("audit", "purge")[1].strip() == "purged 0 audit records older than 366 days"
    # The start moved in the database alone (with a forged purge record) is caught: the
    # anchor file holds where purges moved it.
    anchors = center.data_dir / "audit-anchors.jsonl"
    anchors.write_text(
        "".join(line for line in anchors.read_text().splitlines(True) if "base_" not in line)
    )
    code, line = verify(center)
    assert code == 1 and "without a purge" in line, line


def test_records_cut_from_the_start_without_a_purge_are_named(center: Center) -> None:
    records = append(center, 4)
    assert center.run("users", "add", "ana", "--role", "tech")[0] == 0
    cut = records[1]
    center.sql(
        "DELETE FROM audit WHERE seq <= 2",
        f"UPDATE audit_head SET base_seq = 2, base_hash = '{cut.hash}'",
    )
    code, line = verify(center)
    assert code == 1 and "without a purge" in line, line

"""The audit log in a real database: appends, queries with paging, and the chain naming
what was done to its rows by someone with direct access to the database, on SQLite and
on PostgreSQL; concurrent appends from several connections keep one chain."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from central.db.anchors import ANCHOR_FILE, AnchorFile
from central.db.audit import Audit, AuditQuery
from central.db.audit_chain import (
    AuditEntry,
    AuditRecord,
    ChainHead,
    Tamper,
    fields,
    head_of,
    record_hash,
)
from central.db.engine import Database
from central.db.models import AuditRow
from central.db.schema import migrate
from central.errors import Invalid

T0 = 1_800_000_000.0


def entry(i: int, actor: str = "ana") -> AuditEntry:
    return AuditEntry(
        at=T0 + i,
        actor=actor,
        action="stream.view" if i % 2 else "evidence.download",
        outcome="ok",
        role="dispatcher",
        source="10.0.0.7",
        object=f"unit-{i % 3}",
        detail={"i": i, "reason": "incident 26-0042", "seconds": 12.5, "ok": True},
    )


def append(database: Database, entries: list[AuditEntry]) -> list[AuditRecord]:
    with database.write() as tx:
        return [Audit(tx).append(e) for e in entries]


@pytest.fixture
def chained(empty_database: Database) -> Iterator[Database]:
    """A database of the test's own holding records 1..6."""
    migrate(empty_database.engine)
    append(empty_database, [entry(i) for i in range(6)])
    yield empty_database


def verify(database: Database, anchors: list[ChainHead] | None = None) -> tuple[Tamper, int] | None:
    with database.read() as tx:
        problem = Audit(tx).verify(anchors or [])
    return None if problem is None else (problem.kind, problem.seq)


def sql(database: Database, *statements: str) -> None:
    with database.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_records_come_back_exactly_as_sealed(database: Database) -> None:
    with database.read() as tx:
        start = Audit(tx).head()
    made = append(database, [entry(i, "rec") for i in range(5)])
    assert [r.seq for r in made] == list(range(start.seq + 1, start.seq + 6))
    with database.read() as tx:
        assert list(Audit(tx).scan(after_seq=start.seq, batch=2)) == made
        assert Audit(tx).head() == head_of(made[-1])
        assert Audit(tx).verify() is None


def test_queries_filter_and_page(database: Database, unique: str) -> None:
    actor = f"q-{unique}"
    made = append(database, [entry(i, actor) for i in range(7)])
    with database.read() as tx:
        audit = Audit(tx)
        newest = audit.query(AuditQuery(actor=actor, limit=3))
        assert newest.records == made[::-1][:3] and newest.next_cursor == made[4].seq
        older = audit.query(AuditQuery(actor=actor, limit=3, cursor=newest.next_cursor))
        assert older.records == made[::-1][3:6]
        last = audit.query(AuditQuery(actor=actor, limit=3, cursor=older.next_cursor))
        assert last.records == made[:1] and last.next_cursor is None
        views = audit.query(AuditQuery(actor=actor, action="stream.view", newest_first=False))
        assert views.records == [r for r in made if r.entry.action == "stream.view"]
        unit = audit.query(AuditQuery(actor=actor, object="unit-1", newest_first=False))
        assert [r.entry.object for r in unit.records] == ["unit-1", "unit-1"]
        window = audit.query(AuditQuery(actor=actor, since=T0 + 2, until=T0 + 4))
        assert [r.entry.at for r in window.records] == [T0 + 3, T0 + 2]


def test_an_untouched_chain_holds(chained: Database) -> None:
    assert verify(chained) is None


def test_an_edited_record_is_named(chained: Database) -> None:
    sql(chained, "UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    assert verify(chained) == (Tamper.EDITED, 3)


def test_a_removed_record_is_named(chained: Database) -> None:
    sql(chained, "DELETE FROM audit WHERE seq = 3")
    assert verify(chained) == (Tamper.REMOVED, 3)


def test_removing_the_newest_records_shows_against_the_head(chained: Database) -> None:
    with chained.read() as tx:
        kept = Audit(tx).head()
    sql(chained, "DELETE FROM audit WHERE seq >= 5")
    assert verify(chained) == (Tamper.REMOVED, 5)
    # Also moving the head row back: only a head kept outside the database tells.
    with chained.read() as tx:
        fourth = next(r for r in Audit(tx).scan() if r.seq == 4)
    sql(chained, f"UPDATE audit_head SET seq = 4, hash = '{fourth.hash}'")
    assert verify(chained) is None
    assert verify(chained, [kept]) == (Tamper.REMOVED, 5)


def written_in(database: Database, seq: int, forged: AuditEntry, prev_hash: str) -> None:
    """A row put straight into the table as record `seq` after `prev_hash`, sealed as the
    center would have sealed it."""
    columns = {**fields(seq, forged, prev_hash), "hash": record_hash(seq, forged, prev_hash)}
    with database.engine.begin() as connection:
        connection.execute(insert(AuditRow).values(columns))


def test_an_inserted_record_is_named(chained: Database) -> None:
    with chained.read() as tx:
        second = next(r for r in Audit(tx).scan() if r.seq == 2)
    # Make room at 3 (in two steps: PostgreSQL checks the key row by row).
    sql(
        chained,
        "UPDATE audit SET seq = seq + 1000 WHERE seq >= 3",
        "UPDATE audit SET seq = seq - 999 WHERE seq >= 1003",
    )
    forged = AuditEntry(T0 + 2.5, "mallory", "user.create", "ok", object="mallory")
    written_in(chained, 3, forged, second.hash)
    assert verify(chained) == (Tamper.INSERTED, 3)


def test_an_appended_record_the_head_does_not_know_is_named(chained: Database) -> None:
    with chained.read() as tx:
        head = Audit(tx).head()
    forged = AuditEntry(T0 + 9, "mallory", "user.create", "ok")
    written_in(chained, head.seq + 1, forged, head.hash)
    assert verify(chained) == (Tamper.INSERTED, head.seq + 1)


def test_swapped_records_are_named_as_reordered(chained: Database) -> None:
    sql(
        chained,
        "UPDATE audit SET seq = -3 WHERE seq = 3",
        "UPDATE audit SET seq = 3 WHERE seq = 4",
        "UPDATE audit SET seq = 4 WHERE seq = -3",
    )
    assert verify(chained) == (Tamper.REORDERED, 3)


def test_concurrent_appends_from_several_connections_keep_one_chain(
    new_database_url: Callable[[], str],
) -> None:
    url = new_database_url()
    writers = [Database.open(url) for _ in range(3)]
    migrate(writers[0].engine)
    start = threading.Barrier(len(writers))

    def write(n: int) -> list[int]:
        start.wait(timeout=30)
        seqs: list[int] = []
        for i in range(40):
            with writers[n].write() as tx:
                seqs.append(Audit(tx).append(entry(i, f"writer-{n}")).seq)
        return seqs

    try:
        with ThreadPoolExecutor(len(writers)) as pool:
            per_writer = list(pool.map(write, range(len(writers))))
        assert sorted(s for seqs in per_writer for s in seqs) == list(range(1, 121))
        assert all(seqs == sorted(seqs) for seqs in per_writer)
        assert verify(writers[1]) is None
    finally:
        for db in writers:
            db.close()


def test_an_over_long_field_is_refused_alike_on_either_engine(database: Database) -> None:
    with database.read() as tx:
        before = Audit(tx).head()
    with pytest.raises(Invalid, match="actor"), database.write() as tx:
        Audit(tx).append(AuditEntry(T0, "x" * 129, "sign_in", "failed"))
    with database.read() as tx:
        assert Audit(tx).head() == before


def test_a_consistent_rewrite_is_caught_by_the_anchor_file(
    chained: Database, tmp_path: Path
) -> None:
    anchors = AnchorFile(tmp_path / "anchors" / ANCHOR_FILE)
    with chained.read() as tx:
        assert anchors.record(Audit(tx).head(), T0 + 10)
        assert not anchors.record(Audit(tx).head(), T0 + 11)  # unchanged: nothing written
        third = next(r for r in Audit(tx).scan() if r.seq == 3)
    # Someone with the database rewrites 4..6 and re-seals the chain and its head.
    sql(
        chained,
        "DELETE FROM audit WHERE seq > 3",
        f"UPDATE audit_head SET seq = 3, hash = '{third.hash}'",
    )
    append(chained, [entry(i, "mallory") for i in range(3)])
    assert verify(chained) is None
    assert verify(chained, anchors.heads()) == (Tamper.EDITED, 6)
    assert stat.S_IMODE(anchors.path.stat().st_mode) == 0o600

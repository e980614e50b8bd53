"""The audit hash chain (pure): sealing, and naming the first edited, removed, inserted or
reordered record, whatever the chain and wherever the tampering."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.db.audit_chain import (
    GENESIS,
    AnchorsUnreadable,
    AuditEntry,
    AuditRecord,
    ChainHead,
    ChainProblem,
    Tamper,
    anchor_line,
    canonical,
    head_of,
    parse_anchors,
    record_hash,
    seal,
    timestamp,
    verify_chain,
)

T0 = 1_800_000_000.0


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        at=T0 + i * 1.5,
        actor=f"user{i % 3}",
        action="stream.view",
        outcome="ok",
        role="dispatcher",
        source="10.0.0.7",
        object=f"unit-{i:02d}",
        detail={"i": i, "reason": "incident 26-1234", "nested": {"ok": True}},
    )


def chain(n: int, start: ChainHead = GENESIS) -> list[AuditRecord]:
    records, head = [], start
    for i in range(n):
        record = seal(entry(i), head)
        records.append(record)
        head = head_of(record)
    return records


def renumber(record: AuditRecord, seq: int) -> AuditRecord:
    """What a row looks like after someone changed its seq column (and nothing else)."""
    return dataclasses.replace(record, seq=seq)


def forged(seq: int, prev_hash: str, sealed: bool = True) -> AuditRecord:
    fake = AuditEntry(T0, "mallory", "stream.view", "ok", object="unit-99")
    digest = record_hash(seq, fake, prev_hash) if sealed else "f" * 64
    return AuditRecord(seq, fake, prev_hash, digest)


def assert_named(
    records: list[AuditRecord], kind: Tamper, seq: int, anchors: Sequence[ChainHead] = ()
) -> ChainProblem:
    """The chain's first problem is of `kind`, at record `seq`."""
    problem = verify_chain(records, anchors=anchors)
    assert problem is not None
    assert (problem.kind, problem.seq) == (kind, seq), str(problem)
    return problem


sizes = st.integers(min_value=2, max_value=25)


@given(sizes)
def test_an_untouched_chain_holds(n: int) -> None:
    records = chain(n)
    assert [r.seq for r in records] == list(range(1, n + 1))
    assert verify_chain(records) is None
    assert verify_chain(records, anchors=[head_of(r) for r in records]) is None
    assert verify_chain([]) is None


def test_a_chain_may_start_after_purged_records() -> None:
    records = chain(10)
    rest = records[4:]
    assert verify_chain(rest, start=head_of(records[3]), anchors=[head_of(records[1])]) is None
    assert_named(rest, Tamper.REMOVED, 1)


FIELDS: dict[str, Any] = {
    "at": T0 + 0.000_001,
    "actor": "mallory",
    "action": "stream.stop",
    "outcome": "denied",
    "role": "admin",
    "source": "192.0.2.1",
    "object": "unit-77",
    "detail": {"i": -1},
}


@given(sizes, st.data(), st.sampled_from(sorted(FIELDS)))
def test_an_edited_field_names_its_record(n: int, data: st.DataObject, field: str) -> None:
    records = chain(n)
    i = data.draw(st.integers(0, n - 1))
    edited = dataclasses.replace(records[i].entry, **{field: FIELDS[field]})
    records[i] = dataclasses.replace(records[i], entry=edited)
    assert_named(records, Tamper.EDITED, i + 1)


@given(sizes, st.data())
def test_an_edit_sealed_anew_is_named_by_the_record_after_it(n: int, data: st.DataObject) -> None:
    records = chain(n)
    i = data.draw(st.integers(0, n - 2))
    rewritten = dataclasses.replace(records[i].entry, outcome="denied")
    records[i] = seal(rewritten, ChainHead(i, records[i].prev_hash))
    assert_named(records, Tamper.EDITED, i + 1)


def test_a_last_record_sealed_anew_is_caught_by_the_kept_head() -> None:
    records = chain(5)
    kept = head_of(records[-1])
    records[-1] = seal(dataclasses.replace(records[-1].entry, actor="x"), head_of(records[-2]))
    assert verify_chain(records) is None  # nothing inside the chain can tell
    assert_named(records, Tamper.EDITED, 5, anchors=[kept])


@given(sizes, st.data(), st.booleans())
def test_a_removed_record_is_named(n: int, data: st.DataObject, renumbered: bool) -> None:
    records = chain(n)
    i = data.draw(st.integers(0, n - 2))
    del records[i]
    if renumbered:  # the rows after it moved up to close the gap
        records[i:] = [renumber(r, r.seq - 1) for r in records[i:]]
    assert_named(records, Tamper.REMOVED, i + 1)


def test_removed_last_records_are_caught_by_the_kept_head() -> None:
    records = chain(6)
    kept = head_of(records[-1])
    assert_named(records[:4], Tamper.REMOVED, 5, anchors=[kept])


@given(sizes, st.data(), st.booleans(), st.booleans())
def test_an_inserted_record_is_named(
    n: int, data: st.DataObject, sealed: bool, claims_predecessor: bool
) -> None:
    records = chain(n)
    k = data.draw(st.integers(0, n - 1))  # inserted after the first k records
    prev_hash = records[k - 1].hash if k > 0 else GENESIS.hash
    intruder = forged(k + 1, prev_hash if claims_predecessor else "e" * 64, sealed)
    records[k:] = [intruder, *(renumber(r, r.seq + 1) for r in records[k:])]
    assert_named(records, Tamper.INSERTED, k + 1)


@given(sizes, st.data())
def test_swapped_rows_are_named_as_reordered(n: int, data: st.DataObject) -> None:
    """Two rows trade places (their seq values swapped): read by seq, the chain runs
    backwards between them."""
    records = chain(n)
    i = data.draw(st.integers(0, n - 2))
    first, second = records[i], records[i + 1]
    records[i], records[i + 1] = renumber(second, first.seq), renumber(first, second.seq)
    assert_named(records, Tamper.REORDERED, i + 1)


@given(sizes, st.data())
def test_records_out_of_order_are_named_as_reordered(n: int, data: st.DataObject) -> None:
    records = chain(n)
    i = data.draw(st.integers(0, n - 2))
    records[i], records[i + 1] = records[i + 1], records[i]
    assert_named(records, Tamper.REORDERED, i + 2)


def test_a_consistent_rewrite_is_caught_only_by_a_head_kept_elsewhere() -> None:
    records = chain(8)
    kept = head_of(records[5])
    rewritten = chain(3, start=head_of(records[2]))  # records 4..6 replaced, chain re-sealed
    records[3:6] = rewritten
    records[6:] = chain(2, start=head_of(rewritten[-1]))
    assert verify_chain(records) is None
    problem = assert_named(records, Tamper.EDITED, 6, anchors=[kept])
    assert "rewritten" in str(problem)


def test_the_encoding_is_fixed() -> None:
    """Stored chains and `rtcc audit verify` depend on these exact bytes."""
    sealed = seal(
        AuditEntry(1_800_000_000.25, "ana", "sign_in", "ok", "admin", "10.0.0.1", None, {"b": 1}),
        GENESIS,
    )
    assert canonical(1, sealed.entry, GENESIS.hash) == (
        b'{"action":"sign_in","actor":"ana","at":"2027-01-15T08:00:00.250000Z",'
        b'"detail":{"b":1},"object":null,"outcome":"ok","prev_hash":"' + b"0" * 64 + b'",'
        b'"role":"admin","seq":1,"source":"10.0.0.1"}'
    )
    assert sealed.hash == record_hash(1, sealed.entry, GENESIS.hash)
    assert timestamp(0.000_000_4) == "1970-01-01T00:00:00.000000Z"


@given(st.lists(st.tuples(st.integers(0, 10**12), st.binary(min_size=32, max_size=32))))
def test_anchor_lines_read_back_as_written(raw: list[tuple[int, bytes]]) -> None:
    heads = [ChainHead(seq, digest.hex()) for seq, digest in raw]
    data = b"".join(anchor_line(head, T0) for head in heads)
    assert parse_anchors(data) == heads
    # A crash in the middle of the last line loses that line only.
    assert parse_anchors(data + anchor_line(GENESIS, T0)[:-3]) == heads


def test_an_anchor_file_with_a_line_that_is_no_head_is_refused() -> None:
    good = anchor_line(ChainHead(3, "a" * 64), T0)
    for bad in (
        b"{}",
        b"[1]",
        b"nonsense",
        b'{"seq": 1, "hash": "xyz"}',
        b'{"seq": -1, "hash": "' + b"a" * 64 + b'"}',
        b'{"seq": true, "hash": "' + b"a" * 64 + b'"}',
    ):
        with pytest.raises(AnchorsUnreadable, match="line 2"):
            parse_anchors(good + bad + b"\n" + good)

"""What `rtcc audit export` writes and what `rtcc users` accepts, without a database: every
record comes back from JSON Lines and from CSV exactly as exported, whatever its text."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.audit_tools import COLUMNS, exported, parse_time, write_records
from central.db.audit_chain import GENESIS, AuditEntry, AuditRecord, head_of, seal
from central.people import CommandRefused, check_name, check_role

texts = st.text(st.characters(codec="utf-8"), max_size=40)  # no lone surrogates
entries = st.builds(
    AuditEntry,
    at=st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False),
    actor=texts,
    action=texts,
    outcome=texts,
    role=st.none() | texts,
    source=st.none() | texts,
    object=st.none() | texts,
    detail=st.dictionaries(texts, st.none() | st.integers() | texts, max_size=3),
)


def chain(items: list[AuditEntry]) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    head = GENESIS
    for item in items:
        records.append(seal(item, head))
        head = head_of(records[-1])
    return records


@given(st.lists(entries, max_size=5))
def test_both_formats_read_back_as_exported(items: list[AuditEntry]) -> None:
    records = chain(items)
    expected = [exported(r) for r in records]

    lines = io.StringIO()
    assert write_records(iter(records), "jsonl", lines) == len(records)
    assert [json.loads(line) for line in lines.getvalue().splitlines()] == expected

    table = io.StringIO()
    assert write_records(iter(records), "csv", table) == len(records)
    table.seek(0)
    reader = csv.DictReader(table)
    assert tuple(reader.fieldnames or ()) == COLUMNS
    rows = list(reader)
    assert [json.loads(row["detail"]) for row in rows] == [e["detail"] for e in expected]
    assert [row["hash"] for row in rows] == [e["hash"] for e in expected]
    assert [row["actor"] for row in rows] == [e["actor"] for e in expected]


def test_times_are_iso_8601_and_utc_without_a_zone() -> None:
    assert parse_time("2026-11-01T08:00:00Z") == 1_793_520_000.0
    assert parse_time("2026-11-01T08:00:00") == 1_793_520_000.0
    assert parse_time("2026-11-01T09:00:00+01:00") == 1_793_520_000.0
    with pytest.raises(CommandRefused, match="not an ISO 8601 time"):
        parse_time("last week")


@pytest.mark.parametrize("name", ["ana", "j.smith", "unit-07", "a", "ops@pd.example", "x" * 64])
def test_user_names_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Ana", "j smith", "-ana", ".ana", "x" * 65, "ana\n", "é"])
def test_user_names_refused(name: str) -> None:
    with pytest.raises(CommandRefused, match="is not valid"):
        check_name(name)


def test_roles_are_the_policys() -> None:
    assert check_role("dispatcher").value == "dispatcher"
    with pytest.raises(CommandRefused, match="one of admin, supervisor, dispatcher, tech, patrol"):
        check_role("chief")

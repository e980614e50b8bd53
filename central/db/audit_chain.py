"""The audit log's hash chain (pure: no I/O, no clock; time comes in with each entry).

Every record carries the hash of the one before it (`prev_hash`) and its own `hash`, the
SHA-256 of a canonical encoding of all its fields including `seq` and `prev_hash`. Anyone
with the records can recompute the chain: an edited record no longer matches its hash, a
removed one leaves a gap the next record's `prev_hash` points into, an inserted one has a
twin claiming the same predecessor, a reordered one points at a record that stands
elsewhere. `verify_chain` names the first such record. A chain rewritten consistently from
some point on is only caught against an anchor kept outside the database (a head written to
a separate file), which `verify_chain` takes as `anchors`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import JsonValue

GENESIS_HASH = "0" * 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened: who (`actor`, their `role`, from which `source` address), did what
    (`action`) to what (`object`), with which `outcome`, at `at` (epoch seconds)."""

    at: float
    actor: str
    action: str
    outcome: str
    role: str | None = None
    source: str | None = None
    object: str | None = None
    detail: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An entry sealed into the chain at position `seq` (1, 2, ...)."""

    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record of a chain (or `GENESIS`): where the next one attaches."""

    seq: int
    hash: str


GENESIS = ChainHead(0, GENESIS_HASH)


class Tamper(StrEnum):
    EDITED = "edited"
    REMOVED = "removed"
    INSERTED = "inserted"
    REORDERED = "reordered"


@dataclass(frozen=True, slots=True)
class ChainProblem:
    kind: Tamper
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit record {self.seq} {self.kind}: {self.reason}"


def timestamp(epoch_s: float) -> str:
    """ISO 8601 in UTC to the microsecond (what the database keeps of a time)."""
    moment = _EPOCH + timedelta(seconds=epoch_s)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def fields(seq: int, entry: AuditEntry, prev_hash: str) -> dict[str, Any]:
    """A record's fields by name, `at` as epoch seconds: what is hashed, stored and exported."""
    return {
        "seq": seq,
        "at": entry.at,
        "actor": entry.actor,
        "role": entry.role,
        "source": entry.source,
        "action": entry.action,
        "object": entry.object,
        "outcome": entry.outcome,
        "detail": dict(entry.detail),
        "prev_hash": prev_hash,
    }


def canonical(seq: int, entry: AuditEntry, prev_hash: str) -> bytes:
    """The bytes a record's hash covers: sorted-key compact JSON, UTF-8."""
    document = {**fields(seq, entry, prev_hash), "at": timestamp(entry.at)}
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode()


def record_hash(seq: int, entry: AuditEntry, prev_hash: str) -> str:
    return hashlib.sha256(canonical(seq, entry, prev_hash)).hexdigest()


def seal(entry: AuditEntry, head: ChainHead) -> AuditRecord:
    """`entry` as the record that follows `head`."""
    seq = head.seq + 1
    return AuditRecord(seq, entry, head.hash, record_hash(seq, entry, head.hash))


def head_of(record: AuditRecord) -> ChainHead:
    return ChainHead(record.seq, record.hash)


def is_sealed(record: AuditRecord) -> bool:
    """Whether the record still matches its own hash."""
    return record_hash(record.seq, record.entry, record.prev_hash) == record.hash


class _Links:
    """Who claims which predecessor, and where each record stands: what tells an
    insertion from an edit and a reordering from a removal."""

    def __init__(self, records: Sequence[AuditRecord]) -> None:
        self.records = records
        self.hashes = {record.hash for record in records}
        self.followers: dict[str, list[int]] = {}
        for position, record in enumerate(records):
            self.followers.setdefault(record.prev_hash, []).append(position)

    def continued(self, record: AuditRecord) -> bool:
        return record.hash in self.followers

    def intruder(self, predecessor: str) -> AuditRecord | None:
        """Of several records claiming one predecessor, the one nothing continues (an
        unsealed one first): the genuine record is the one the chain goes on from."""
        claims = [self.records[p] for p in self.followers.get(predecessor, [])]
        if len(claims) < 2:
            return None
        last = self.records[-1]
        loose = [r for r in claims if not self.continued(r) and r is not last] or [
            r for r in claims if not self.continued(r)
        ]
        loose.sort(key=is_sealed)
        return loose[0] if loose else None

    def successor_elsewhere(self, predecessor: str, record: AuditRecord) -> bool:
        claims = self.followers.get(predecessor, [])
        return any(self.records[p] is not record for p in claims)


def _linked_step(prev: ChainHead, record: AuditRecord, links: _Links) -> ChainProblem | None:
    intruder = links.intruder(prev.hash)
    if intruder is not None:
        return ChainProblem(
            Tamper.INSERTED, intruder.seq, f"a second record claims to follow {prev.seq}"
        )
    if not is_sealed(record):
        return ChainProblem(Tamper.EDITED, record.seq, "its fields do not match its hash")
    if record.seq != prev.seq + 1:
        return ChainProblem(Tamper.EDITED, record.seq, f"it follows {prev.seq} in the chain")
    return None


def _unlinked_step(prev: ChainHead, record: AuditRecord, links: _Links) -> ChainProblem:
    if record.prev_hash in links.hashes:
        return ChainProblem(
            Tamper.REORDERED, record.seq, "it follows a record that stands elsewhere"
        )
    if links.successor_elsewhere(prev.hash, record):
        return ChainProblem(
            Tamper.INSERTED, record.seq, f"the record that follows {prev.seq} stands elsewhere"
        )
    if record.seq == prev.seq + 1 and is_sealed(record):
        # Numbering and seal intact, link broken: the record before was rewritten.
        edited = prev.seq if prev.seq > 0 else record.seq
        return ChainProblem(Tamper.EDITED, edited, "its hash is not the one the chain holds")
    return ChainProblem(Tamper.REMOVED, prev.seq + 1, f"the record after {prev.seq} is missing")


def _check_anchor(
    anchor: ChainHead, kept: Mapping[int, str], end: ChainHead
) -> ChainProblem | None:
    if anchor.seq > end.seq:
        return ChainProblem(
            Tamper.REMOVED, end.seq + 1, f"the chain ends at {end.seq}, its head was {anchor.seq}"
        )
    if kept.get(anchor.seq, anchor.hash) != anchor.hash:
        return ChainProblem(
            Tamper.EDITED,
            anchor.seq,
            "the chain up to here was rewritten (its hash differs from the kept head)",
        )
    return None


class AnchorsUnreadable(ValueError):
    """A line of an anchor file that is not a head: the file itself was tampered with."""


def anchor_line(head: ChainHead, at: float) -> bytes:
    """One line of the anchor file: the chain's head at `at`."""
    document = {"seq": head.seq, "hash": head.hash, "at": timestamp(at)}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def base_line(base: ChainHead, at: float) -> bytes:
    """One line of the anchor file: a purge moved the chain's start to after `base`."""
    document = {"base_seq": base.seq, "base_hash": base.hash, "at": timestamp(at)}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def parse_anchors(data: bytes) -> list[ChainHead]:
    """The heads of an anchor file, oldest first. A last line cut short (a crash while it
    was written) is left out; any other line that is not a head raises AnchorsUnreadable."""
    return parse_anchor_file(data)[0]


def parse_anchor_file(data: bytes) -> tuple[list[ChainHead], list[ChainHead]]:
    """The heads and the purge bases of an anchor file, each oldest first."""
    *complete, _torn = data.split(b"\n")
    heads: list[ChainHead] = []
    bases: list[ChainHead] = []
    for number, line in enumerate(complete, start=1):
        try:
            document = json.loads(line)
            is_base = "base_seq" in document
            prefix = "base_" if is_base else ""
            head = ChainHead(document[prefix + "seq"], document[prefix + "hash"])
        except (ValueError, KeyError, TypeError):
            raise AnchorsUnreadable(f"anchor file line {number} is not a chain head") from None
        if not _is_head(head):
            raise AnchorsUnreadable(f"anchor file line {number} is not a chain head")
        (bases if is_base else heads).append(head)
    return heads, bases


def _is_head(head: ChainHead) -> bool:
    digits = set("0123456789abcdef")
    return (
        type(head.seq) is int
        and head.seq >= 0
        and isinstance(head.hash, str)
        and len(head.hash) == len(GENESIS_HASH)
        and set(head.hash) <= digits
    )


def verify_chain(
    records: Sequence[AuditRecord],
    *,
    start: ChainHead = GENESIS,
    anchors: Sequence[ChainHead] = (),
) -> ChainProblem | None:
    """The first edited, removed, inserted or reordered record of `records` (in the order
    they are stored, by `seq`), or None when the chain holds.

    `start` is the record the first one follows (GENESIS unless older records were purged).
    `anchors` are heads kept outside the database; each must still be in the chain.
    """
    links = _Links(records)
    prev = start
    for record in records:
        if record.prev_hash == prev.hash:
            problem = _linked_step(prev, record, links)
        else:
            problem = _unlinked_step(prev, record, links)
        if problem is not None:
            return problem
        prev = head_of(record)
    # Anchors from before `start` (records purged since) have nothing left to hold to.
    kept = {start.seq: start.hash} | {record.seq: record.hash for record in records}
    for anchor in sorted(anchors, key=lambda a: a.seq):
        problem = _check_anchor(anchor, kept, prev)
        if problem is not None:
            return problem
    return None

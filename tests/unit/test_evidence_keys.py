"""Which key an evidence upload must be signed with: the one the unit enrolled with, else the
first it showed; recordings of a replaced gateway still verify under the key they began with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from central.errors import Conflict, Refused
from central.evidence.store import EvidenceStore
from protocol.evidence import GENESIS, ManifestEntry, UnitKey
from tests.unit.evidence_helpers import signed_entry

SEGMENT = b"\x00\x00\x00\x18ftypiso5" + bytes(range(200))


def recorded(store: EvidenceStore, key: UnitKey, recording_id: str, unit_id: str = "u1") -> None:
    """One signed, final, one-segment recording, uploaded whole."""
    entry = signed_entry(key, recording_id, 0, SEGMENT, GENESIS, final=True, unit_id=unit_id)
    assert store.add_entry(entry)
    store.append(recording_id, 0, 0, SEGMENT)


def refused(store: EvidenceStore, key: UnitKey, recording_id: str) -> None:
    """A recording signed with `key` is refused: the unit's key is another."""
    with pytest.raises(Refused, match="another key"):
        recorded(store, key, recording_id)


@pytest.fixture
def registry() -> dict[str, str]:
    return {}


@pytest.fixture
def store(tmp_path: Path, registry: dict[str, str]) -> Iterator[EvidenceStore]:
    kept = EvidenceStore(tmp_path / "evidence", registry.get)
    try:
        yield kept
    finally:
        kept.close()


def test_a_unit_that_never_enrolled_has_its_first_key_pinned(store: EvidenceStore) -> None:
    first, other = UnitKey.generate(), UnitKey.generate()
    recorded(store, first, "u1-r1")
    refused(store, other, "u1-r2")
    assert store.verify("u1-r1") == []


def test_an_enrolled_unit_uploads_only_under_its_registered_key(
    store: EvidenceStore, registry: dict[str, str]
) -> None:
    enrolled, stranger = UnitKey.generate(), UnitKey.generate()
    registry["u1"] = enrolled.public_b64
    refused(store, stranger, "u1-r1")  # not even as the unit's first upload
    recorded(store, enrolled, "u1-r2")
    assert store.verify("u1-r2") == []


def test_a_replacement_gateway_takes_over_and_the_old_recordings_still_verify(
    store: EvidenceStore, registry: dict[str, str]
) -> None:
    old, new = UnitKey.generate(), UnitKey.generate()
    recorded(store, old, "u1-r1")  # before enrollment: pinned on first use
    registry["u1"] = new.public_b64  # the replacement enrolled
    recorded(store, new, "u1-r2")
    refused(store, old, "u1-r3")  # the old gateway is out
    assert store.verify("u1-r1") == [] and store.verify("u1-r2") == []


def entry(key: UnitKey, index: int, prev: str, final: bool) -> ManifestEntry:
    return signed_entry(key, "u1-r1", index, SEGMENT, prev, final)


def test_a_replaced_gateway_cannot_go_on_with_a_recording_it_began(
    store: EvidenceStore, registry: dict[str, str]
) -> None:
    old, new = UnitKey.generate(), UnitKey.generate()
    registry["u1"] = old.public_b64
    first = entry(old, 0, GENESIS, final=False)
    assert store.add_entry(first)
    registry["u1"] = new.public_b64  # stolen, and a replacement enrolled
    with pytest.raises(Refused, match="another key"):
        store.add_entry(entry(old, 1, first.digest(), final=False))


def test_nothing_is_added_after_a_recordings_final_entry(
    store: EvidenceStore, registry: dict[str, str]
) -> None:
    key = UnitKey.generate()
    registry["u1"] = key.public_b64
    last = entry(key, 0, GENESIS, final=True)
    assert store.add_entry(last)
    with pytest.raises(Conflict, match="final"):
        store.add_entry(entry(key, 1, last.digest(), final=False))

"""Which key an evidence upload must be signed with: the one the unit enrolled with, else the
first it showed; recordings of a replaced gateway still verify under the key they began with."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.errors import Refused
from central.evidence.store import EvidenceStore
from protocol.evidence import GENESIS, ManifestEntry, UnitKey

SEGMENT = b"\x00\x00\x00\x18ftypiso5" + bytes(range(200))


def recorded(store: EvidenceStore, key: UnitKey, recording_id: str, unit_id: str = "u1") -> None:
    """One signed, final, one-segment recording, uploaded whole."""
    entry = key.sign(
        ManifestEntry(
            unit_id=unit_id,
            recording_id=recording_id,
            index=0,
            file="seg-00000.mp4",
            size=len(SEGMENT),
            sha256=hashlib.sha256(SEGMENT).hexdigest(),
            start_ts=1.0,
            end_ts=2.0,
            trigger="trigger.holster_draw",
            final=True,
            prev=GENESIS,
            key="",
        )
    )
    assert store.add_entry(entry)
    store.append(recording_id, 0, 0, SEGMENT)


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
    with pytest.raises(Refused, match="another key"):
        recorded(store, other, "u1-r2")
    assert store.verify("u1-r1") == []


def test_an_enrolled_unit_uploads_only_under_its_registered_key(
    store: EvidenceStore, registry: dict[str, str]
) -> None:
    enrolled, stranger = UnitKey.generate(), UnitKey.generate()
    registry["u1"] = enrolled.public_b64
    with pytest.raises(Refused, match="another key"):
        recorded(store, stranger, "u1-r1")  # not even as the unit's first upload
    recorded(store, enrolled, "u1-r2")
    assert store.verify("u1-r2") == []


def test_a_replacement_gateway_takes_over_and_the_old_recordings_still_verify(
    store: EvidenceStore, registry: dict[str, str]
) -> None:
    old, new = UnitKey.generate(), UnitKey.generate()
    recorded(store, old, "u1-r1")  # before enrollment: pinned on first use
    registry["u1"] = new.public_b64  # the replacement enrolled
    recorded(store, new, "u1-r2")
    with pytest.raises(Refused, match="another key"):
        recorded(store, old, "u1-r3")  # the old gateway is out
    assert store.verify("u1-r1") == [] and store.verify("u1-r2") == []

"""Signed manifest entries of made-up recordings, as a unit's recorder writes them."""

from __future__ import annotations

import hashlib

from protocol.evidence import ManifestEntry, UnitKey


def signed_entry(
    key: UnitKey,
    recording_id: str,
    index: int,
    data: bytes,
    prev: str,
    final: bool,
    unit_id: str = "u1",
) -> ManifestEntry:
    """The entry of segment `index` (its bytes `data`, 10 s long) of a holster-draw recording,
    chained to `prev` and signed with `key`."""
    return key.sign(
        ManifestEntry(
            unit_id=unit_id,
            recording_id=recording_id,
            index=index,
            file=f"{recording_id}-{index:05d}.mp4",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            start_ts=1000.0 + 10 * index,
            end_ts=1010.0 + 10 * index,
            trigger="trigger.holster_draw",
            final=final,
            prev=prev,
            key="",
        )
    )

"""The signed, hash-chained evidence manifest: verify names exactly what is wrong."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from protocol.evidence import GENESIS, ManifestEntry, UnitKey, parse_manifest, verify
from tests.unit.evidence_helpers import signed_entry

KEY = UnitKey.generate()


def recording(n: int, key: UnitKey = KEY) -> tuple[list[ManifestEntry], dict[str, str | None]]:
    entries: list[ManifestEntry] = []
    files: dict[str, str | None] = {}
    prev = GENESIS
    for i in range(n):
        data = f"segment {i}".encode()
        entry = signed_entry(key, "r1", i, data, prev, final=i == n - 1)
        entries.append(entry)
        files[entry.file] = entry.sha256
        prev = entry.digest()
    return entries, files


def test_an_intact_recording_verifies() -> None:
    entries, files = recording(5)
    assert verify(entries, files, KEY.public_b64) == []


def test_a_flipped_segment_byte_names_that_segment_only() -> None:
    entries, files = recording(5)
    files["r1-00002.mp4"] = hashlib.sha256(b"segment 2 but changed").hexdigest()
    problems = verify(entries, files, KEY.public_b64)
    assert [(p.index, p.file, p.reason) for p in problems] == [
        (2, "r1-00002.mp4", "segment altered: SHA-256 differs")
    ]


def test_an_edited_entry_names_that_entry_only() -> None:
    entries, files = recording(5)
    entries[3] = entries[3].model_copy(update={"trigger": "nothing happened"})
    assert [(p.index, p.reason) for p in verify(entries, files, KEY.public_b64)] == [
        (3, "bad signature")
    ]


def test_a_removed_entry_is_named_by_the_one_after_it() -> None:
    entries, files = recording(5)
    del entries[2]
    problems = verify(entries, files, KEY.public_b64)
    assert [p.index for p in problems] == [2]
    assert "chain broken" in problems[0].reason


def test_a_re_signed_forgery_with_another_key_is_refused() -> None:
    entries, files = recording(3)
    forged, _ = recording(3, UnitKey.generate())
    problems = verify([entries[0], forged[1], entries[2]], files, KEY.public_b64)
    assert [(p.index, p.reason) for p in problems] == [(1, "signed by another key than the unit's")]


def test_a_missing_segment_is_named() -> None:
    entries, files = recording(3)
    files["r1-00001.mp4"] = None
    assert [(p.index, p.reason) for p in verify(entries, files, None)] == [(1, "segment missing")]


@given(st.text(max_size=2000))
def test_manifest_text_never_raises(text: str) -> None:
    entries, _ = parse_manifest(text)
    verify(entries, {}, None)


def test_manifest_lines_round_trip() -> None:
    entries, _ = recording(3)
    text = "\n".join(e.model_dump_json() for e in entries) + "\nnot json\n"
    parsed, problems = parse_manifest(text)
    assert parsed == entries
    assert [p.index for p in problems] == [3]

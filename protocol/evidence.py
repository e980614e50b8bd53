"""The evidence manifest: one signed, hash-chained entry per recorded segment (pure).

A recording is a list of entries. Each entry names one segment file and its SHA-256, carries
`prev`, the SHA-256 of the previous entry's signed bytes (64 zeros for the first), and an
Ed25519 signature by the unit's key over its canonical JSON without `sig`. Editing, removing,
reordering or inserting an entry, or changing one byte of a segment, is caught by `verify`,
which names the first entry or segment that is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

GENESIS = "0" * 64
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
SAFE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MAX_SEGMENT_INDEX = 1_000_000
SafeName = Annotated[str, Field(pattern=SAFE_NAME_PATTERN)]


class GpsPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ts: float
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1
    unit_id: SafeName
    recording_id: SafeName
    index: int = Field(ge=0, le=MAX_SEGMENT_INDEX)
    file: SafeName
    size: int = Field(ge=0)
    sha256: Sha256Hex
    start_ts: float
    end_ts: float
    trigger: str = Field(max_length=128)
    gps: list[GpsPoint] = Field(default_factory=list, max_length=10_000)
    final: bool = False
    prev: Sha256Hex
    key: str = Field(max_length=64, description="The signer's public key, base64.")
    sig: str = Field(default="", max_length=128)

    def signed_bytes(self) -> bytes:
        body = self.model_dump(mode="json", exclude={"sig"})
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        """What the next entry's `prev` must be."""
        return hashlib.sha256(self.signed_bytes() + self.sig.encode()).hexdigest()


class UnitKey:
    """A unit's Ed25519 signing key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        raw = private.public_key().public_bytes_raw()
        self.public_b64 = base64.b64encode(raw).decode()

    @classmethod
    def generate(cls) -> UnitKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> UnitKey:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        return self._private.private_bytes_raw()

    def sign(self, entry: ManifestEntry) -> ManifestEntry:
        unsigned = entry.model_copy(update={"key": self.public_b64, "sig": ""})
        signature = self._private.sign(unsigned.signed_bytes())
        return unsigned.model_copy(update={"sig": base64.b64encode(signature).decode()})


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong, and where: `index` is the entry's position in the manifest."""

    index: int
    file: str | None
    reason: str


def check_entry(entry: ManifestEntry, expected_key: str | None = None) -> str | None:
    """The reason the entry's own signature fails, or None."""
    if expected_key is not None and entry.key != expected_key:
        return "signed by another key than the unit's"
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(entry.key, validate=True))
        public.verify(base64.b64decode(entry.sig, validate=True), entry.signed_bytes())
    except (InvalidSignature, ValueError, binascii.Error):
        return "bad signature"
    return None


def verify(
    entries: list[ManifestEntry], file_hashes: dict[str, str | None], expected_key: str | None
) -> list[Problem]:
    """Check signatures, the chain, the order and every segment's hash.

    `file_hashes` maps each entry's file to the SHA-256 of the stored bytes (None: missing).
    `expected_key` is the unit's registered public key (None: the first entry's is taken).
    """
    problems: list[Problem] = []
    key = expected_key or (entries[0].key if entries else None)
    prev, prev_signed, expected_index = GENESIS, True, 0
    recording = entries[0].recording_id if entries else None
    for position, entry in enumerate(entries):
        reason = check_entry(entry, key)
        signed = reason is None
        # After an entry that fails its own signature its true digest is unknown: the next
        # entry's link is not held against it, so one edit is reported once.
        if reason is None and prev_signed and entry.prev != prev:
            reason = "chain broken: an entry before this one was removed or replaced"
        elif reason is None and entry.recording_id != recording:
            reason = "entry of another recording"
        elif reason is None and entry.index != expected_index:
            reason = f"out of order: index {entry.index}, expected {expected_index}"
        if reason is not None:
            problems.append(Problem(position, entry.file, reason))
        prev, prev_signed, expected_index = entry.digest(), signed, entry.index + 1
        stored = file_hashes.get(entry.file)
        if stored is None:
            problems.append(Problem(position, entry.file, "segment missing"))
        elif stored != entry.sha256:
            problems.append(Problem(position, entry.file, "segment altered: SHA-256 differs"))
    return problems


def parse_manifest(text: str) -> tuple[list[ManifestEntry], list[Problem]]:
    """JSON lines -> entries; lines that do not parse are problems, not exceptions."""
    entries: list[ManifestEntry] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            entries.append(ManifestEntry.model_validate_json(line))
        except ValueError as exc:
            problems.append(Problem(number, None, f"unreadable entry: {str(exc)[:200]}"))
    return entries, problems

"""`rtcc agent evidence status`: what evidence waits on this unit's disk, read straight from
the evidence folder (the agent need not be running)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from protocol.evidence import parse_manifest
from protocol.upload import MANIFEST


@dataclass(frozen=True, slots=True)
class RecordingStatus:
    recording_id: str
    trigger: str | None
    segments: int
    closed: bool
    to_upload: int
    bytes_to_upload: int
    unreadable_entries: int


def recording_status(directory: Path) -> RecordingStatus:
    manifest = directory / MANIFEST
    text = manifest.read_text(encoding="utf-8") if manifest.exists() else ""
    entries, problems = parse_manifest(text)
    waiting = [e for e in entries if (directory / e.file).exists()]
    return RecordingStatus(
        recording_id=directory.name,
        trigger=entries[0].trigger if entries else None,
        segments=len(entries),
        closed=bool(entries and entries[-1].final),
        to_upload=len(waiting),
        bytes_to_upload=sum(e.size for e in waiting),
        unreadable_entries=len(problems),
    )


def evidence_status(root: Path) -> dict[str, Any]:
    recordings = [
        recording_status(d) for d in sorted((root / "recordings").glob("*")) if d.is_dir()
    ]
    quarantine = root / "quarantine"
    return {
        "recordings": [asdict(r) for r in recordings],
        "segments_to_upload": sum(r.to_upload for r in recordings),
        "bytes_to_upload": sum(r.bytes_to_upload for r in recordings),
        "quarantined": sorted(p.name for p in quarantine.glob("*")) if quarantine.is_dir() else [],
    }

"""Evidence on the center's disk, indexed in SQLite. Synchronous; the API runs it in a
thread. Files: <root>/<unit>/<recording>/{manifest.jsonl, segments, *.upload}."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from central.errors import Conflict, Forbidden, NotFound, Refused, TooLarge, Unprocessable
from protocol.evidence import ManifestEntry, Problem, check_entry, parse_manifest, verify
from protocol.upload import MANIFEST
from runtime.files import append_durably, sha256_file

UPLOADING = ".upload"

SCHEMA = """
CREATE TABLE IF NOT EXISTS unit_keys (unit_id TEXT PRIMARY KEY, key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recording_keys (recording_id TEXT PRIMARY KEY, key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY, unit_id TEXT NOT NULL, trigger TEXT NOT NULL,
    start_ts REAL NOT NULL, end_ts REAL NOT NULL, entries INTEGER NOT NULL,
    last_digest TEXT NOT NULL, closed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS recordings_by_unit ON recordings (unit_id, start_ts);
CREATE TABLE IF NOT EXISTS segments (
    recording_id TEXT NOT NULL, idx INTEGER NOT NULL, file TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0,
    start_ts REAL, end_ts REAL,
    PRIMARY KEY (recording_id, idx));
"""
# Indexes made before the segments' own times were kept: they are read from the manifests.
SEGMENT_TIMES = ("start_ts", "end_ts")


@dataclass(frozen=True, slots=True)
class SegmentSpan:
    """A stored segment and the time it shows (capture times, epoch seconds)."""

    recording_id: str
    index: int
    file: str
    size: int
    start_ts: float
    end_ts: float


@dataclass(frozen=True, slots=True)
class SegmentState:
    recording_id: str
    index: int
    file: str
    size: int
    sha256: str
    offset: int
    confirmed: bool


def _none(_unit_id: str) -> str | None:
    return None


def _never(_unit_id: str) -> bool:
    return False


class UnitShutOut(Forbidden):
    """The unit's certificate is revoked (or expired): nothing more is taken from it."""

    def __init__(self, unit_id: str) -> None:
        super().__init__(f"unit {unit_id} holds no valid certificate: its uploads are refused")
        self.unit_id = unit_id


class EvidenceStore:
    """`registered_key(unit_id)`: the evidence key the unit enrolled with, if it did. An
    enrolled unit's recordings must be signed with it (it replaces a key pinned before); a
    unit that never enrolled has the first key it showed pinned. Each recording keeps the
    key it began with, so recordings of a replaced gateway still verify."""

    def __init__(
        self,
        root: Path,
        registered_key: Callable[[str], str | None] = _none,
        shut_out: Callable[[str], bool] = _never,
    ) -> None:
        self.root = root
        self._registered_key = registered_key
        self._shut_out = shut_out
        root.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(root / "index.db", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._keep_segment_times()

    def close(self) -> None:
        self._db.close()

    def _keys(
        self, entry: ManifestEntry, registered: str | None
    ) -> tuple[str | None, str | None, str | None]:
        """The unit's pinned key, the recording's first key, and the key the entry must
        be signed with: the recording's, else the enrolled one, else the pinned one;
        an enrolled unit's always (a replaced or revoked gateway is out, even for a
        recording it began)."""
        pinned = self._db.execute(
            "SELECT key FROM unit_keys WHERE unit_id = ?", (entry.unit_id,)
        ).fetchone()
        began = self._db.execute(
            "SELECT key FROM recording_keys WHERE recording_id = ?", (entry.recording_id,)
        ).fetchone()
        pinned_key = pinned[0] if pinned else None
        began_key = began[0] if began else None
        if registered is not None and entry.key != registered:
            return pinned_key, began_key, registered
        return pinned_key, began_key, began_key or registered or pinned_key

    def _is_next(self, entry: ManifestEntry, row: tuple[int, str, int] | None) -> bool:
        """Whether the entry comes next in its recording (`row`: entries, last digest,
        closed); False for one already stored; Conflict for anything else."""
        have, last = (row[0], row[1]) if row else (0, None)
        if row is not None and row[2] and entry.index >= have:
            raise Conflict(f"entry {entry.index} after the recording's final entry")
        if entry.index < have:
            stored = self._db.execute(
                "SELECT sha256, file FROM segments WHERE recording_id = ? AND idx = ?",
                (entry.recording_id, entry.index),
            ).fetchone()
            if stored == (entry.sha256, entry.file):
                return False
            raise Conflict(f"entry {entry.index} differs from the one stored")
        if entry.index > have:
            raise Conflict(f"entry {entry.index} before entry {have}")
        if row is not None and entry.prev != last:
            raise Conflict(f"entry {entry.index} does not chain to entry {have - 1}")
        return True

    def _check_standing(self, unit_id: str) -> None:
        if self._shut_out(unit_id):
            raise UnitShutOut(unit_id)

    def _dir(self, unit_id: str, recording_id: str) -> Path:
        return self.root / unit_id / recording_id

    # ---- manifest entries -------------------------------------------------------------

    def add_entry(self, entry: ManifestEntry) -> bool:
        """Append a unit's signed entry to its recording; False if it was already there."""
        self._check_standing(entry.unit_id)
        registered = self._registered_key(entry.unit_id)
        with self._lock, self._db:
            pinned, began, expected = self._keys(entry, registered)
            reason = check_entry(entry, expected)
            if reason is not None:
                raise Refused(f"entry {entry.index}: {reason}")
            if not entry.recording_id.startswith(entry.unit_id + "-"):
                raise Unprocessable("recording id does not belong to the unit")
            row = self._db.execute(
                "SELECT entries, last_digest, closed FROM recordings WHERE id = ?",
                (entry.recording_id,),
            ).fetchone()
            if not self._is_next(entry, row):
                return False
            directory = self._dir(entry.unit_id, entry.recording_id)
            directory.mkdir(parents=True, exist_ok=True)
            append_durably(directory / MANIFEST, (entry.model_dump_json() + "\n").encode())
            if pinned is None or (pinned != entry.key and began is None):
                self._keep_unit_key(entry.unit_id, entry.key)
            if began is None:
                self._db.execute(
                    "INSERT OR IGNORE INTO recording_keys (recording_id, key) VALUES (?, ?)",
                    (entry.recording_id, entry.key),
                )
            if row is None:
                self._db.execute(
                    "INSERT INTO recordings VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                    (
                        entry.recording_id,
                        entry.unit_id,
                        entry.trigger,
                        entry.start_ts,
                        entry.end_ts,
                        entry.digest(),
                        int(entry.final),
                    ),
                )
            else:
                self._db.execute(
                    "UPDATE recordings SET entries = entries + 1, end_ts = max(end_ts, ?),"
                    " last_digest = ?, closed = ? WHERE id = ?",
                    (entry.end_ts, entry.digest(), int(entry.final), entry.recording_id),
                )
            self._db.execute(
                "INSERT INTO segments (recording_id, idx, file, size, sha256, start_ts, end_ts)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    entry.recording_id,
                    entry.index,
                    entry.file,
                    entry.size,
                    entry.sha256,
                    entry.start_ts,
                    entry.end_ts,
                ),
            )
            return True

    def _keep_unit_key(self, unit_id: str, key: str) -> None:
        """The unit's key from now on; its recordings that began before keep theirs."""
        self._db.execute(
            "INSERT OR IGNORE INTO recording_keys (recording_id, key) SELECT r.id, k.key"
            " FROM recordings r JOIN unit_keys k ON k.unit_id = r.unit_id WHERE r.unit_id = ?",
            (unit_id,),
        )
        self._db.execute(
            "INSERT INTO unit_keys (unit_id, key) VALUES (?, ?)"
            " ON CONFLICT (unit_id) DO UPDATE SET key = excluded.key",
            (unit_id, key),
        )

    def _keep_segment_times(self) -> None:
        """An index from before segments had their own times gets them, from the stored
        manifests (once)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(segments)")}
        missing = [name for name in SEGMENT_TIMES if name not in columns]
        if not missing:
            return
        with self._lock, self._db:
            for name in missing:
                self._db.execute(f"ALTER TABLE segments ADD COLUMN {name} REAL")
            for recording_id, unit_id in self._db.execute(
                "SELECT id, unit_id FROM recordings"
            ).fetchall():
                manifest = self._dir(unit_id, recording_id) / MANIFEST
                if not manifest.is_file():
                    continue
                entries, _ = parse_manifest(manifest.read_text(encoding="utf-8"))
                self._db.executemany(
                    "UPDATE segments SET start_ts = ?, end_ts = ? WHERE recording_id = ?"
                    " AND idx = ? AND file = ?",
                    [(e.start_ts, e.end_ts, recording_id, e.index, e.file) for e in entries],
                )

    # ---- segment uploads --------------------------------------------------------------

    def segment(self, recording_id: str, index: int) -> SegmentState:
        row = self._db.execute(
            "SELECT s.file, s.size, s.sha256, s.confirmed, r.unit_id FROM segments s"
            " JOIN recordings r ON r.id = s.recording_id WHERE s.recording_id = ? AND s.idx = ?",
            (recording_id, index),
        ).fetchone()
        if row is None:
            raise NotFound("no manifest entry for this segment yet")
        file, size, sha256, confirmed, unit_id = row
        path = self._dir(unit_id, recording_id) / file
        if confirmed:
            offset = size
        else:
            partial = path.with_name(file + UPLOADING)
            offset = partial.stat().st_size if partial.exists() else 0
        return SegmentState(recording_id, index, file, size, sha256, offset, bool(confirmed))

    def append(self, recording_id: str, index: int, offset: int, chunk: bytes) -> SegmentState:
        """Add bytes at `offset` (which must be what is stored so far); verify once complete."""
        with self._lock:
            state = self.segment(recording_id, index)
            if state.confirmed:
                return state
            if offset != state.offset:
                raise Conflict(f"offset {offset}, but {state.offset} bytes are stored")
            if offset + len(chunk) > state.size:
                raise TooLarge("more bytes than the manifest entry's size")
            unit_id = self._unit_of(recording_id)
            self._check_standing(unit_id)
            path = self._dir(unit_id, recording_id) / state.file
            partial = path.with_name(state.file + UPLOADING)
            append_durably(partial, chunk)
            if offset + len(chunk) < state.size:
                return self.segment(recording_id, index)
            if sha256_file(partial) != state.sha256:
                partial.unlink()
                raise Unprocessable("SHA-256 of the uploaded bytes does not match the entry")
            os.replace(partial, path)
            with self._db:
                self._db.execute(
                    "UPDATE segments SET confirmed = 1 WHERE recording_id = ? AND idx = ?",
                    (recording_id, index),
                )
            return self.segment(recording_id, index)

    def _unit_of(self, recording_id: str) -> str:
        row = self._db.execute(
            "SELECT unit_id FROM recordings WHERE id = ?", (recording_id,)
        ).fetchone()
        if row is None:
            raise NotFound("unknown recording")
        return str(row[0])

    # ---- search, verify, download -----------------------------------------------------

    def recordings(
        self, unit_id: str | None, since: float | None, until: float | None, limit: int
    ) -> list[dict[str, object]]:
        query = "SELECT id FROM recordings WHERE 1=1"
        args: list[object] = []
        if unit_id is not None:
            query += " AND unit_id = ?"
            args.append(unit_id)
        if since is not None:
            query += " AND end_ts >= ?"
            args.append(since)
        if until is not None:
            query += " AND start_ts <= ?"
            args.append(until)
        query += " ORDER BY start_ts DESC LIMIT ?"
        args.append(limit)
        return [self.describe(row[0]) for row in self._db.execute(query, args).fetchall()]

    def describe(self, recording_id: str) -> dict[str, object]:
        row = self._db.execute(
            "SELECT id, unit_id, trigger, start_ts, end_ts, entries, closed FROM recordings"
            " WHERE id = ?",
            (recording_id,),
        ).fetchone()
        if row is None:
            raise NotFound("unknown recording")
        segments = self._db.execute(
            "SELECT idx, file, size, sha256, confirmed FROM segments WHERE recording_id = ?"
            " ORDER BY idx",
            (recording_id,),
        ).fetchall()
        return {
            "id": row[0],
            "unit_id": row[1],
            "trigger": row[2],
            "start_ts": row[3],
            "end_ts": row[4],
            "closed": bool(row[6]),
            "bytes": sum(s[2] for s in segments),
            "segments": [
                {"index": s[0], "file": s[1], "size": s[2], "sha256": s[3], "stored": bool(s[4])}
                for s in segments
            ],
        }

    def stored_segments(
        self, unit_id: str, since: float, until: float, limit: int
    ) -> list[SegmentSpan]:
        """The unit's stored segments that show any of [since, until], newest first."""
        rows = self._db.execute(
            "SELECT s.recording_id, s.idx, s.file, s.size, s.start_ts, s.end_ts FROM segments s"
            " JOIN recordings r ON r.id = s.recording_id"
            " WHERE r.unit_id = ? AND r.end_ts >= ? AND r.start_ts <= ? AND s.confirmed = 1"
            " AND s.end_ts >= ? AND s.start_ts <= ?"
            " ORDER BY s.start_ts DESC, s.recording_id LIMIT ?",
            (unit_id, since, until, since, until, limit),
        ).fetchall()
        return [SegmentSpan(*row) for row in rows]

    def segment_path(self, recording_id: str, index: int) -> Path:
        state = self.segment(recording_id, index)
        if not state.confirmed:
            raise Conflict("segment not uploaded yet")
        return self._dir(self._unit_of(recording_id), recording_id) / state.file

    def verify(self, recording_id: str) -> list[Problem]:
        """Re-read the stored manifest and every stored segment from disk."""
        unit_id = self._unit_of(recording_id)
        directory = self._dir(unit_id, recording_id)
        entries, problems = parse_manifest((directory / MANIFEST).read_text(encoding="utf-8"))
        key = (
            self._db.execute(
                "SELECT key FROM recording_keys WHERE recording_id = ?", (recording_id,)
            ).fetchone()
            or self._db.execute(
                "SELECT key FROM unit_keys WHERE unit_id = ?", (unit_id,)
            ).fetchone()
        )
        return problems + verify_directory(directory, entries, key[0] if key else None)


def verify_directory(
    directory: Path, entries: list[ManifestEntry], key: str | None
) -> list[Problem]:
    hashes: dict[str, str | None] = {}
    for entry in entries:
        path = directory / entry.file
        hashes[entry.file] = sha256_file(path) if path.is_file() else None
    return verify(entries, hashes, key)

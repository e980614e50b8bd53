"""Recording evidence: segments cut at keyframes every `segment_s`, each made durable before
its signed, chained manifest entry is appended (and fsynced). A crash can therefore leave at
most one `.part` segment and no entry for it; `recover()` on start quarantines such partial
segments, enters complete segments the manifest missed, and drops a torn last line."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import structlog

from agent.evidence.segment import PARTIAL, SegmentWriter, segment_name
from firmware_bridge.media import AudioFormat, EncodedAudio, EncodedFrame, VideoCodec
from protocol.evidence import GENESIS, GpsPoint, ManifestEntry, UnitKey, parse_manifest
from protocol.upload import MANIFEST
from runtime.files import append_durably, fsync_dir, sha256_file, write_atomic

log = structlog.get_logger("rtcc.agent.evidence")
MAX_GPS_PER_SEGMENT = 600


def load_or_create_key(path: Path) -> UnitKey:
    if path.exists():
        return UnitKey.from_bytes(path.read_bytes())
    key = UnitKey.generate()
    write_atomic(path, key.private_bytes(), 0o600)
    return key


def append_line(path: Path, line: str) -> None:
    append_durably(path, (line + "\n").encode())


@dataclass
class Recovery:
    quarantined: list[str] = field(default_factory=list)
    entered: list[str] = field(default_factory=list)
    torn_lines: int = 0


@dataclass
class _Chain:
    recording_id: str
    directory: Path
    trigger: str
    next_index: int = 0
    prev: str = GENESIS


class Recorder:
    def __init__(
        self,
        root: Path,
        unit_id: str,
        key: UnitKey,
        segment_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.recordings = root / "recordings"
        self.quarantine = root / "quarantine"
        self.recordings.mkdir(parents=True, exist_ok=True)
        self.quarantine.mkdir(parents=True, exist_ok=True)
        self.unit_id = unit_id
        self.key = key
        self.segment_s = segment_s
        self.clock = clock
        self._chain: _Chain | None = None
        self._segment: SegmentWriter | None = None
        self._gps: list[GpsPoint] = []
        self._format: tuple[VideoCodec, int, int] | None = None
        self._audio_format: AudioFormat | None = None
        self.segments_written = 0

    @property
    def recording_id(self) -> str | None:
        return self._chain.recording_id if self._chain else None

    # ---- recording --------------------------------------------------------------------

    def start(
        self,
        trigger: str,
        codec: VideoCodec,
        width: int,
        height: int,
        now: float,
        audio: AudioFormat | None = None,
    ) -> str:
        """Begin a recording (the caller then writes the pre-event frames, then live ones)."""
        if self._chain is not None:
            return self._chain.recording_id
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        recording_id = f"{self.unit_id}-{stamp}-{secrets.token_hex(3)}"
        directory = self.recordings / recording_id
        directory.mkdir()
        fsync_dir(self.recordings)
        self._chain = _Chain(recording_id, directory, trigger)
        self._format = (codec, width, height)
        self._audio_format = audio
        log.info("recording_started", recording_id=recording_id, trigger=trigger)
        return recording_id

    def write(self, frame: EncodedFrame) -> None:
        if self._chain is None or self._format is None:
            return
        segment = self._segment
        if segment is None:
            if not frame.keyframe:
                return  # a segment must start decodable
            segment = self._open_segment()
        elif (
            frame.keyframe
            and segment.first_at is not None
            and frame.captured_at - segment.first_at >= self.segment_s
        ):
            self._close_segment(final=False)
            segment = self._open_segment()
        segment.write(frame)

    def write_audio(self, packet: EncodedAudio) -> None:
        if self._segment is not None:
            self._segment.write_audio(packet)

    def add_gps(self, point: GpsPoint) -> None:
        if self._segment is not None and len(self._gps) < MAX_GPS_PER_SEGMENT:
            self._gps.append(point)

    def cut(self) -> None:
        """Finish the open segment now (the disk is filling up); the recording goes on with
        a new segment at the next keyframe written."""
        if self._segment is not None:
            self._close_segment(final=False)

    def stop(self) -> str | None:
        chain = self._chain
        if chain is None:
            return None
        if self._segment is not None:
            self._close_segment(final=True)
        self._chain = None
        log.info("recording_stopped", recording_id=chain.recording_id)
        return chain.recording_id

    def fail_segment(self) -> str | None:
        """Writing failed (disk full, I/O error): the open segment goes to quarantine, as a
        crash would leave it, and the recording continues with the next segment."""
        segment, self._segment = self._segment, None
        if segment is None:
            return None
        with contextlib.suppress(OSError, av.FFmpegError):
            segment.abandon()
        target = self.quarantine / segment.partial.name
        with contextlib.suppress(OSError):
            shutil.move(segment.partial, target)
        return target.name

    def abandon(self) -> None:
        """Shutdown without a clean stop: what was written stays for recovery."""
        if self._segment is not None:
            self._segment.abandon()
        self._segment, self._chain = None, None

    def _open_segment(self) -> SegmentWriter:
        assert self._chain is not None and self._format is not None
        codec, width, height = self._format
        name = segment_name(self._chain.recording_id, self._chain.next_index, codec)
        self._segment = SegmentWriter(
            self._chain.directory, name, codec, width, height, self._audio_format
        )
        self._gps = []
        return self._segment

    def _close_segment(self, final: bool) -> None:
        assert self._chain is not None and self._segment is not None
        segment, self._segment = self._segment, None
        size, digest = segment.finish()
        self._enter(
            self._chain,
            segment.path.name,
            size,
            digest,
            segment.first_at or 0.0,
            segment.last_at or 0.0,
            final,
        )

    def _enter(
        self,
        chain: _Chain,
        name: str,
        size: int,
        digest: str,
        start_ts: float,
        end_ts: float,
        final: bool,
    ) -> None:
        entry = self.key.sign(
            ManifestEntry(
                unit_id=self.unit_id,
                recording_id=chain.recording_id,
                index=chain.next_index,
                file=name,
                size=size,
                sha256=digest,
                start_ts=start_ts,
                end_ts=end_ts,
                trigger=chain.trigger,
                gps=self._gps,
                final=final,
                prev=chain.prev,
                key="",
            )
        )
        append_line(chain.directory / MANIFEST, entry.model_dump_json())
        chain.prev, chain.next_index = entry.digest(), chain.next_index + 1
        self._gps = []
        self.segments_written += 1

    # ---- after a crash ----------------------------------------------------------------

    def recover(self) -> Recovery:
        """Bring every recording directory back to a consistent state (see module doc)."""
        found = Recovery()
        for directory in sorted(p for p in self.recordings.iterdir() if p.is_dir()):
            manifest = directory / MANIFEST
            text = manifest.read_text(encoding="utf-8") if manifest.exists() else ""
            entries, problems = parse_manifest(text)
            if problems:
                # Only a torn last write can do this here: rewrite the readable lines.
                found.torn_lines += len(problems)
                tmp = manifest.with_suffix(".tmp")
                tmp.write_text("".join(e.model_dump_json() + "\n" for e in entries))
                with tmp.open("rb+") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, manifest)
            for partial in directory.glob("*" + PARTIAL):
                target = self.quarantine / partial.name
                shutil.move(partial, target)
                found.quarantined.append(target.name)
            entered = {e.file for e in entries}
            chain = _Chain(
                directory.name,
                directory,
                entries[0].trigger if entries else "unknown",
                next_index=entries[-1].index + 1 if entries else 0,
                prev=entries[-1].digest() if entries else GENESIS,
            )
            for segment in sorted(p for p in directory.iterdir() if p.suffix in (".mp4", ".webm")):
                if segment.name in entered:
                    continue
                self._gps = []
                self._enter(
                    chain, segment.name, segment.stat().st_size, sha256_file(segment), 0, 0, False
                )
                found.entered.append(segment.name)
            if not any(directory.iterdir()):
                directory.rmdir()  # killed before its first segment: the partial is quarantined
            else:
                fsync_dir(directory)
        fsync_dir(self.recordings)
        fsync_dir(self.quarantine)
        if found.quarantined or found.entered or found.torn_lines:
            log.warning(
                "evidence_recovered",
                quarantined=found.quarantined,
                entered=found.entered,
                torn_lines=found.torn_lines,
            )
        return found

"""The unit's evidence, wired: the always-on camera feeds the pre-event buffer and, while
recording, the recorder; the uploader offloads; disk use is watched. Imported only when
evidence is enabled (it loads the media stack)."""

from __future__ import annotations

import asyncio
import base64
import fractions
import heapq
import itertools
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import av
import structlog
from pydantic import JsonValue

from agent.capture import Capture
from agent.config import AgentSettings
from agent.evidence.prebuffer import PreEventBuffer
from agent.evidence.recorder import Recorder, load_or_create_key
from agent.evidence.status import evidence_status
from agent.evidence.uploader import Uploader
from agent.streaming import make_source
from firmware_bridge.media import EncodedAudio, EncodedFrame
from protocol.commands import EvidenceStatusResult, SnapshotResult
from protocol.events import EventType
from protocol.evidence import GpsPoint

log = structlog.get_logger("rtcc.agent.evidence")


def captured_at(item: EncodedFrame | EncodedAudio) -> float:
    return item.captured_at


STORAGE_CHECK_S = 1.0
# Free space is one statvfs; our own use walks every file, so it is counted less often.
OWN_USE_EVERY = 10
SNAPSHOT_WIDTH = 320

EventSink = Callable[[EventType, dict[str, JsonValue]], None]


def disk_use(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


class EvidenceManager:
    def __init__(
        self, settings: AgentSettings, emit: EventSink, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings.evidence
        self.root = settings.data_dir / "evidence"
        self.root.mkdir(parents=True, exist_ok=True)
        self._emit = emit
        self._clock = clock
        key = load_or_create_key(settings.data_dir / "identity" / "unit.key")
        self.recorder = Recorder(self.root, settings.unit_id, key, self.settings.segment_s, clock)
        self.prebuffer = PreEventBuffer(
            self.settings.pre_event_s, self.settings.pre_event_max_bytes
        )
        self.capture = Capture(make_source(settings), self._on_frame, self._on_audio)
        self.uploader = (
            Uploader(
                self.recorder.recordings,
                settings.center_url,
                lambda: self.recorder.recording_id,
                self.settings.upload_chunk_bytes,
                verify=settings.center_tls(),
            )
            if settings.center_url
            else None
        )
        self.storage_full = False
        self._own_use = 0
        self.write_errors = 0
        self._stop_at: float | None = None
        self._latest_keyframe: EncodedFrame | None = None
        self._segments_seen = 0
        # Before anything can record: finish what a crash left.
        found = self.recorder.recover()
        if found.quarantined or found.entered or found.torn_lines:
            emit(
                EventType.EVIDENCE_RECOVERED,
                {
                    "quarantined": list(found.quarantined),
                    "entered": list(found.entered),
                    "torn_lines": found.torn_lines,
                },
            )

    @property
    def recording(self) -> bool:
        return self.recorder.recording_id is not None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.capture.run(), name="camera")
            tasks.create_task(self._watch(), name="evidence-watch")
            if self.uploader is not None:
                tasks.create_task(self.uploader.run(), name="evidence-upload")

    def _on_frame(self, frame: EncodedFrame) -> None:
        self.prebuffer.push(frame)
        if frame.keyframe:
            self._latest_keyframe = frame
        if self.recording and not self.storage_full:
            self._write(frame)

    def _on_audio(self, packet: EncodedAudio) -> None:
        self.prebuffer.push_audio(packet)
        if self.recording and not self.storage_full:
            self._write(packet)

    def _write(self, item: EncodedFrame | EncodedAudio) -> None:
        try:
            if isinstance(item, EncodedFrame):
                self.recorder.write(item)
            else:
                self.recorder.write_audio(item)
        except (OSError, av.FFmpegError) as exc:
            self.write_errors += 1
            quarantined = self.recorder.fail_segment()
            self.storage_full = True  # pause; the disk watch resumes when writes can succeed
            log.error("evidence_write_failed", error=str(exc), quarantined=quarantined)
            self._emit(
                EventType.STORAGE_FULL, {"error": str(exc)[:200], "quarantined": quarantined}
            )
            return
        self._segment_done()

    def _segment_done(self) -> None:
        if self.recorder.segments_written != self._segments_seen:
            self._segments_seen = self.recorder.segments_written
            if self.uploader is not None:
                self.uploader.notify()

    # ---- recording --------------------------------------------------------------------

    def start_recording(self, trigger: str) -> str:
        now = self._clock()
        self._stop_at = now + self.settings.auto_stop_s
        if self.recording:
            return str(self.recorder.recording_id)
        capture = self.capture
        recording_id = self.recorder.start(
            trigger, capture.codec, capture.width, capture.height, now, capture.audio
        )
        buffered = self.prebuffer.frames()
        video: list[EncodedFrame | EncodedAudio] = list(buffered)
        audio: list[EncodedFrame | EncodedAudio] = list(self.prebuffer.audio())
        # Both lists are in capture order: merge them so the muxer gets them interleaved.
        for item in heapq.merge(video, audio, key=captured_at):
            if self.storage_full:
                break
            self._write(item)
        pre_s = buffered[-1].captured_at - buffered[0].captured_at if buffered else 0.0
        self._emit(
            EventType.RECORDING_STARTED,
            {"recording_id": recording_id, "trigger": trigger, "pre_event_s": round(pre_s, 2)},
        )
        return recording_id

    def stop_recording(self) -> str | None:
        recording_id = self.recorder.stop()
        self._stop_at = None
        if recording_id is not None:
            self._segment_done()
            self._emit(EventType.RECORDING_STOPPED, {"recording_id": recording_id})
        return recording_id

    def add_gps(self, ts: float, lat: float, lon: float) -> None:
        if self.recording:
            self.recorder.add_gps(GpsPoint(ts=ts, lat=lat, lon=lon))

    def snapshot(self) -> SnapshotResult:
        """A JPEG of the latest keyframe, small enough for a command result."""
        frame = self._latest_keyframe
        if frame is None:
            raise LookupError("no keyframe seen yet")
        decoder: Any = av.CodecContext.create(frame.codec, "r")
        pictures = decoder.decode(av.Packet(frame.data))
        if not pictures:
            raise LookupError("the keyframe did not decode")
        picture = cast(av.VideoFrame, pictures[0])
        height = max(2, round(picture.height * SNAPSHOT_WIDTH / picture.width / 2) * 2)
        encoder: Any = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height, encoder.pix_fmt = SNAPSHOT_WIDTH, height, "yuvj420p"
        encoder.time_base = fractions.Fraction(1, 1)
        encoder.options = {"qscale": "4"}
        small = picture.reformat(SNAPSHOT_WIDTH, height, "yuvj420p")
        jpeg = b"".join(bytes(p) for p in [*encoder.encode(small), *encoder.encode(None)])
        return SnapshotResult(
            captured_at=frame.captured_at,
            width=SNAPSHOT_WIDTH,
            height=height,
            jpeg_b64=base64.b64encode(jpeg).decode(),
        )

    # ---- disk -------------------------------------------------------------------------

    def _disk_full(self, count_own_use: bool) -> bool:
        if count_own_use:
            self._own_use = disk_use(self.root)
        free = shutil.disk_usage(self.root).free
        return free < self.settings.min_free_bytes or self._own_use > self.settings.max_bytes

    async def _watch(self) -> None:
        for tick in itertools.count():
            await asyncio.sleep(STORAGE_CHECK_S)
            full = await asyncio.to_thread(self._disk_full, tick % OWN_USE_EVERY == 0)
            if full and not self.storage_full:
                self.storage_full = True
                try:
                    self.recorder.cut()
                except (OSError, av.FFmpegError):
                    self.recorder.fail_segment()  # the disk could not take its last bytes
                self._segment_done()
                log.warning("storage_full", root=str(self.root))
                self._emit(EventType.STORAGE_FULL, {"recording": self.recording})
            elif not full and self.storage_full:
                self.storage_full = False
                log.info("storage_available", root=str(self.root))
                self._emit(EventType.STORAGE_AVAILABLE, {"recording": self.recording})
            if self._stop_at is not None and self._clock() >= self._stop_at:
                self.stop_recording()

    def status(self) -> EvidenceStatusResult:
        """For the `evidence.status` command: what the recorder is doing and what waits."""
        waiting = evidence_status(self.root)
        return EvidenceStatusResult(
            recording=self.recorder.recording_id,
            storage_full=self.storage_full,
            pre_event_s=round(self.prebuffer.span_s(), 2),
            segments_written=self.recorder.segments_written,
            segments_to_upload=waiting["segments_to_upload"],
            bytes_to_upload=waiting["bytes_to_upload"],
            quarantined=waiting["quarantined"],
            uploaded=self.uploader.confirmed if self.uploader else 0,
            write_errors=self.write_errors,
            live_frames_dropped=self.capture.dropped_for_subscribers,
        )

"""Offload: every manifest entry and segment to the center, resumable. For each segment the
center says how many bytes it holds (HEAD), the rest goes up in chunks (PATCH at that
offset); a segment is deleted here only after the center confirmed its SHA-256. A recording
directory goes once it is closed and every segment is confirmed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import structlog

from protocol.evidence import ManifestEntry, parse_manifest
from protocol.upload import ENTRIES_ROUTE, MANIFEST, UPLOAD_OFFSET, SegmentUpload, segment_path
from runtime.backoff import Backoff, Retry
from runtime.files import fsync_dir

log = structlog.get_logger("rtcc.agent.upload")


class UploadRefused(Exception):
    """The center refused something it will keep refusing (a 4xx other than a conflict)."""


class Uploader:
    def __init__(
        self,
        recordings: Path,
        center_url: str,
        active_recording: Callable[[], str | None],
        chunk_bytes: int = 1 << 20,
        idle_poll_s: float = 2.0,
        backoff: Backoff = Backoff(initial_s=0.5, max_s=30.0),
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.verify = verify
        self.recordings = recordings
        self.center_url = center_url.rstrip("/")
        self.active_recording = active_recording
        self.chunk_bytes = chunk_bytes
        self.idle_poll_s = idle_poll_s
        self.backoff = backoff
        self.transport = transport
        self.confirmed = 0
        self.bytes_sent = 0
        self.refused: set[str] = set()
        self._posted: set[tuple[str, int]] = set()
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """A segment was finished: look now."""
        self._wake.set()

    async def run(self) -> None:
        retry = Retry(self.backoff)
        async with httpx.AsyncClient(
            timeout=30.0, transport=self.transport, verify=self.verify
        ) as http:
            while True:
                self._wake.clear()
                try:
                    await self.pass_once(http)
                    retry.reset()
                except (httpx.HTTPError, OSError) as exc:
                    delay = retry.delay()
                    retry.failed()
                    log.warning("upload_failed", error=str(exc)[:200], retry_in_s=round(delay, 2))
                    await asyncio.sleep(delay)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll_s)

    async def pass_once(self, http: httpx.AsyncClient) -> None:
        for directory in sorted(p for p in self.recordings.iterdir() if p.is_dir()):
            if directory.name not in self.refused:
                await self._recording(http, directory)

    async def _recording(self, http: httpx.AsyncClient, directory: Path) -> None:
        manifest = directory / MANIFEST
        if not manifest.exists():
            return
        entries, _ = parse_manifest(manifest.read_text(encoding="utf-8"))
        for entry in entries:
            try:
                await self._entry(http, directory, entry)
            except UploadRefused as exc:
                self.refused.add(directory.name)
                log.error("upload_refused", recording_id=directory.name, reason=str(exc))
                return
        closed = bool(entries and entries[-1].final) or directory.name != self.active_recording()
        remaining = [e.file for e in entries if (directory / e.file).exists()]
        if closed and not remaining:
            shutil.rmtree(directory)
            fsync_dir(self.recordings)
            log.info("recording_offloaded", recording_id=directory.name)

    async def _entry(self, http: httpx.AsyncClient, directory: Path, entry: ManifestEntry) -> None:
        key = (entry.recording_id, entry.index)
        path = directory / entry.file
        if not path.exists():
            return  # confirmed earlier
        if key not in self._posted:
            answer = await http.post(
                self.center_url + ENTRIES_ROUTE,
                content=entry.model_dump_json(),
                headers={"Content-Type": "application/json"},
            )
            _check(answer)
            self._posted.add(key)
        url = self.center_url + segment_path(entry.recording_id, entry.index)
        state = await http.head(url)
        _check(state)
        offset = int(state.headers[UPLOAD_OFFSET])
        confirmed = offset >= entry.size
        with path.open("rb") as f:
            while not confirmed:
                f.seek(offset)
                chunk = f.read(self.chunk_bytes)
                answer = await http.patch(url, content=chunk, headers={UPLOAD_OFFSET: str(offset)})
                if answer.status_code == 409:  # the center holds another offset: ask again
                    offset = int((await http.head(url)).headers[UPLOAD_OFFSET])
                    continue
                _check(answer)
                self.bytes_sent += len(chunk)
                progress = SegmentUpload.model_validate_json(answer.content)
                offset, confirmed = progress.offset, progress.confirmed
        os.unlink(path)
        fsync_dir(directory)
        self.confirmed += 1
        log.info("segment_confirmed", recording_id=entry.recording_id, index=entry.index)


def _check(answer: httpx.Response) -> None:
    if answer.status_code >= 500:
        answer.raise_for_status()
    if answer.status_code >= 400:
        raise UploadRefused(f"{answer.status_code} {answer.text[:200]}")

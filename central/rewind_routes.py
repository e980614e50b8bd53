"""HTTP for rewind: the last minutes of a unit's video beside its live tile. The recent past
comes from the relay, which keeps the last minutes of every live stream as the camera sent
them; older video from the evidence store. A clip is a file a browser plays as it comes
(fragmented MP4, or WebM for VP8) and seeks in by HTTP range requests: it is muxed once
per window asked for, kept while it is read, and each person's view of it is audited once,
not once per range."""

# No `from __future__ import annotations`: the routes' signatures hold the gate's
# dependencies, which FastAPI must evaluate where the routes are defined.

import asyncio
from collections.abc import Callable, Hashable
from enum import Enum
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from central.access.policy import Action
from central.access.tally import AuditTally
from central.api import UnitIdPath
from central.config import RelaySettings
from central.console_hub import ConsoleHub
from central.errors import Invalid, NotFound, Unavailable
from central.evidence.api import viewer_of
from central.evidence.store import EvidenceStore, SegmentSpan
from central.gate import Caller, Gate
from central.relay_front import (
    CLIP_END,
    CLIP_FRAMES,
    CLIP_START,
    Clip,
    ClipCache,
    RangeNotSatisfiable,
    RelayFront,
    byte_range,
)
from protocol.topics import check_id
from protocol.upload import segment_path

log = structlog.get_logger("rtcc.rewind")
StreamIdPath = Annotated[str, AfterValidator(check_id)]
DEFAULT_SECONDS = 60.0
MAX_SECONDS = 3600.0
MAX_SOURCES_S = 86_400.0
MAX_SEGMENTS = 1000
# A clip unread this long is muxed again when asked for (the window asked for may have moved).
CLIP_KEEP_S = 60.0
SOURCES_AUDIT_S = 60.0
MEDIA_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RelaySource(ApiModel):
    stream_id: str
    codec: str
    start: float = Field(description="Oldest moment the relay holds (epoch seconds).")
    end: float = Field(description="Newest moment it holds: the live edge while live.")
    url: str = Field(description="The clip of [start, end], to play and seek in.")


class SegmentSource(ApiModel):
    recording_id: str
    index: int
    start: float = Field(description="Capture time of its first frame (epoch seconds).")
    end: float
    size: int
    media_type: str
    url: str = Field(description="Plays it (range requests); audited once a minute.")


class RewindSources(ApiModel):
    unit_id: str
    since: float = Field(description="The start of the span asked for (epoch seconds).")
    until: float = Field(description="Now, at the center.")
    relay: RelaySource | None = Field(description="None when the unit is not live.")
    segments: list[SegmentSource] = Field(
        description="Stored evidence for the part of the span before the relay's, newest first."
    )


class RewindClips:
    """Clips of the relay's recent frames, muxed once per window asked for and kept while
    players read them; one mux at a time per window, however many ask."""

    def __init__(self, relay: RelayFront, max_bytes: int, clock: Callable[[], float]) -> None:
        self.relay = relay
        self.cache = ClipCache(max_bytes, CLIP_KEEP_S)
        self.clock = clock
        self._under_way: dict[Hashable, asyncio.Task[Clip]] = {}

    async def clip(self, key: Hashable, stream_id: str, since: float, until: float) -> Clip:
        found = self.cache.get(key, self.clock())
        if found is not None:
            return found
        task = self._under_way.get(key)
        if task is None:
            task = asyncio.create_task(self._mux(key, stream_id, since, until), name="rewind")
            self._under_way[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # A caller that gives up does not cancel the clip for the others waiting on it.
        return await asyncio.shield(task)

    async def _mux(self, key: Hashable, stream_id: str, since: float, until: float) -> Clip:
        clip = await self.relay.rewind(stream_id, since, until)
        self.cache.put(key, clip, self.clock())
        return clip

    def _finished(self, key: Hashable, task: asyncio.Task[Clip]) -> None:
        if self._under_way.get(key) is task:
            del self._under_way[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every caller may have given up


def window_of(
    seconds: float | None, since: float | None, until: float | None, now: float
) -> tuple[Hashable, float, float]:
    """The clip's key and its [since, until]: the last `seconds`, or from `since` to
    `until` (default: now). A key without `until` stands for the same clip while it is kept."""
    if seconds is not None and (since is not None or until is not None):
        raise Invalid("ask for the last seconds, or since/until, not both")
    if since is None:
        if until is not None:
            raise Invalid("until needs since")
        span = seconds if seconds is not None else DEFAULT_SECONDS
        return ("last", span), now - span, now
    end = until if until is not None else now
    if not 0 < end - since <= MAX_SECONDS:
        raise Invalid(f"since must be before until, by at most {MAX_SECONDS:.0f} s")
    return ("span", since, until), since, end


def clip_response(clip: Clip, range_header: str | None) -> Response:
    size = len(clip.data)
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-store",
        CLIP_START: repr(clip.start),
        CLIP_END: repr(clip.end),
        CLIP_FRAMES: str(clip.frames),
    }
    try:
        wanted = byte_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None:
        return Response(clip.data, media_type=clip.media_type, headers=headers)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    body = clip.data[first : last + 1]
    return Response(body, status_code=206, media_type=clip.media_type, headers=headers)


def add_rewind_routes(
    app: FastAPI,
    relay: RelayFront,
    hub: ConsoleHub,
    evidence: EvidenceStore,
    gate: Gate,
    settings: RelaySettings,
) -> None:
    tags: list[str | Enum] = ["rewind"]
    clock = hub.fleet.clock
    clips = RewindClips(relay, settings.rewind_cache_bytes, clock)
    searches = AuditTally(SOURCES_AUDIT_S)
    playback = Depends(gate.require(Action.EVIDENCE_PLAYBACK))

    @app.get(
        "/api/v1/streams/{stream_id}/rewind",
        tags=tags,
        response_class=Response,
        responses={
            200: {"content": {"video/mp4": {}, "video/webm": {}}},
            206: {"description": "The part a Range header asked for."},
            404: {},
            416: {},
            503: {},
        },
    )
    async def rewind(
        stream_id: StreamIdPath,
        request: Request,
        caller: Annotated[Caller, playback],
        seconds: Annotated[float | None, Query(gt=0, le=MAX_SECONDS)] = None,
        since: Annotated[float | None, Query(description="Epoch seconds.")] = None,
        until: Annotated[float | None, Query(description="Epoch seconds; default now.")] = None,
    ) -> Response:
        """A live stream's recent past as the relay holds it (at most `relay.rewind_s`),
        from the keyframe at or before the start asked for: fragmented MP4 (H.264) or WebM
        (VP8), answering Range requests. X-Rewind-Start/-End date its first and last frame.
        Each person's view of a clip is audited once (`streams.rewind`)."""
        stream = hub.streams_live.get(stream_id)
        if stream is None:
            raise NotFound("no such live stream")
        key, start, end = window_of(seconds, since, until, clock())
        clip_key, viewer = (stream_id, key), viewer_of(caller)
        clip = await clips.clip(clip_key, stream_id, start, end)
        if clips.cache.first_view(clip_key, viewer):
            detail: dict[str, JsonValue] = {
                "unit_id": stream.unit_id,
                "start": clip.start,
                "end": clip.end,
                "bytes": len(clip.data),
            }
            try:
                await asyncio.to_thread(
                    gate.audit, caller, "streams.rewind", "ok", stream_id, detail
                )
            except Exception:
                clips.cache.forget_view(clip_key, viewer)
                raise
        return clip_response(clip, request.headers.get("range"))

    @app.get("/api/v1/units/{unit_id}/rewind-sources", tags=tags)
    async def rewind_sources(
        unit_id: UnitIdPath,
        caller: Annotated[Caller, playback],
        seconds: Annotated[float, Query(gt=0, le=MAX_SOURCES_S)] = 600.0,
    ) -> RewindSources:
        """What covers the unit's last `seconds`: the relay's recent past of its live stream
        and, before it, its stored evidence segments, newest first."""
        now = clock()
        since = now - seconds
        source = await relay_source(relay, hub, unit_id, since)
        before = source.start if source is not None else now
        found = await asyncio.to_thread(
            evidence.stored_segments, unit_id, since, before, MAX_SEGMENTS
        )
        segments = [segment_source(segment) for segment in found]
        if (folded := searches.due((viewer_of(caller), unit_id), now)) is not None:
            detail: dict[str, JsonValue] = {"seconds": seconds, "found": len(segments)}
            if folded:
                detail["folded"] = folded
            await asyncio.to_thread(gate.audit, caller, "evidence.search", "ok", unit_id, detail)
        return RewindSources(
            unit_id=unit_id, since=since, until=now, relay=source, segments=segments
        )


async def relay_source(
    relay: RelayFront, hub: ConsoleHub, unit_id: str, since: float
) -> RelaySource | None:
    """What the relay holds of the unit's live stream from `since` on."""
    stream = next((s for s in hub.streams_live.values() if s.unit_id == unit_id), None)
    if stream is None:
        return None
    try:
        span = await relay.recent_span(stream.stream_id)
    except Unavailable as exc:  # evidence still answers for the span
        log.warning("rewind_relay_unavailable", unit_id=unit_id, error=str(exc))
        return None
    start = max(span.start, since) if span is not None else since
    if span is None or span.end <= start:  # nothing, or a single moment: nothing to play
        return None
    url = f"/api/v1/streams/{stream.stream_id}/rewind?since={start!r}&until={span.end!r}"
    return RelaySource(
        stream_id=stream.stream_id, codec=span.codec, start=start, end=span.end, url=url
    )


def segment_source(segment: SegmentSpan) -> SegmentSource:
    suffix = segment.file[segment.file.rfind(".") :]
    return SegmentSource(
        recording_id=segment.recording_id,
        index=segment.index,
        start=segment.start_ts,
        end=segment.end_ts,
        size=segment.size,
        media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
        url=segment_path(segment.recording_id, segment.index),
    )

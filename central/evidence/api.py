"""HTTP for evidence: units post signed manifest entries and upload segments in resumable
chunks (HEAD tells the stored offset, PATCH appends at it); dispatchers search, download and
verify, each read allowed by the gate's policy and audited. Uploads are the units': they
need no person's credentials, since an entry must carry the unit's pinned signature and a
segment must hash to its entry, so nothing can be slipped in.

A segment plays by HTTP range requests (a player streams it and seeks in it, it does not
download it whole): one view is many requests, so a person's requests for one segment are
audited once a minute, with how many were folded in since (`AuditTally`)."""

# No `from __future__ import annotations`: the routes' signatures hold the gate's
# dependencies, which FastAPI must evaluate where the routes are defined.

import time
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, FastAPI, Header, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, JsonValue

from central.access.policy import Action
from central.access.tally import AuditTally
from central.errors import Forbidden, Refused, TooLarge
from central.evidence.store import EvidenceStore, SegmentState, UnitShutOut
from central.gate import Caller, Gate
from central.refusals import FoldedRefusals
from protocol.evidence import MAX_SEGMENT_INDEX, SAFE_NAME_PATTERN, ManifestEntry
from protocol.upload import (
    ENTRIES_ROUTE,
    EVIDENCE_ROUTE,
    SEGMENT_ROUTE,
    UPLOAD_OFFSET,
    UPLOAD_STATUS_ROUTE,
    SegmentUpload,
)

MAX_CHUNK = 8 * 2**20
# The manifest's own bounds (protocol.evidence): anything else names no stored segment.
RecordingId = Annotated[str, Path(pattern=SAFE_NAME_PATTERN)]
SegmentIndex = Annotated[int, Path(ge=0, le=MAX_SEGMENT_INDEX)]
# One view of a segment is many range requests: audited at most this often per person.
VIEW_AUDIT_S = 60.0
P = ParamSpec("P")
T = TypeVar("T")


class ProblemView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int
    file: str | None
    reason: str


class VerifyView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recording_id: str
    ok: bool
    problems: list[ProblemView]


def _state(state: SegmentState) -> JSONResponse:
    body = SegmentUpload(offset=state.offset, size=state.size, confirmed=state.confirmed)
    return JSONResponse(body.model_dump(), headers={UPLOAD_OFFSET: str(state.offset)})


async def call(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a store call off the event loop (its refusals are answered by central.http_errors)."""
    return await run_in_threadpool(func, *args, **kwargs)


def viewer_of(caller: Caller) -> tuple[str, str]:
    """Who watches, as far as folding views goes: the person and the session or key used."""
    return caller.name, caller.session_hash or caller.key_id or caller.source


def add_evidence_routes(
    app: FastAPI, store: EvidenceStore, gate: Gate, clock: Callable[[], float] = time.time
) -> None:
    add_upload_routes(app, store, gate, clock)
    add_search_routes(app, store, gate, clock)


def add_upload_routes(
    app: FastAPI, store: EvidenceStore, gate: Gate, clock: Callable[[], float]
) -> None:
    """What units call (protocol.upload). An entry is refused unless signed with the key
    the unit enrolled with (bound to its certificate), and nothing is taken from a unit
    whose certificate is revoked: both refusals are audited, folded (nobody is signed in
    to upload: the record names the unit the upload claimed to be from as `unverified`)."""
    refusals = FoldedRefusals(gate, "evidence.upload", clock)

    def audit_refusal(request: Request, unit_id: str, refused: Exception, at: str) -> None:
        """`at`: the recording, or the recording and segment, the upload was for."""
        refusals.record(request, ("unverified", None), unit_id, refused, {"at": at})

    @app.post(ENTRIES_ROUTE)
    async def post_entry(entry: ManifestEntry, request: Request) -> dict[str, bool]:
        try:
            return {"added": await call(store.add_entry, entry)}
        except (Refused, UnitShutOut) as refused:
            at = f"{entry.recording_id}/{entry.index}"
            await call(audit_refusal, request, entry.unit_id, refused, at)
            raise

    @app.head(SEGMENT_ROUTE)
    async def segment_offset(recording_id: RecordingId, index: SegmentIndex) -> Response:
        return _state(await call(store.segment, recording_id, index))

    @app.get(UPLOAD_STATUS_ROUTE)
    async def segment_status(recording_id: RecordingId, index: SegmentIndex) -> Response:
        return _state(await call(store.segment, recording_id, index))

    @app.patch(SEGMENT_ROUTE)
    async def upload_chunk(
        recording_id: RecordingId,
        index: SegmentIndex,
        request: Request,
        upload_offset: Annotated[int, Header(alias=UPLOAD_OFFSET, ge=0)],
    ) -> Response:
        chunk = bytearray()
        async for part in request.stream():
            chunk += part
            if len(chunk) > MAX_CHUNK:
                raise TooLarge(f"chunks are at most {MAX_CHUNK} bytes")
        try:
            stored = await call(store.append, recording_id, index, upload_offset, bytes(chunk))
        except UnitShutOut as refused:
            await call(audit_refusal, request, refused.unit_id, refused, f"{recording_id}/{index}")
            raise
        return _state(stored)


def add_search_routes(
    app: FastAPI, store: EvidenceStore, gate: Gate, clock: Callable[[], float]
) -> None:
    """What dispatchers and supervisors call."""

    def caller_for(action: Action) -> Any:
        return Depends(gate.require(action))

    views = AuditTally(VIEW_AUDIT_S)

    @app.get(EVIDENCE_ROUTE)
    async def list_evidence(
        caller: Annotated[Caller, caller_for(Action.EVIDENCE_SEARCH)],
        unit_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, object]]:
        found = await call(store.recordings, unit_id, since, until, max(1, min(limit, 1000)))
        query: dict[str, JsonValue] = {"unit_id": unit_id, "since": since, "until": until}
        await call(
            gate.audit, caller, "evidence.search", "ok", unit_id, {**query, "found": len(found)}
        )
        return found

    @app.get("/api/v1/evidence/{recording_id}", dependencies=[caller_for(Action.EVIDENCE_SEARCH)])
    async def describe(recording_id: RecordingId) -> dict[str, object]:
        return await call(store.describe, recording_id)

    @app.get(SEGMENT_ROUTE)
    async def segment(
        recording_id: RecordingId,
        index: SegmentIndex,
        caller: Annotated[Caller, caller_for(Action.EVIDENCE_PLAYBACK)],
        download: bool = False,
    ) -> FileResponse:
        """Plays a segment; `download=true` (supervisors) saves it as a file."""
        action = Action.EVIDENCE_DOWNLOAD if download else Action.EVIDENCE_PLAYBACK
        if not caller.principal.may(action):
            raise Forbidden(f"{caller.role} {caller.name} may not {action.value}")
        path = await call(store.segment_path, recording_id, index)
        key = (viewer_of(caller), action, recording_id, index)
        folded = views.due(key, clock())
        if folded is not None:
            detail: dict[str, JsonValue] = {"index": index}
            if folded:
                detail["folded"] = folded  # requests since the last record, besides this one
            try:
                await call(gate.audit, caller, action.value, "ok", recording_id, detail)
            except Exception:
                views.unrecorded(key, folded)
                raise
        disposition = "attachment" if download else "inline"
        return FileResponse(path, filename=path.name, content_disposition_type=disposition)

    @app.get("/api/v1/evidence/{recording_id}/verify")
    async def verify(
        recording_id: RecordingId, caller: Annotated[Caller, caller_for(Action.EVIDENCE_VERIFY)]
    ) -> VerifyView:
        problems = await call(store.verify, recording_id)
        outcome = "ok" if not problems else "problems"
        await call(
            gate.audit,
            caller,
            "evidence.verify",
            outcome,
            recording_id,
            {"problems": len(problems)},
        )
        return VerifyView(
            recording_id=recording_id,
            ok=not problems,
            problems=[ProblemView(index=p.index, file=p.file, reason=p.reason) for p in problems],
        )

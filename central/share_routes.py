"""HTTP for stills and shares: a dispatcher captures a still from a live stream and shares a
stream, a still and a text with the patrols near a scene; a patrol login lists what is
shared with its unit, says it received it and opens the stream."""

# No `from __future__ import annotations`: the routes' signatures hold the gate's
# dependencies, which FastAPI must evaluate where the routes are defined.

import asyncio
import hashlib
import secrets
from enum import Enum
from typing import Annotated

from fastapi import Depends, FastAPI, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from central.access.policy import Action
from central.console_hub import ConsoleHub
from central.db.shares import StillRecord, Stills
from central.errors import Forbidden, NotFound
from central.gate import Caller, Gate
from central.relay_front import RelayFront
from central.shares import PatrolShare, ShareRequest, ShareService, ShareView, still_url
from central.unit_board import UnitSummary
from protocol.topics import check_id

StreamIdPath = Annotated[str, AfterValidator(check_id)]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StillRequest(ApiModel):
    alert_id: str | None = Field(default=None, max_length=64, description="Kept with this alert.")


class StillView(ApiModel):
    still_id: str
    stream_id: str
    unit_id: str
    taken_at: float
    taken_by: str
    alert_id: str | None
    url: str


class PatrolMe(ApiModel):
    user: str
    unit_id: str
    unit: UnitSummary | None


class SharedStream(ApiModel):
    stream_id: str
    whep_url: str
    token: str
    token_id: str
    expires_at: float


def add_still_routes(app: FastAPI, relay: RelayFront, hub: ConsoleHub, gate: Gate) -> None:
    tags: list[str | Enum] = ["stills"]

    @app.post("/api/v1/streams/{stream_id}/stills", tags=tags, responses={404: {}, 503: {}})
    async def capture_still(
        stream_id: StreamIdPath,
        body: StillRequest,
        caller: Annotated[Caller, Depends(gate.require(Action.LIVE_WATCH))],
    ) -> StillView:
        """A still of the live stream, decoded at the center from its latest keyframe and
        kept (with the alert, if given); audited."""
        stream = hub.streams_live.get(stream_id)
        if stream is None:
            raise NotFound("no such live stream")
        jpeg = await relay.still_jpeg(stream_id)
        record = StillRecord(
            secrets.token_urlsafe(12),
            stream_id,
            stream.unit_id,
            hub.fleet.clock(),
            caller.name,
            body.alert_id,
            hashlib.sha256(jpeg).hexdigest(),
        )
        await asyncio.to_thread(keep_still, gate, caller, record, jpeg)
        return StillView(
            still_id=record.id,
            stream_id=stream_id,
            unit_id=record.unit_id,
            taken_at=record.taken_at,
            taken_by=record.taken_by,
            alert_id=record.alert_id,
            url=still_url(record.id) or "",
        )

    @app.get(
        "/api/v1/stills/{still_id}",
        tags=tags,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {}},
    )
    def still(
        still_id: str,
        caller: Annotated[Caller, Depends(gate.require(Action.LIVE_WATCH, Action.SHARES_RECEIVE))],
    ) -> Response:
        """The still's JPEG: for the console, or for a patrol it is shared with."""
        with gate.database.read() as tx:
            stills = Stills(tx)
            _, jpeg = stills.jpeg(still_id[:32])
            unit_id = caller.principal.unit_id
            if not caller.principal.may(Action.LIVE_WATCH) and (
                unit_id is None or not stills.shared_with(still_id, unit_id, hub.fleet.clock())
            ):
                raise NotFound(f"no still {still_id[:32]}")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private"})


def keep_still(gate: Gate, caller: Caller, record: StillRecord, jpeg: bytes) -> None:
    with gate.database.write() as tx:
        Stills(tx).add(record, jpeg)
    detail = {"still_id": record.id, "unit_id": record.unit_id, "alert_id": record.alert_id}
    gate.audit(caller, "streams.still", "ok", record.stream_id, detail)


def add_share_routes(app: FastAPI, shares: ShareService, gate: Gate) -> None:
    tags: list[str | Enum] = ["shares"]

    @app.post("/api/v1/shares", tags=tags, responses={404: {}, 422: {}})
    async def create_share(
        body: ShareRequest,
        caller: Annotated[Caller, Depends(gate.require(Action.SHARES_CREATE))],
    ) -> ShareView:
        """Shares a live stream, a still and/or a text with the patrols within the radius
        of the scene (online, with a recent fix and a patrol login) and the chosen units;
        audited. Pages hear of it at once."""
        return await shares.create(caller.name, body, caller)

    @app.get(
        "/api/v1/shares", tags=tags, dependencies=[Depends(gate.require(Action.SHARES_CREATE))]
    )
    def list_shares() -> list[ShareView]:
        """Shares neither revoked nor expired, newest first."""
        return shares.active()

    @app.delete("/api/v1/shares/{share_id}", tags=tags, responses={404: {}})
    async def revoke_share(
        share_id: str,
        caller: Annotated[Caller, Depends(gate.require(Action.SHARES_REVOKE))],
    ) -> ShareView:
        """Ends the share now: its recipients' video stops within seconds (audited)."""
        record = await asyncio.to_thread(shares.revoke, caller, share_id[:32])
        shares.announce(record)
        return ShareView.of(record)

    add_patrol_routes(app, shares, gate)


def add_patrol_routes(app: FastAPI, shares: ShareService, gate: Gate) -> None:
    tags: list[str | Enum] = ["patrol"]
    receiving = Depends(gate.require(Action.SHARES_RECEIVE))

    def unit_of(caller: Caller) -> str:
        if caller.principal.unit_id is None:
            raise Forbidden("only a patrol login receives shares")
        return caller.principal.unit_id

    @app.get("/api/v1/patrol/me", tags=tags)
    def patrol_me(caller: Annotated[Caller, receiving]) -> PatrolMe:
        unit_id = unit_of(caller)
        return PatrolMe(user=caller.name, unit_id=unit_id, unit=shares.hub.summary(unit_id))

    @app.get("/api/v1/patrol/shares", tags=tags)
    def patrol_shares(caller: Annotated[Caller, receiving]) -> list[PatrolShare]:
        """What is shared with this unit now, newest first."""
        return shares.for_unit(unit_of(caller))

    @app.post("/api/v1/patrol/shares/{share_id}/received", tags=tags, status_code=204)
    async def share_received(share_id: str, caller: Annotated[Caller, receiving]) -> Response:
        changed = await asyncio.to_thread(shares.mark, caller, share_id[:32], False)
        if changed is not None:
            shares.announce(changed)
        return Response(status_code=204)

    @app.post("/api/v1/patrol/shares/{share_id}/open", tags=tags, responses={404: {}})
    async def open_shared_stream(
        share_id: str,
        caller: Annotated[Caller, Depends(gate.require(Action.SHARES_OPEN))],
    ) -> SharedStream:
        """A viewer token for the shared stream, bound to the share: it stops when the
        share is revoked or ends (audited)."""
        opened = await asyncio.to_thread(shares.open_stream, caller, share_id[:32])
        issued, stream_id, whep_url = opened
        changed = await asyncio.to_thread(shares.mark, caller, share_id[:32], True)
        if changed is not None:
            shares.announce(changed)
        return SharedStream(
            stream_id=stream_id,
            whep_url=whep_url,
            token=issued.token,
            token_id=issued.token_id,
            expires_at=issued.expires_at,
        )

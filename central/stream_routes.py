"""HTTP for live streams: remote start (with its reason, audited) and stop of a unit's
stream, the list of streams, and viewer tokens: issued to the person asking, listed and
revoked by a supervisor."""

# No `from __future__ import annotations`: the routes' signatures hold the gate's
# dependencies, which FastAPI must evaluate where the routes are defined.

import asyncio
from enum import Enum
from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import AfterValidator, BaseModel, ConfigDict, JsonValue

from central.access.policy import Action
from central.api import UnitIdPath
from central.db.viewer_grants import ViewerGrant
from central.errors import CenterError, NotFound
from central.gate import Caller, Gate
from central.http_errors import status_of
from central.streams import StartRequest, StreamGrant, StreamService, StreamView
from central.viewers import ViewerAccess
from protocol.topics import check_id

StreamIdPath = Annotated[str, AfterValidator(check_id)]


class ViewerToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream_id: str
    token: str
    token_id: str
    expires_at: float
    whep_url: str
    view_url: str


class GrantView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_id: str
    holder: str
    stream_id: str
    issued_at: float
    expires_at: float
    revoked_at: float | None

    @classmethod
    def of(cls, grant: ViewerGrant) -> "GrantView":
        return cls.model_validate(grant, from_attributes=True)


def add_stream_routes(
    app: FastAPI, streams: StreamService, viewers: ViewerAccess, gate: Gate
) -> None:
    tags: list[str | Enum] = ["streams"]

    @app.post(
        "/api/v1/units/{unit_id}/stream", tags=tags, responses={404: {}, 409: {}, 502: {}, 504: {}}
    )
    async def start_stream(
        unit_id: UnitIdPath,
        body: StartRequest,
        caller: Annotated[Caller, Depends(gate.require(Action.REMOTE_START))],
    ) -> StreamGrant:
        """Remote start: a reason or an incident number is required and audited."""
        detail = {"reason": body.reason, "incident": body.incident}
        try:
            started = await streams.start(unit_id, caller.name, body)
        except CenterError as exc:
            detail["error"] = f"{status_of(exc)}: {exc}"
            await asyncio.to_thread(
                gate.audit, caller, "streams.remote_start", "failed", unit_id, detail
            )
            raise
        await asyncio.to_thread(
            gate.audit,
            caller,
            "streams.remote_start",
            "ok",
            unit_id,
            {**detail, "stream_id": started.stream_id},
        )
        issued = await asyncio.to_thread(viewers.issue, caller, started.stream_id)
        return streams.grant(started, issued.token, issued.token_id, viewers.ttl_s)

    @app.delete("/api/v1/units/{unit_id}/stream", tags=tags)
    async def stop_stream(
        unit_id: UnitIdPath,
        caller: Annotated[Caller, Depends(gate.require(Action.STREAM_STOP))],
    ) -> dict[str, list[str]]:
        stopped = await streams.stop(unit_id)
        await asyncio.to_thread(
            gate.audit, caller, "streams.stop", "ok", unit_id, {"streams": list[JsonValue](stopped)}
        )
        return {"stopped": stopped}

    @app.get(
        "/api/v1/streams", tags=tags, dependencies=[Depends(gate.require(Action.STREAMS_LIST))]
    )
    async def list_streams() -> list[StreamView]:
        return await streams.list()

    @app.post("/api/v1/streams/{stream_id}/viewer-token", tags=tags, responses={404: {}})
    async def viewer_token(
        stream_id: StreamIdPath,
        caller: Annotated[Caller, Depends(gate.require(Action.LIVE_WATCH))],
    ) -> ViewerToken:
        """A token for the person asking to watch one live stream (audited)."""
        if not any(view.stream_id == stream_id for view in await streams.list()):
            raise NotFound("no such live stream")
        issued = await asyncio.to_thread(viewers.issue, caller, stream_id)
        grant = streams.grant_urls(stream_id, issued.token)
        return ViewerToken(
            stream_id=stream_id,
            token=issued.token,
            token_id=issued.token_id,
            expires_at=issued.expires_at,
            whep_url=grant[0],
            view_url=grant[1],
        )

    @app.get(
        "/api/v1/viewer-tokens",
        tags=tags,
        dependencies=[Depends(gate.require(Action.VIEWER_TOKEN_REVOKE))],
    )
    def list_viewer_tokens(stream_id: StreamIdPath | None = None) -> list[GrantView]:
        """Viewer tokens that still open a stream (neither revoked nor expired)."""
        return [GrantView.of(g) for g in viewers.grants(stream_id)]

    @app.delete("/api/v1/viewer-tokens/{token_id}", tags=tags, responses={404: {}})
    def revoke_viewer_token(
        token_id: str,
        caller: Annotated[Caller, Depends(gate.require(Action.VIEWER_TOKEN_REVOKE))],
    ) -> GrantView:
        """The token opens nothing more; viewers watching with it are dropped within
        seconds."""
        return GrantView.of(viewers.revoke(caller, token_id))

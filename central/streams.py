"""Live video at the center's front door: WHIP/WHEP proxied to the relay worker that homes
each stream (tokens checked here first), remote start/stop of a unit's body-cam (a desired
stream that `central.reconcile` keeps live), the list of streams and the viewer page."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Literal

import httpx
import structlog
from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from central.config import RelaySettings
from central.desired import DesiredStream
from central.fleet import FleetService
from central.reconcile import Reconciler, StreamStartFailed
from central.relay.auth import authorize
from central.relay.pool import WorkerPool
from protocol.tokens import Audience, TokenSigner
from protocol.topics import check_id

log = structlog.get_logger("rtcc.streams")
StreamId = Annotated[str, AfterValidator(check_id)]
UnitId = Annotated[str, AfterValidator(check_id)]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamGrant(ApiModel):
    stream_id: str
    unit_id: str
    whep_url: str
    view_url: str
    token: str
    token_expires_in_s: float
    start_ms: float


class StreamView(ApiModel):
    stream_id: str
    unit_id: str
    codec: str | None
    live: bool = Field(description="Media is arriving at the relay right now.")
    state: Literal["live", "starting", "reconnecting"]
    requested_by: str
    reason: str
    until: float
    started: float | None
    viewers: int
    bitrate_bps: float
    restarts: int = Field(description="How often the center has asked the unit again.")


class StartRequest(ApiModel):
    reason: str = Field(default="", max_length=512, description="Why (kept with the stream).")
    duration_s: float | None = Field(
        default=None, gt=0, le=86_400, description="Keep it live this long (default setting)."
    )


class StreamService:
    def __init__(
        self,
        fleet: FleetService,
        pool: WorkerPool,
        signer: TokenSigner,
        settings: RelaySettings,
        public_url: Callable[[], str],
        reconciler: Reconciler,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fleet = fleet
        self.pool = pool
        self.signer = signer
        self.settings = settings
        self.reconciler = reconciler
        self._public_url = public_url
        self._clock = clock
        self._http = httpx.AsyncClient(timeout=10.0)

    async def close(self) -> None:
        await self._http.aclose()

    def authorize(self, aud: Audience, stream_id: str, authorization: str | None) -> None:
        authorize(self.signer, aud, stream_id, authorization, self._clock())
        if aud == "whip" and self.reconciler.plan.get(stream_id) is None:
            raise HTTPException(404, "no such stream was started")

    async def proxy(self, request: Request, stream_id: str) -> Response:
        url = self.pool.url_for(stream_id) + request.url.path
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "authorization")
        }
        try:
            answer = await self._http.request(
                request.method, url, headers=headers, content=await request.body()
            )
        except httpx.HTTPError as exc:
            raise HTTPException(
                503, f"relay worker unreachable: {exc}", headers={"Retry-After": "1"}
            ) from None
        keep = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() in ("content-type", "location", "www-authenticate")
        }
        return Response(answer.content, status_code=answer.status_code, headers=keep)

    def grant(self, stream: DesiredStream, started_at: float) -> StreamGrant:
        now = self._clock()
        ttl = self.settings.viewer_token_ttl_s
        token = self.signer.issue("whep", stream.stream_id, now, ttl, who="api")
        base = self._public_url()
        return StreamGrant(
            stream_id=stream.stream_id,
            unit_id=stream.unit_id,
            whep_url=f"{base}/whep/{stream.stream_id}",
            view_url=f"{base}/view/{stream.stream_id}#token={token}",
            token=token,
            token_expires_in_s=ttl,
            start_ms=round((now - started_at) * 1000, 1),
        )

    async def start(
        self, unit_id: str, requested_by: str = "api", request: StartRequest | None = None
    ) -> StreamGrant:
        """Make the unit's stream desired and answer once its media reaches the relay."""
        started_at = self._clock()
        request = request or StartRequest()
        record = self.fleet.registry.get(unit_id)
        if record is None:
            raise HTTPException(404, f"unknown unit {unit_id}")
        if not record.online:
            raise HTTPException(409, f"unit {unit_id} is offline")
        duration = request.duration_s or self.settings.stream_duration_s
        reconciler = self.reconciler
        stream, new = reconciler.want(unit_id, requested_by, request.reason, duration)
        deadline = started_at + self.settings.start_timeout_s
        try:
            if not stream.live and stream.start_sent is None:
                await reconciler.start_now(stream)
            if not await reconciler.wait_live(stream.stream_id, deadline):
                raise HTTPException(504, "the stream did not go live in time")
        except (StreamStartFailed, HTTPException) as exc:
            if new:
                reconciler.forget(stream.stream_id)
                await reconciler.end(stream)
            if isinstance(exc, StreamStartFailed):
                raise HTTPException(502, f"unit could not start: {exc}") from None
            raise
        if new:
            log.info("stream_started", unit_id=unit_id, stream_id=stream.stream_id)
            self.fleet.announce(
                "stream.started", {"stream_id": stream.stream_id, "unit_id": unit_id}
            )
        return self.grant(stream, started_at)

    async def stop(self, unit_id: str) -> list[str]:
        stream = self.reconciler.plan.for_unit(unit_id)
        if stream is None:
            raise HTTPException(404, "the unit has no active stream")
        self.reconciler.forget(stream.stream_id)
        log.info("stream_stopped", unit_id=unit_id, stream_id=stream.stream_id)
        self.fleet.announce("stream.stopped", {"stream_id": stream.stream_id, "unit_id": unit_id})
        await self.reconciler.end(stream)
        return [stream.stream_id]

    async def list(self) -> list[StreamView]:
        reports, _ = await self.reconciler.worker_streams()
        views = []
        for stream in self.reconciler.plan.streams():
            info = reports.get(stream.stream_id)
            live = info is not None and info.live
            state: Literal["live", "starting", "reconnecting"] = (
                "live" if live else "reconnecting" if stream.last_live else "starting"
            )
            views.append(
                StreamView(
                    stream_id=stream.stream_id,
                    unit_id=stream.unit_id,
                    codec=info.codec if info else None,
                    live=live,
                    state=state,
                    requested_by=stream.record.requested_by,
                    reason=stream.record.reason,
                    until=stream.record.until,
                    started=info.started if info else None,
                    viewers=info.viewers if info else 0,
                    bitrate_bps=info.bitrate_bps if info else 0.0,
                    restarts=max(0, stream.starts - 1),
                )
            )
        return views


def add_stream_routes(app: FastAPI, service: StreamService) -> None:
    viewer_page = resources.files("central.static").joinpath("view.html").read_text()

    @app.post("/whip/{stream_id}", status_code=201, tags=["media"])
    async def whip(
        stream_id: StreamId, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        service.authorize("whip", stream_id, authorization)
        return await service.proxy(request, stream_id)

    @app.post("/whep/{stream_id}", status_code=201, tags=["media"])
    async def whep(
        stream_id: StreamId, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        service.authorize("whep", stream_id, authorization)
        return await service.proxy(request, stream_id)

    @app.delete("/whip/{stream_id}/{session}", tags=["media"])
    async def whip_end(
        stream_id: StreamId,
        session: str,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        service.authorize("whip", stream_id, authorization)
        return await service.proxy(request, stream_id)

    @app.get("/whep/{stream_id}/{session}", tags=["media"])
    async def whep_session(
        stream_id: StreamId,
        session: str,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Whether the relay still holds this viewer session, and whether video flows:
        a viewer whose video stopped keeps a session that is still held."""
        service.authorize("whep", stream_id, authorization)
        return await service.proxy(request, stream_id)

    @app.delete("/whep/{stream_id}/{session}", tags=["media"])
    async def whep_end(
        stream_id: StreamId,
        session: str,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        service.authorize("whep", stream_id, authorization)
        return await service.proxy(request, stream_id)

    @app.post(
        "/api/v1/units/{unit_id}/stream",
        tags=["streams"],
        responses={404: {}, 409: {}, 502: {}, 504: {}},
    )
    async def start_stream(unit_id: UnitId, body: StartRequest | None = None) -> StreamGrant:
        return await service.start(unit_id, "api", body)

    @app.delete("/api/v1/units/{unit_id}/stream", tags=["streams"])
    async def stop_stream(unit_id: UnitId) -> dict[str, list[str]]:
        return {"stopped": await service.stop(unit_id)}

    @app.get("/api/v1/streams", tags=["streams"])
    async def list_streams() -> list[StreamView]:
        return await service.list()

    @app.get("/view/{stream_id}", response_class=HTMLResponse, tags=["media"])
    def view(stream_id: StreamId) -> HTMLResponse:
        return HTMLResponse(viewer_page)

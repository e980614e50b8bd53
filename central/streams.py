"""Live video at the center's front door: WHIP/WHEP proxied to the relay worker that homes
each stream (tokens checked here first), remote start/stop of a unit's body-cam, the list
of live streams and the viewer page."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

import httpx
import structlog
from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, BaseModel, ConfigDict

from central.config import RelaySettings
from central.fleet import FleetService
from central.relay.auth import authorize
from central.relay.models import StreamInfo
from central.relay.pool import WorkerPool
from protocol import CommandStatus
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
    live: bool
    started: float | None
    viewers: int
    bitrate_bps: float


@dataclass
class ActiveStream:
    stream_id: str
    unit_id: str
    requested: float


class StreamService:
    def __init__(
        self,
        fleet: FleetService,
        pool: WorkerPool,
        signer: TokenSigner,
        settings: RelaySettings,
        public_url: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fleet = fleet
        self.pool = pool
        self.signer = signer
        self.settings = settings
        self._public_url = public_url
        self._clock = clock
        self.active: dict[str, ActiveStream] = {}
        self._http = httpx.AsyncClient(timeout=10.0)

    async def close(self) -> None:
        await self._http.aclose()

    def authorize(self, aud: Audience, stream_id: str, authorization: str | None) -> None:
        authorize(self.signer, aud, stream_id, authorization, self._clock())
        if aud == "whip" and stream_id not in self.active:
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
            raise HTTPException(503, f"relay worker unreachable: {exc}") from None
        keep = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() in ("content-type", "location", "www-authenticate")
        }
        return Response(answer.content, status_code=answer.status_code, headers=keep)

    async def worker_streams(self) -> dict[str, StreamInfo]:
        found: dict[str, StreamInfo] = {}
        for worker in self.pool.workers:
            try:
                answer = await self._http.get(worker.url + "/streams", timeout=2.0)
                infos = [StreamInfo.model_validate(s) for s in answer.json()]
                found.update({info.stream_id: info for info in infos})
            except (httpx.HTTPError, ValueError):
                log.warning("relay_worker_unreachable", index=worker.index)
        return found

    def grant(self, stream: ActiveStream, started_at: float) -> StreamGrant:
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

    async def start(self, unit_id: str) -> StreamGrant:
        started_at = self._clock()
        record = self.fleet.registry.get(unit_id)
        if record is None:
            raise HTTPException(404, f"unknown unit {unit_id}")
        if not record.online:
            raise HTTPException(409, f"unit {unit_id} is offline")
        existing = next((s for s in self.active.values() if s.unit_id == unit_id), None)
        if existing is not None:
            if existing.stream_id in await self.worker_streams():
                return self.grant(existing, started_at)
            del self.active[existing.stream_id]  # it died: start afresh
        stream = ActiveStream(f"{unit_id}-{secrets.token_hex(4)}", unit_id, started_at)
        self.active[stream.stream_id] = stream
        whip_token = self.signer.issue(
            "whip", stream.stream_id, started_at, self.settings.whip_token_ttl_s, who=unit_id
        )
        timeout = self.settings.start_timeout_s
        try:
            pending = await self.fleet.send_command(
                unit_id,
                "stream.start",
                {"stream_id": stream.stream_id, "token": whip_token},
                self.fleet.settings.fleet.command_ttl_s,
            )
            try:
                result = await asyncio.wait_for(asyncio.shield(pending.result), timeout)
            finally:
                self.fleet.commands.close(pending.cmd_id)
            if result.status is not CommandStatus.DONE:
                raise HTTPException(502, f"unit could not start: {result.status} {result.detail}")
            await self._wait_live(stream.stream_id, started_at + timeout)
        except TimeoutError:
            self.active.pop(stream.stream_id, None)
            raise HTTPException(504, "the stream did not go live in time") from None
        except BaseException:
            self.active.pop(stream.stream_id, None)
            raise
        log.info("stream_started", unit_id=unit_id, stream_id=stream.stream_id)
        self.fleet.announce("stream.started", {"stream_id": stream.stream_id, "unit_id": unit_id})
        return self.grant(stream, started_at)

    async def _wait_live(self, stream_id: str, deadline: float) -> None:
        url = self.pool.url_for(stream_id) + "/streams"
        while True:
            try:
                answer = (await self._http.get(url)).json()
                live = {s.stream_id for s in map(StreamInfo.model_validate, answer) if s.live}
            except (httpx.HTTPError, ValueError):
                live = set()
            if stream_id in live:
                return
            if self._clock() > deadline:
                raise TimeoutError
            await asyncio.sleep(0.02)

    async def stop(self, unit_id: str) -> list[str]:
        ended = [s for s in self.active.values() if s.unit_id == unit_id]
        if not ended:
            raise HTTPException(404, "the unit has no active stream")
        for stream in ended:
            del self.active[stream.stream_id]
            log.info("stream_stopped", unit_id=unit_id, stream_id=stream.stream_id)
            self.fleet.announce(
                "stream.stopped", {"stream_id": stream.stream_id, "unit_id": unit_id}
            )
        pending = await self.fleet.send_command(
            unit_id, "stream.stop", {}, self.fleet.settings.fleet.command_ttl_s
        )
        self.fleet.commands.close(pending.cmd_id)
        return [s.stream_id for s in ended]

    async def list(self) -> list[StreamView]:
        found = await self.worker_streams()
        views = []
        for stream in self.active.values():
            info = found.get(stream.stream_id)
            views.append(
                StreamView(
                    stream_id=stream.stream_id,
                    unit_id=stream.unit_id,
                    codec=info.codec if info else None,
                    live=bool(info and info.live),
                    started=info.started if info else None,
                    viewers=info.viewers if info else 0,
                    bitrate_bps=info.bitrate_bps if info else 0.0,
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
    async def start_stream(unit_id: UnitId) -> StreamGrant:
        return await service.start(unit_id)

    @app.delete("/api/v1/units/{unit_id}/stream", tags=["streams"])
    async def stop_stream(unit_id: UnitId) -> dict[str, list[str]]:
        return {"stopped": await service.stop(unit_id)}

    @app.get("/api/v1/streams", tags=["streams"])
    async def list_streams() -> list[StreamView]:
        return await service.list()

    @app.get("/view/{stream_id}", response_class=HTMLResponse, tags=["media"])
    def view(stream_id: StreamId) -> HTMLResponse:
        return HTMLResponse(viewer_page)

"""WHIP/WHEP at the center's front door: each request's token is checked, a publisher only
for a stream the center started, then the relay worker that homes the stream answers it.
Also the viewer page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, JsonValue

from central.errors import Forbidden
from central.gate import Gate, source_of
from central.refusals import FoldedRefusals
from central.relay_front import RelayFront
from central.streams import StreamService
from central.viewers import ViewerAccess
from protocol.tokens import Audience
from protocol.topics import check_id

StreamIdPath = Annotated[str, AfterValidator(check_id)]
Authorization = Annotated[str | None, Header()]


def add_media_routes(
    app: FastAPI,
    relay: RelayFront,
    streams: StreamService,
    viewers: ViewerAccess,
    gate: Gate,
    shut_out: Callable[[str], bool],
    clock: Callable[[], float] = time.time,
) -> None:
    """`shut_out(unit_id)`: the unit's certificate is revoked or expired, so it may not
    publish, whatever token it still holds."""
    viewer_page = resources.files("central.static").joinpath("view.html").read_text()
    refusals = FoldedRefusals(gate, "stream.publish", clock)

    async def pass_on(
        aud: Audience, stream_id: str, request: Request, authorization: str | None
    ) -> Response:
        claims = relay.authorize(aud, stream_id, authorization)
        if aud == "whip":
            if shut_out(claims.who):
                await asyncio.to_thread(refuse_publisher, refusals, request, claims.who)
            streams.check_wanted(stream_id)
            return await relay.proxy(request, stream_id)
        grant = await asyncio.to_thread(viewers.check, claims)
        answer = await viewer_request(relay, streams, request, stream_id)
        if request.method == "POST" and answer.status_code == 201:
            location = answer.headers.get("location", "")
            await asyncio.to_thread(viewers.opened, grant, location, source_of(request))
        elif request.method == "DELETE" and (answer.status_code < 300 or answer.status_code == 404):
            # The person asked to leave; a session the relay dropped a moment before is left too.
            await asyncio.to_thread(viewers.closed, request.url.path, "left")
        return answer

    def route(aud: Audience) -> Callable[..., Awaitable[Response]]:
        async def handle(
            stream_id: StreamIdPath, request: Request, authorization: Authorization = None
        ) -> Response:
            return await pass_on(aud, stream_id, request, authorization)

        return handle

    media: list[str | Enum] = ["media"]
    app.add_api_route(
        "/whip/{stream_id}", route("whip"), methods=["POST"], status_code=201, tags=media
    )
    app.add_api_route(
        "/whep/{stream_id}", route("whep"), methods=["POST"], status_code=201, tags=media
    )
    app.add_api_route("/whip/{stream_id}/{session}", route("whip"), methods=["DELETE"], tags=media)
    for method in ("GET", "DELETE"):
        app.add_api_route(
            "/whep/{stream_id}/{session}",
            route("whep"),
            methods=[method],
            operation_id=f"whep_session_{method.lower()}",
            description="GET: whether the relay still holds this viewer session, and whether "
            "video flows (a viewer whose video stopped keeps a session that is still held). "
            "DELETE: leave.",
            tags=media,
        )

    @app.get("/view/{stream_id}", response_class=HTMLResponse, tags=["media"])
    def view(stream_id: StreamIdPath) -> HTMLResponse:
        return HTMLResponse(viewer_page)


async def viewer_request(
    relay: RelayFront, streams: StreamService, request: Request, stream_id: str
) -> Response:
    """A viewer's request, passed on to the relay. A join for a stream the center wants,
    answered 404 because the relay started afresh and its unit has not published again yet,
    is held until the media arrives (`central.viewer_hold`)."""
    answer = await relay.proxy(request, stream_id)
    hold = relay.hold
    if not (
        request.method == "POST"
        and answer.status_code == 404
        and streams.wanted(stream_id)
        and hold.may_hold()
    ):
        return answer
    if not await hold.wait(stream_id) or await request.is_disconnected():
        return answer
    return await relay.proxy(request, stream_id)


def refuse_publisher(refusals: FoldedRefusals, request: Request, unit_id: str) -> None:
    """Audits (folded: a revoked unit keeps retrying) and refuses a publisher whose
    certificate is revoked."""
    refused = Forbidden(f"unit {unit_id} holds no valid certificate: its video is refused")
    detail: dict[str, JsonValue] = {"path": request.url.path}
    refusals.record(request, (f"unit:{unit_id}", "unit"), unit_id, refused, detail)
    raise refused

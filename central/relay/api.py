"""WHIP (RFC 9725) and WHEP endpoints of a relay worker. Every request needs a bearer token
for exactly its stream and use; it is checked before any PeerConnection exists."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Request, Response
from pydantic import AfterValidator

from central.http_errors import install_error_handlers
from central.relay.auth import authorize
from central.relay.models import StreamInfo, ViewerSession
from central.relay.session import Relay, RelayError, Stream
from protocol.tokens import Audience, Claims, TokenSigner
from protocol.topics import check_id

StreamId = Annotated[str, AfterValidator(check_id)]
SDP = "application/sdp"


def stream_info(stream: Stream, now: float) -> StreamInfo:
    fanout = stream.fanout
    since = stream.live_since
    seconds = max(1e-3, now - since) if since else 0.0
    return StreamInfo(
        stream_id=stream.stream_id,
        codec=stream.codec,
        live=stream.live(now),
        publisher=stream.publisher is not None,
        last_media_age_s=round(now - stream.last_media, 3) if stream.last_media else None,
        started=since,
        viewers=len(stream.viewers),
        frames_in=fanout.frames_in,
        bitrate_bps=round(8 * fanout.bytes_in_live / seconds) if seconds else 0.0,
        relay_delay_p50_ms=_percentile_ms(stream.delays, 0.5),
        relay_delay_p99_ms=_percentile_ms(stream.delays, 0.99),
    )


def _percentile_ms(samples: Iterable[float], q: float) -> float | None:
    ordered = sorted(samples)
    if not ordered:
        return None
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def create_relay_app(
    relay: Relay, signer: TokenSigner, clock: Callable[[], float] = time.time
) -> FastAPI:
    app = FastAPI(title="rtcc relay worker")
    install_error_handlers(app)

    def check(aud: Audience, stream_id: str, authorization: str | None) -> Claims:
        return authorize(signer, aud, stream_id, authorization, clock())

    async def offer_of(request: Request) -> str:
        if request.headers.get("content-type", "").split(";")[0].strip() != SDP:
            raise HTTPException(415, "Content-Type must be application/sdp")
        body = await request.body()
        try:
            return body.decode()
        except UnicodeDecodeError:
            raise HTTPException(400, "SDP must be UTF-8") from None

    async def start(
        kind: Audience, stream_id: str, request: Request, authorization: str | None
    ) -> Response:
        claims = check(kind, stream_id, authorization)
        offer = await offer_of(request)
        try:
            if kind == "whip":
                session, answer = await relay.publish(stream_id, offer)
            else:
                session, answer = await relay.view(stream_id, offer, claims.who)
        except RelayError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return Response(
            answer,
            status_code=201,
            media_type=SDP,
            headers={"Location": f"/{kind}/{stream_id}/{session}"},
        )

    async def stop(
        kind: Audience, stream_id: str, session: str, authorization: str | None
    ) -> Response:
        check(kind, stream_id, authorization)
        if not await relay.end(stream_id, session):
            raise HTTPException(404, "no such session")
        return Response(status_code=200)

    @app.get("/streams")
    async def streams() -> list[StreamInfo]:
        return [stream_info(s, clock()) for s in relay.streams.values() if s.publisher is not None]

    @app.get("/streams/{stream_id}/live")
    async def wait_live(stream_id: StreamId, timeout: float = 10.0) -> Response:
        """Answers once media of the stream arrives (200), or 504 after `timeout` s."""
        if await relay.wait_live(stream_id, max(0.0, min(timeout, 60.0))):
            info = stream_info(relay.streams[stream_id], clock())
            return Response(info.model_dump_json(), media_type="application/json")
        return Response(status_code=504)

    @app.delete("/streams/{stream_id}")
    async def drop_stream(stream_id: StreamId) -> Response:
        return Response(status_code=200 if await relay.drop(stream_id) else 404)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/whip/{stream_id}", status_code=201)
    async def whip(
        stream_id: StreamId, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        return await start("whip", stream_id, request, authorization)

    @app.post("/whep/{stream_id}", status_code=201)
    async def whep(
        stream_id: StreamId, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        return await start("whep", stream_id, request, authorization)

    @app.delete("/whip/{stream_id}/{session}")
    async def whip_end(
        stream_id: StreamId, session: str, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        return await stop("whip", stream_id, session, authorization)

    @app.get("/whep/{stream_id}/{session}")
    async def whep_session(
        stream_id: StreamId, session: str, authorization: Annotated[str | None, Header()] = None
    ) -> ViewerSession:
        check("whep", stream_id, authorization)
        stream = relay.streams.get(stream_id)
        if stream is None or session not in stream.viewers:
            raise HTTPException(404, "no such session")
        return ViewerSession(live=stream.live(clock()), publisher=stream.publisher is not None)

    @app.delete("/whep/{stream_id}/{session}")
    async def whep_end(
        stream_id: StreamId, session: str, authorization: Annotated[str | None, Header()] = None
    ) -> Response:
        return await stop("whep", stream_id, session, authorization)

    return app

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
from central.relay.rewind import Rewinds
from central.relay.rewind_models import CLIP_END, CLIP_FRAMES, CLIP_START, RecentSpan
from central.relay.session import Relay, Stream
from central.relay.stills import Stills
from protocol.tokens import Audience, Claims, TokenSigner
from protocol.topics import check_id

StreamId = Annotated[str, AfterValidator(check_id)]
SDP = "application/sdp"
JPEG = "image/jpeg"
Authorization = Annotated[str | None, Header()]


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


class WorkerEndpoints:
    """What a relay worker answers over HTTP; `create_relay_app` gives each its route."""

    def __init__(self, relay: Relay, signer: TokenSigner, clock: Callable[[], float]) -> None:
        self.relay = relay
        self.signer = signer
        self.clock = clock
        self.stills = Stills(relay, clock)
        self.rewinds = Rewinds(relay)

    def check(self, aud: Audience, stream_id: str, authorization: str | None) -> Claims:
        return authorize(self.signer, aud, stream_id, authorization, self.clock())

    async def start(
        self, kind: Audience, stream_id: str, request: Request, authorization: str | None
    ) -> Response:
        claims = self.check(kind, stream_id, authorization)
        offer = await offer_of(request)
        if kind == "whip":
            session, answer = await self.relay.publish(stream_id, offer)
        else:
            session, answer = await self.relay.view(stream_id, offer, claims.who)
        return Response(
            answer,
            status_code=201,
            media_type=SDP,
            headers={"Location": f"/{kind}/{stream_id}/{session}"},
        )

    async def stop(
        self, kind: Audience, stream_id: str, session: str, authorization: str | None
    ) -> Response:
        self.check(kind, stream_id, authorization)
        if not await self.relay.end(stream_id, session):
            raise HTTPException(404, "no such session")
        return Response(status_code=200)

    async def streams(self) -> list[StreamInfo]:
        now = self.clock()
        return [stream_info(s, now) for s in self.relay.streams.values() if s.publisher is not None]

    async def wait_live(self, stream_id: StreamId, timeout: float = 10.0) -> Response:
        """Answers once media of the stream arrives (200), or 504 after `timeout` s."""
        if await self.relay.wait_live(stream_id, max(0.0, min(timeout, 60.0))):
            info = stream_info(self.relay.streams[stream_id], self.clock())
            return Response(info.model_dump_json(), media_type="application/json")
        return Response(status_code=504)

    async def still(self, stream_id: StreamId, authorization: Authorization = None) -> Response:
        """A JPEG of the stream's latest keyframe. Asked by the center with its own viewer
        token for the stream: a still is a view of it."""
        self.check("whep", stream_id, authorization)
        jpeg = await self.stills.jpeg(stream_id)
        return Response(jpeg, media_type=JPEG, headers={"Cache-Control": "no-store"})

    async def recent(self, stream_id: StreamId, authorization: Authorization = None) -> RecentSpan:
        """What the worker holds of the stream for rewind (the center's token, as a still)."""
        self.check("whep", stream_id, authorization)
        return self.rewinds.span(stream_id)

    async def rewind(
        self, stream_id: StreamId, since: float, until: float, authorization: Authorization = None
    ) -> Response:
        """The stream's frames that show [since, until] (epoch seconds) in one file."""
        self.check("whep", stream_id, authorization)
        clip = await self.rewinds.clip(stream_id, since, until)
        headers = {
            CLIP_START: repr(clip.start),
            CLIP_END: repr(clip.end),
            CLIP_FRAMES: str(clip.frames),
            "Cache-Control": "no-store",
        }
        return Response(clip.data, media_type=clip.media_type, headers=headers)

    async def drop_stream(self, stream_id: StreamId) -> Response:
        return Response(status_code=200 if await self.relay.drop(stream_id) else 404)

    def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    async def whip(
        self, stream_id: StreamId, request: Request, authorization: Authorization = None
    ) -> Response:
        return await self.start("whip", stream_id, request, authorization)

    async def whep(
        self, stream_id: StreamId, request: Request, authorization: Authorization = None
    ) -> Response:
        return await self.start("whep", stream_id, request, authorization)

    async def whip_end(
        self, stream_id: StreamId, session: str, authorization: Authorization = None
    ) -> Response:
        return await self.stop("whip", stream_id, session, authorization)

    async def whep_end(
        self, stream_id: StreamId, session: str, authorization: Authorization = None
    ) -> Response:
        return await self.stop("whep", stream_id, session, authorization)

    async def whep_session(
        self, stream_id: StreamId, session: str, authorization: Authorization = None
    ) -> ViewerSession:
        self.check("whep", stream_id, authorization)
        stream = self.relay.streams.get(stream_id)
        if stream is None or session not in stream.viewers:
            raise HTTPException(404, "no such session")
        return ViewerSession(live=stream.live(self.clock()), publisher=stream.publisher is not None)


async def offer_of(request: Request) -> str:
    if request.headers.get("content-type", "").split(";")[0].strip() != SDP:
        raise HTTPException(415, "Content-Type must be application/sdp")
    body = await request.body()
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise HTTPException(400, "SDP must be UTF-8") from None


def create_relay_app(
    relay: Relay, signer: TokenSigner, clock: Callable[[], float] = time.time
) -> FastAPI:
    app = FastAPI(title="rtcc relay worker")
    install_error_handlers(app)
    at = WorkerEndpoints(relay, signer, clock)
    app.add_api_route("/streams", at.streams, methods=["GET"])
    app.add_api_route("/streams/{stream_id}/live", at.wait_live, methods=["GET"])
    app.add_api_route(
        "/streams/{stream_id}/still",
        at.still,
        methods=["GET"],
        response_class=Response,
        responses={200: {"content": {JPEG: {}}}},
    )
    app.add_api_route("/streams/{stream_id}/recent", at.recent, methods=["GET"])
    app.add_api_route(
        "/streams/{stream_id}/rewind", at.rewind, methods=["GET"], response_class=Response
    )
    app.add_api_route("/streams/{stream_id}", at.drop_stream, methods=["DELETE"])
    app.add_api_route("/healthz", at.healthz, methods=["GET"])
    app.add_api_route("/whip/{stream_id}", at.whip, methods=["POST"], status_code=201)
    app.add_api_route("/whep/{stream_id}", at.whep, methods=["POST"], status_code=201)
    app.add_api_route("/whip/{stream_id}/{session}", at.whip_end, methods=["DELETE"])
    app.add_api_route("/whep/{stream_id}/{session}", at.whep_session, methods=["GET"])
    app.add_api_route("/whep/{stream_id}/{session}", at.whep_end, methods=["DELETE"])
    return app

"""The baseline: aiortc's MediaRelay behind the same WHIP/WHEP URLs (decodes the publisher
once, encodes once per viewer). No tokens: it only ever runs on loopback in the benchmark."""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from fastapi import FastAPI, Request, Response

from runtime.config import IceSettings
from runtime.webrtc import apply_ice, prefer_codec

CONFIG = apply_ice(IceSettings(host_addresses=["127.0.0.1"]))


def create_app(codec: str) -> FastAPI:
    app = FastAPI()
    relay = MediaRelay()
    sources: dict[str, MediaStreamTrack] = {}
    peers: set[RTCPeerConnection] = set()

    async def answer(pc: RTCPeerConnection, request: Request) -> Response:
        offer = (await request.body()).decode()
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        peers.add(pc)
        return Response(
            pc.localDescription.sdp,
            201,
            media_type="application/sdp",
            headers={"Location": f"/session/{id(pc)}"},
        )

    @app.post("/whip/{stream_id}")
    async def whip(stream_id: str, request: Request) -> Response:
        pc = RTCPeerConnection(CONFIG)
        pc.on("track", lambda track: sources.__setitem__(stream_id, track))
        return await answer(pc, request)

    @app.post("/whep/{stream_id}")
    async def whep(stream_id: str, request: Request) -> Response:
        while stream_id not in sources:  # noqa: ASYNC110 (baseline kept minimal)
            await asyncio.sleep(0.05)
        pc = RTCPeerConnection(CONFIG)
        transceiver = pc.addTransceiver(relay.subscribe(sources[stream_id]), "sendonly")
        prefer_codec(transceiver, codec)
        return await answer(pc, request)

    @app.delete("/whip/{stream_id}/{session}")
    @app.delete("/whep/{stream_id}/{session}")
    async def end() -> Response:
        return Response(status_code=200)

    return app


if __name__ == "__main__":
    uvicorn.run(
        create_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning"
    )

"""A relay worker, publishers and viewers on loopback, for the relay tests."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import av
import httpx
import uvicorn
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from agent.publisher import WhipPublisher
from central.broker import free_port
from central.relay import dtls, passthrough
from central.relay.api import create_relay_app
from central.relay.session import Relay
from firmware_bridge.sim.pattern import Stamp, read_stamp
from firmware_bridge.sim.synthetic import SyntheticCamera
from protocol.tokens import TokenSigner
from runtime.config import IceSettings
from runtime.http import EmbeddedServer
from runtime.webrtc import apply_ice

SIGNER = TokenSigner({"test": b"t" * 32}, "test")
CONFIG = apply_ice(IceSettings(host_addresses=["127.0.0.1"]))


@contextlib.asynccontextmanager
async def relay_server() -> AsyncIterator[tuple[str, Relay]]:
    passthrough.install()
    dtls.install()
    relay = Relay(CONFIG, loopback_only=True)
    port = free_port()
    server = EmbeddedServer(
        uvicorn.Config(
            create_relay_app(relay, SIGNER),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", relay
    finally:
        await relay.close()
        server.should_exit = True
        await task


def luma(frame: av.VideoFrame) -> bytes:
    plane = frame.planes[0]
    data = bytes(plane)
    return b"".join(
        data[r * plane.line_size : r * plane.line_size + frame.width] for r in range(frame.height)
    )


@dataclass
class RelayViewer:
    """A WHEP viewer on aiortc. Its receiver is pass-through too (the hook is process-wide),
    so it decodes the frames itself, which also lets it read the stamps."""

    codec: str
    pc: RTCPeerConnection = field(default_factory=lambda: RTCPeerConnection(CONFIG))
    stamps: list[tuple[Stamp, float]] = field(default_factory=list)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    frames: int = 0
    first_frame_at: float | None = None
    location: str = ""
    task: asyncio.Task[None] | None = None

    async def join(
        self,
        base: str,
        stream_id: str,
        token: str,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 5.0,
    ) -> httpx.Response:
        self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.task = asyncio.create_task(self._read(track))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(verify=verify, timeout=timeout) as http:
            response = await http.post(
                f"{base}/whep/{stream_id}",
                content=self.pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
            )
        self.verify = verify
        if response.status_code == 201:
            self.location = base + response.headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        return response

    async def _read(self, track: MediaStreamTrack) -> None:
        decoder: Any = av.CodecContext.create(self.codec, "r")
        with contextlib.suppress(MediaStreamError):
            while True:
                item = await track.recv()
                if isinstance(item, av.VideoFrame):  # this process decodes (no relay hook)
                    pictures = [item]
                else:
                    try:
                        pictures = decoder.decode(av.Packet(bytes(cast("av.Packet[Any]", item))))
                    except av.FFmpegError:
                        continue
                for picture in pictures:
                    now = time.time()
                    self.first_frame_at = self.first_frame_at or now
                    self.frames += 1
                    self.sizes.add((picture.width, picture.height))
                    stamp = read_stamp(luma(picture), picture.width, picture.height)
                    if stamp is not None:
                        self.stamps.append((stamp, now))

    async def leave(self, token: str) -> None:
        if self.location:
            async with httpx.AsyncClient(verify=self.verify) as http:
                await http.delete(self.location, headers={"Authorization": f"Bearer {token}"})
        await self.close()

    async def close(self) -> None:
        await self.pc.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@contextlib.asynccontextmanager
async def publishing(
    base: str, stream: str, camera: SyntheticCamera
) -> AsyncIterator[WhipPublisher]:
    token = SIGNER.issue("whip", stream, time.time(), 300)
    publisher = WhipPublisher(f"{base}/whip/{stream}", token, camera, CONFIG)
    task = asyncio.create_task(publisher.run())
    try:
        await asyncio.wait_for(publisher.connected.wait(), 10)
        yield publisher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def viewer_token(stream: str) -> str:
    return SIGNER.issue("whep", stream, time.time(), 300, who="test")

"""Processes for the relay benchmark: `publish` (the simulator's camera over WHIP) and
`view` (N WHEP viewers; one decodes the burnt-in stamps for latency)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from typing import Any

import av
import httpx
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from agent.publisher import WhipPublisher
from central.relay import passthrough
from firmware_bridge.pattern import read_stamp
from firmware_bridge.synthetic import SyntheticCamera
from runtime.config import IceSettings
from runtime.webrtc import apply_ice


def ice_config(host: str) -> Any:
    return apply_ice(IceSettings(host_addresses=[host]))


async def publish(args: argparse.Namespace) -> None:
    camera = SyntheticCamera(
        args.codec, args.width, args.height, fps=30, keyframe_interval_s=2, bitrate=args.bitrate
    )
    publisher = WhipPublisher(args.url, args.token, camera, ice_config(args.ice_host))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(publisher.run())
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class Viewer:
    def __init__(self, decode: str | None, ice_host: str = "127.0.0.1") -> None:
        self.pc = RTCPeerConnection(ice_config(ice_host))
        self.arrivals: list[float] = []
        self.decoded_at: list[float] = []
        self.frames = 0
        self.asked = 0.0
        self.first: float | None = None
        self.latencies: list[float] = []
        self._decoder: Any = av.CodecContext.create(decode, "r") if decode else None
        self._counting_from: float | None = None
        self.counted = 0

    async def join(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.on("track", lambda track: asyncio.ensure_future(self._read(track)))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.asked = time.time()
        answer = await http.post(
            url,
            content=self.pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        answer.raise_for_status()
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))

    def count_from(self, t: float) -> None:
        self._counting_from = t

    def count_only(self) -> None:
        """A light viewer for scale runs: the full WebRTC session (ICE, DTLS, SRTP) but each
        decrypted RTP packet is only parsed and counted (a frame per marker bit), skipping
        aiortc's jitter buffer, NACK and RTCP work, so the harness needs less CPU than the
        relay it measures."""

        async def count(packet: Any, arrival_time_ms: int) -> None:
            if not packet.marker:
                return
            now = time.time()
            self.first = self.first or now
            if self._counting_from is not None:
                self.counted += 1

        for transceiver in self.pc.getTransceivers():
            transceiver.receiver._handle_rtp_packet = count  # type: ignore[method-assign]

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                packet = await track.recv()
                now = time.time()
                self.first = self.first or now
                self.arrivals.append(now)
                if self._counting_from is not None:
                    self.counted += 1
                if self._decoder is None:
                    continue
                with contextlib.suppress(av.FFmpegError):
                    for picture in self._decoder.decode(av.Packet(bytes(packet))):  # type: ignore[arg-type]
                        plane = picture.planes[0]
                        data = bytes(plane)
                        luma = b"".join(
                            data[r * plane.line_size : r * plane.line_size + picture.width]
                            for r in range(32)
                        )
                        stamp = read_stamp(luma, picture.width, 32)
                        if stamp and self._counting_from is not None:
                            self.latencies.append(now - stamp.wall_ms / 1000)
                            self.decoded_at.append(now - self._counting_from)


async def view(args: argparse.Namespace) -> None:
    passthrough.install()  # viewers count packets; only one decodes
    viewers = [Viewer(args.codec if i == 0 else None, args.ice_host) for i in range(args.n)]
    async with httpx.AsyncClient(timeout=30) as http:
        for index, viewer in enumerate(viewers):
            await viewer.join(http, args.url, args.token)
            if args.light and index > 0:
                viewer.count_only()
    deadline = time.time() + 20
    while any(v.first is None for v in viewers) and time.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.sleep(args.warmup)
    started = time.time()
    for viewer in viewers:
        viewer.count_from(started)
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.sleep(args.seconds)
    elapsed = time.time() - started
    result = {
        "fps": [v.counted / elapsed for v in viewers],
        "join_s": [v.first - v.asked for v in viewers if v.first],
        "latencies": viewers[0].latencies,
        "connected": sum(v.first is not None for v in viewers),
        "arrivals": [t - started for t in viewers[0].arrivals if t >= started],
        "decoded_at": viewers[0].decoded_at,
        "state": viewers[0].pc.connectionState,
    }
    for viewer in viewers:
        await viewer.pc.close()
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    pub = sub.add_parser("publish")
    pub.add_argument("url")
    pub.add_argument("token")
    pub.add_argument("--codec", default="vp8")
    pub.add_argument("--width", type=int, default=640)
    pub.add_argument("--height", type=int, default=480)
    pub.add_argument("--bitrate", type=int, default=1_000_000)
    pub.add_argument("--ice-host", default="127.0.0.1")
    vw = sub.add_parser("view")
    vw.add_argument("url")
    vw.add_argument("token")
    vw.add_argument("--n", type=int, default=1)
    vw.add_argument("--codec", default="vp8")
    vw.add_argument("--warmup", type=float, default=2.0)
    vw.add_argument("--seconds", type=float, default=8.0)
    vw.add_argument("--ice-host", default="127.0.0.1")
    vw.add_argument("--light", action="store_true", help="all but the first only count frames")
    args = parser.parse_args()
    asyncio.run(publish(args) if args.cmd == "publish" else view(args))


if __name__ == "__main__":
    main()

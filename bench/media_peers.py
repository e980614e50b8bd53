"""Processes for the relay benchmark: `publish` (the simulator's camera over WHIP) and
`view` (N WHEP viewers; one decodes the burnt-in stamps for latency). With `--rejoin` the
viewers re-join by themselves after their session dies, as the viewer page does."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import av
import httpx
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import StreamStatistics

from agent.publisher import WhipPublisher
from central.relay import passthrough
from firmware_bridge.sim.pattern import read_stamp
from firmware_bridge.sim.synthetic import SyntheticCamera
from runtime.backoff import Backoff
from runtime.config import IceSettings
from runtime.media import CLOCK_RATE
from runtime.webrtc import apply_ice

REJOIN_BACKOFF = Backoff(initial_s=0.5, max_s=2.0)  # like the page
# A session the relay answered but that never brought a frame is given up after this long.
FIRST_FRAME_S = 10.0
PROBE_EVERY_S = 1.5


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
        self._config = ice_config(ice_host)
        self.pc = RTCPeerConnection(self._config)
        self.arrivals: list[float] = []
        self.decoded_at: list[float] = []
        self.frames = 0
        self.asked = 0.0
        self.first: float | None = None
        self.last_frame: float | None = None
        self.latencies: list[float] = []
        self._codec = decode
        self._decoder: Any = None
        self._counting_from: float | None = None
        self._light = False
        self.counted = 0
        self.joins = 0
        self.refused: int | None = None
        self._location: str | None = None

    async def join(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.pc.addTransceiver("video", direction="recvonly")
        if self._light:
            self._hook_counting()
        if self._codec:
            self._decoder = av.CodecContext.create(self._codec, "r")
        self.pc.on("track", lambda track: asyncio.ensure_future(self._read(track)))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.asked = self.asked or time.time()
        answer = await http.post(
            url,
            content=self.pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        answer.raise_for_status()
        where = answer.headers.get("Location")
        self._location = str(httpx.URL(url).join(where)) if where else None
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
        self.joins += 1

    async def keep_joined(
        self, http: httpx.AsyncClient, url: str, token: str, stall_s: float
    ) -> None:
        """Join, and after the session dies (failed or closed, or no frame for `stall_s`)
        join again with a new PeerConnection, with jittered backoff, until cancelled or
        refused (401/403). A 404 (stream not live yet) is retried like any other failure."""
        misses = 0
        while True:
            played = False
            try:
                await self.join(http, url, token)
                joined = time.time()
                await self._until_dead(http, token, joined, stall_s)
                played = self.last_frame is not None and self.last_frame >= joined
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code in (401, 403):
                    self.refused = exc.response.status_code
                    return
            except (httpx.HTTPError, OSError, ValueError):
                pass  # the relay or the center is away: try again
            finally:
                await self._leave(http, token)
            misses = 1 if played else misses + 1
            await asyncio.sleep(REJOIN_BACKOFF.delay(misses - 1))
            self.pc = RTCPeerConnection(self._config)

    async def _until_dead(
        self, http: httpx.AsyncClient, token: str, joined: float, stall_s: float
    ) -> None:
        pc = self.pc
        ended = asyncio.Event()
        live_probes = 0
        next_probe = probed_at = 0.0

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                ended.set()

        while not ended.is_set():
            last = self.last_frame if self.last_frame and self.last_frame >= joined else None
            deadline = last + stall_s if last is not None else joined + FIRST_FRAME_S
            left = max(deadline, next_probe) - time.time()
            if left <= 0:
                # Video stopped: a session the relay still holds while the publisher is
                # away is kept (the video resumes in it); one it lost is joined anew.
                held = await self._probe(http, token)
                if last is not None and last > probed_at:
                    live_probes = 0  # video came since the last look
                probed_at = time.time()
                live_probes = live_probes + 1 if held is not None and held["live"] else 0
                if held is None or live_probes >= 2:
                    return
                next_probe = time.time() + PROBE_EVERY_S
                continue
            # Look again soon: frames arriving meanwhile move the deadline on.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), min(left, 0.25))

    async def _probe(self, http: httpx.AsyncClient, token: str) -> dict[str, Any] | None:
        """The relay's answer about this session, or None if it no longer holds it."""
        if self._location is None:
            return None
        try:
            answer = await http.get(
                self._location, headers={"Authorization": f"Bearer {token}"}, timeout=2
            )
        except (httpx.HTTPError, OSError):
            return None
        if answer.status_code != 200:
            return None
        held: dict[str, Any] = answer.json()
        return held

    async def _leave(self, http: httpx.AsyncClient, token: str) -> None:
        """Close the session and, best effort, DELETE it at the relay."""
        await self.pc.close()
        location, self._location = self._location, None
        if location is not None:
            with contextlib.suppress(httpx.HTTPError, OSError):
                await http.delete(location, headers={"Authorization": f"Bearer {token}"}, timeout=2)

    def count_from(self, t: float) -> None:
        self._counting_from = t

    def count_only(self) -> None:
        """A light viewer for scale runs: the full WebRTC session (ICE, DTLS, SRTP) but each
        decrypted RTP packet is only parsed and counted (a frame per marker bit), skipping
        aiortc's jitter buffer, NACK and RTCP work, so the harness needs less CPU than the
        relay it measures."""
        self._light = True
        self._hook_counting()

    def _hook_counting(self) -> None:
        for transceiver in self.pc.getTransceivers():
            receiver = transceiver.receiver
            # Kept per SSRC as aiortc does, so its RTCP loop still sends receiver reports:
            # a viewer that never reports is dropped by the relay's watchdog.
            statistics: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
            receiver._handle_rtp_packet = self._counter(statistics)  # type: ignore[method-assign, assignment]

    def _counter(
        self, statistics: dict[int, StreamStatistics]
    ) -> Callable[[Any, int], Awaitable[None]]:
        async def count(packet: Any, arrival_time_ms: int) -> None:
            stream = statistics.get(packet.ssrc)
            if stream is None:
                stream = statistics[packet.ssrc] = StreamStatistics(CLOCK_RATE)
            stream.add(packet)
            if not packet.marker:
                return
            now = time.time()
            self.first = self.first or now
            self.last_frame = now
            if self._counting_from is not None:
                self.counted += 1

        return count

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                packet = await track.recv()
                now = time.time()
                self.first = self.first or now
                self.last_frame = now
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
    verify = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else True
    async with httpx.AsyncClient(timeout=30, verify=verify) as http:
        rejoining = []
        for index, viewer in enumerate(viewers):
            if args.rejoin:
                if args.light and index > 0:
                    viewer.count_only()
                rejoining.append(
                    asyncio.create_task(
                        viewer.keep_joined(http, args.url, args.token, args.stall_s)
                    )
                )
                continue
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
        if args.rejoin:
            result |= {"joins": viewers[0].joins, "refused": viewers[0].refused}
        for task in rejoining:
            task.cancel()
        await asyncio.gather(*rejoining, return_exceptions=True)
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
    vw.add_argument("--ca-file", help="the CA of the center's HTTPS certificate")
    vw.add_argument("--light", action="store_true", help="all but the first only count frames")
    vw.add_argument(
        "--rejoin",
        action="store_true",
        help="re-join after the session dies (failed/closed, or no frame for --stall-s)",
    )
    vw.add_argument("--stall-s", type=float, default=1.5, help="with --rejoin")
    args = parser.parse_args()
    asyncio.run(publish(args) if args.cmd == "publish" else view(args))


if __name__ == "__main__":
    main()

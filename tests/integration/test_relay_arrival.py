"""A relay held up (by its viewers, say) still times the publisher's packets and sender
reports by when they came in, so its REMB and receiver reports speak of the uplink."""

import asyncio
import threading
import time
from typing import Any

from aiortc import clock
from aiortc.rtp import RtcpSrPacket

from agent.publisher import WhipPublisher
from central.relay.session import Relay
from firmware_bridge.sim.synthetic import SyntheticCamera
from tests.helpers import wait_for
from tests.integration.relay_helpers import CONFIG, SIGNER, relay_server

HELD_S = 2.0  # longer than aiortc's longest gap between sender reports (1.5 s)


class PublisherThread:
    """A publisher on an event loop of its own, which goes on sending while the relay's
    loop is held up."""

    def __init__(self, url: str, token: str) -> None:
        self._url, self._token = url, token
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        camera = SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=2)
        task = asyncio.create_task(WhipPublisher(self._url, self._token, camera, CONFIG).run())
        await self._stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def __enter__(self) -> "PublisherThread":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def relay_live(relay: Relay, stream_id: str) -> bool:
    stream = relay.streams.get(stream_id)
    return stream is not None and stream.live(time.time())


async def test_a_held_up_relay_times_packets_by_their_arrival() -> None:
    token = SIGNER.issue("whip", "held", time.time(), 300)
    async with relay_server() as (base, relay):
        with PublisherThread(f"{base}/whip/held", token):
            await wait_for(lambda: relay_live(relay, "held"), timeout=15)
            receiver: Any = relay.streams["held"].receiver
            estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
            lsr_time: dict[int, float] = receiver._RTCRtpReceiver__lsr_time
            # How long before its handling each packet and sender report came in (ms).
            rtp_waits: list[float] = []
            report_waits: list[float] = []
            estimate = estimator.add

            def add(arrival_time_ms: int, **kwargs: Any) -> Any:
                rtp_waits.append(clock.current_ms() - arrival_time_ms)
                return estimate(arrival_time_ms=arrival_time_ms, **kwargs)

            handle_rtcp = receiver._handle_rtcp_packet

            async def on_rtcp(packet: Any) -> None:
                await handle_rtcp(packet)
                if isinstance(packet, RtcpSrPacket):
                    report_waits.append(1000 * (time.time() - lsr_time[packet.ssrc]))

            estimator.add = add
            receiver._handle_rtcp_packet = on_rtcp
            await wait_for(lambda: len(rtp_waits) > 10, timeout=5)
            # The relay's loop is busy (on purpose): datagrams wait in the kernel.
            time.sleep(HELD_S)  # noqa: ASYNC251
            rtp_waits.clear()
            report_waits.clear()
            await wait_for(lambda: len(rtp_waits) > 30 and bool(report_waits), timeout=5)
    # aiortc's own stamps would say a few milliseconds at most.
    assert max(rtp_waits) > 0.8 * HELD_S * 1000
    # One came early in the hold: it waited at least HELD_S - 1.5 s.
    assert max(report_waits) > 300

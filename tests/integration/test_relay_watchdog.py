"""The relay's view of a stream is about media, not sessions: live only while frames arrive,
silent publishers and viewers dropped, viewers kept (and taken) while a publisher is away."""

import asyncio
import time

import httpx

from firmware_bridge.sim.synthetic import SyntheticCamera
from tests.helpers import wait_for
from tests.integration.relay_helpers import RelayViewer, publishing, relay_server, viewer_token


async def test_live_means_media_and_a_silent_publisher_is_dropped() -> None:
    camera = SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=1)
    async with relay_server() as (base, relay), publishing(base, "w1", camera):
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"{base}/streams/w1/live", params={"timeout": 10})
            assert answer.status_code == 200 and answer.json()["live"]
            missing = await http.get(f"{base}/streams/nobody/live", params={"timeout": 0.2})
            assert missing.status_code == 504
        stream = relay.streams["w1"]
        now = time.time()
        assert stream.live(now) and not stream.live(now + 5)
        await relay.check_paths(now + 1)
        assert stream.publisher is not None  # still sending
        await relay.check_paths(now + 5)
        assert stream.publisher is None and relay.publishers_dropped == 1
        assert not stream.media.is_set()


async def test_viewers_stay_while_the_publisher_is_away_and_silent_viewers_go() -> None:
    camera = SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=1)
    async with relay_server() as (base, relay):
        async with publishing(base, "w2", camera):
            viewer = RelayViewer("vp8")
            assert (await viewer.join(base, "w2", viewer_token("w2"))).status_code == 201
            await wait_for(lambda: viewer.frames > 10, timeout=15)
            session = relay.streams["w2"].viewers
            await wait_for(lambda: all(v.last_rtcp for v in session.values()), timeout=10)
        # The publisher left: the viewer keeps its session, and another may join.
        await wait_for(lambda: relay.streams["w2"].publisher is None, timeout=10)
        late = RelayViewer("vp8")
        assert (await late.join(base, "w2", viewer_token("w2"))).status_code == 201
        async with publishing(base, "w2", camera):
            seen = viewer.frames
            await wait_for(lambda: viewer.frames > seen + 10 and late.frames > 10, timeout=15)
            assert len(relay.streams["w2"].viewers) == 2
            # The late viewer vanishes without a word: its RTCP stops, its session stays.
            receiver = late.pc.getTransceivers()[0].receiver

            async def mute(*_args: object) -> None:
                return None

            receiver._send_rtcp = mute  # type: ignore[method-assign,assignment]

            async def dropped() -> bool:
                await relay.check_paths(time.time())
                return relay.viewers_dropped == 1

            deadline = time.time() + 15
            while not await dropped():
                assert time.time() < deadline
                await asyncio.sleep(0.2)
            assert len(relay.streams["w2"].viewers) == 1
            await late.close()
        await viewer.close()

"""Viewers held for a publisher on its way back (central/viewer_hold.py), with the relay's
wait for media given as a function the test answers."""

from __future__ import annotations

import asyncio

from central.viewer_hold import GRACE_S, ViewerHold
from tests.helpers import wait_for


class Relay:
    """Answers the hold's waits for media when the test says the stream is live."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.live = asyncio.Event()

    async def wait_live(self, stream_id: str, seconds: float) -> bool:
        self.asked.append(stream_id)
        try:
            await asyncio.wait_for(self.live.wait(), seconds)
        except TimeoutError:
            return False
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_viewers_of_one_stream_share_one_wait_and_join_when_media_arrives() -> None:
    relay = Relay()
    hold = ViewerHold(relay.wait_live, hold_s=30)
    assert hold.may_hold()
    viewers = [asyncio.create_task(hold.wait("s1")) for _ in range(3)]
    await wait_for(lambda: hold.held == 3)
    assert relay.asked == ["s1"]
    relay.live.set()
    assert await asyncio.gather(*viewers) == [True, True, True]
    assert hold.held == 0
    await hold.close()


async def test_a_hold_ends_at_its_limit_and_at_shutdown() -> None:
    relay = Relay()
    hold = ViewerHold(relay.wait_live, hold_s=0.05)
    assert await hold.wait("s1") is False
    hold.hold_s = 30
    waiting = asyncio.create_task(hold.wait("s2"))
    await wait_for(lambda: hold.held == 1)
    await hold.close()
    assert await waiting is False
    assert not hold.may_hold()


async def test_only_soon_after_the_relay_started_afresh() -> None:
    clock = Clock()
    hold = ViewerHold(Relay().wait_live, hold_s=4, clock=clock)
    clock.now += GRACE_S + 1  # a unit still away by now is offline: answer at once
    assert not hold.may_hold()
    hold.relay_lost()  # a worker restarted
    assert hold.may_hold()
    assert not ViewerHold(Relay().wait_live, hold_s=0).may_hold()

"""`MqttLink.reconnect()`: a new connection at once (no backoff wait), and no Last Will for a
connection given up on purpose while its path still works."""

from __future__ import annotations

import asyncio
import time

from central.broker import MosquittoProcess
from runtime.config import BrokerUrl, MqttTuning
from runtime.mqtt import MqttLink, Subscription, Will
from tests.helpers import stop_link_task, wait_for

# Long enough that a reconnect inside a second can only come from skipping the wait.
SLOW_RETRY = {"keepalive_s": 10, "reconnect_initial_s": 30.0, "reconnect_max_s": 30.0}


def link_with_will(broker_url: str, client_id: str, topic: str) -> MqttLink:
    return MqttLink(
        client_id=client_id,
        urls=[BrokerUrl.parse(broker_url)],
        tuning=MqttTuning(**SLOW_RETRY),
        will=lambda: Will(topic, b"will", retain=False),
        rand=lambda: 1.0,
    )


async def test_reconnect_starts_over_at_once_without_publishing_the_will(
    broker_url: str, unique: str
) -> None:
    topic = f"test/reconnect/{unique}"
    seen: list[bytes] = []
    watcher = MqttLink(
        client_id=f"w-{unique}",
        urls=[BrokerUrl.parse(broker_url)],
        tuning=MqttTuning(**SLOW_RETRY),
        subscriptions=[Subscription(topic)],
        on_message=lambda _t, payload, _r: seen.append(payload),
    )
    link = link_with_will(broker_url, f"l-{unique}", topic)
    tasks = [asyncio.create_task(watcher.run()), asyncio.create_task(link.run())]
    try:
        await asyncio.wait_for(watcher.connected.wait(), 10)
        await asyncio.wait_for(link.connected.wait(), 10)
        asked = time.monotonic()
        link.reconnect("test")
        await wait_for(lambda: link.connects == 2 and link.connected.is_set(), timeout=5)
        assert time.monotonic() - asked < 1.0
        await link.publish(topic, b"after")
        await wait_for(lambda: b"after" in seen)
        assert seen == [b"after"]  # a Will would have come first
    finally:
        await stop_link_task(link, tasks[1])
        await stop_link_task(watcher, tasks[0])


async def test_reconnect_cuts_the_wait_between_attempts_short(
    own_broker: MosquittoProcess, unique: str
) -> None:
    link = link_with_will(own_broker.url, f"l-{unique}", f"test/reconnect/{unique}")
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        await asyncio.to_thread(own_broker.stop)
        await wait_for(lambda: not link.connected.is_set(), timeout=10)
        await asyncio.to_thread(own_broker.start)
        asked = time.monotonic()
        link.reconnect("coverage is back")
        await asyncio.wait_for(link.connected.wait(), 5)
        assert time.monotonic() - asked < 1.0 and link.connects == 2
    finally:
        await stop_link_task(link, task)

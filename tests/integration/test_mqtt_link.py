"""The shared MQTT link against a real Mosquitto."""

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any

import pytest

from central.broker import MosquittoProcess, free_port
from runtime.config import BrokerUrl, MqttTuning
from runtime.dscp import DSCP_AF31
from runtime.mqtt import MqttLink, NotConnected, Subscription, Will
from runtime.mqtt_socket import TCP_THIN_LINEAR_TIMEOUTS
from tests.helpers import FAST_MQTT, stop_link_task, wait_for

TUNING = MqttTuning(**FAST_MQTT)


@contextlib.asynccontextmanager
async def link(**kw):  # type: ignore[no-untyped-def]
    mqtt = MqttLink(tuning=kw.pop("tuning", TUNING), **kw)
    task = asyncio.create_task(mqtt.run())
    try:
        yield mqtt
    finally:
        await stop_link_task(mqtt, task)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_publish_subscribe_and_acks(broker_url: str, unique: str, protocol: str) -> None:
    got: list[tuple[str, bytes, bool]] = []
    url = [BrokerUrl.parse(broker_url)]
    tuning = MqttTuning(**FAST_MQTT, protocol=protocol)
    async with (
        link(
            client_id=f"s-{unique}",
            urls=url,
            tuning=tuning,
            subscriptions=[Subscription(f"t/{unique}/#")],
            on_message=lambda t, p, r: got.append((t, p, r)),
        ) as sub,
        link(client_id=f"p-{unique}", urls=url, tuning=tuning) as pub,
    ):
        await asyncio.wait_for(asyncio.gather(sub.connected.wait(), pub.connected.wait()), 5)
        await asyncio.gather(*(pub.publish(f"t/{unique}/x", b"%d" % i) for i in range(200)))
        await wait_for(lambda: len(got) == 200)
        assert [p for _, p, _ in got] == [b"%d" % i for i in range(200)]
        assert pub._client is not None
        sock: Any = pub._client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == DSCP_AF31 << 2
        assert sock.getsockopt(socket.IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS) == 1


async def test_publish_without_connection_raises(unique: str) -> None:
    mqtt = MqttLink(
        client_id=unique, urls=[BrokerUrl("mqtt", "127.0.0.1", free_port())], tuning=TUNING
    )
    with pytest.raises(NotConnected):
        mqtt.publish("t", b"x")


async def test_next_broker_in_the_list_after_a_dead_one(broker_url: str, unique: str) -> None:
    dead = BrokerUrl("mqtt", "127.0.0.1", free_port())
    async with link(client_id=unique, urls=[dead, BrokerUrl.parse(broker_url)]) as mqtt:
        await asyncio.wait_for(mqtt.connected.wait(), 10)
        assert str(mqtt.current_url) == broker_url


async def test_reconnects_and_resubscribes_after_broker_restart(
    tmp_path: Path, unique: str
) -> None:
    broker = MosquittoProcess(tmp_path / "b")
    broker.start()
    got: list[bytes] = []
    url = [BrokerUrl.parse(broker.url)]
    try:
        async with (
            link(
                client_id=f"s-{unique}",
                urls=url,
                subscriptions=[Subscription("r/#")],
                on_message=lambda t, p, r: got.append(p),
            ) as sub,
            link(client_id=f"p-{unique}", urls=url) as pub,
        ):
            await asyncio.wait_for(asyncio.gather(sub.connected.wait(), pub.connected.wait()), 5)
            broker.kill()  # no persistence saved: the subscriber's session is gone
            await wait_for(lambda: not sub.connected.is_set() and not pub.connected.is_set())
            broker.start()
            await asyncio.wait_for(asyncio.gather(sub.connected.wait(), pub.connected.wait()), 15)
            await pub.publish("r/1", b"after")
            await wait_for(lambda: got == [b"after"])
            assert sub.connects == 2
    finally:
        broker.stop()


async def test_will_is_published_when_the_link_dies(broker_url: str, unique: str) -> None:
    got: list[tuple[str, bytes, bool]] = []
    url = [BrokerUrl.parse(broker_url)]
    async with link(
        client_id=f"s-{unique}",
        urls=url,
        subscriptions=[Subscription(f"w/{unique}")],
        on_message=lambda t, p, r: got.append((t, p, r)),
    ) as sub:
        await sub.connected.wait()
        doomed = MqttLink(
            client_id=f"d-{unique}",
            urls=url,
            tuning=TUNING,
            will=lambda: Will(f"w/{unique}", b"gone", retain=False),
        )
        task = asyncio.create_task(doomed.run())
        await doomed.connected.wait()
        # The connection dies without a DISCONNECT packet.
        doomed._client.socket().shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        await wait_for(lambda: got, timeout=10)
        assert got[0][1] == b"gone"
        await stop_link_task(doomed, task)

"""An MQTT reader inside a lab namespace that stamps every message with time.monotonic() on
arrival (the same clock as the link emulator's), for scenarios that time what the center
sees.

At the center's broker it reads as a monitor (central/broker_security.py): mutual TLS with
the monitor's certificate, the broker's checked against the device CA. The broker makes a
certificate's CN the client id, so a second connection with the same certificate would
throw the first out: one `MqttWatch` (one connection) serves every filter a scenario
watches, each a `Feed` of its own (told apart by MQTT 5 subscription identifiers)."""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from runtime.config import TlsFiles
from tests.lab.lab import FaultLab, Where


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float
    topic: str
    payload: bytes
    retained: bool


class Feed:
    """The messages of one subscription, in the order they arrived."""

    def __init__(self) -> None:
        self.arrivals: queue.Queue[Arrival] = queue.Queue()

    def next(self, predicate: Callable[[Arrival], bool], timeout: float) -> Arrival:
        """The next message that satisfies `predicate` (others are passed over)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                arrival = self.arrivals.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(f"no such message within {timeout}s") from None
            if predicate(arrival):
                return arrival


class MqttWatch:
    def __init__(
        self, lab: FaultLab, where: Where, host: str, port: int, tls: TlsFiles | None = None
    ) -> None:
        self._lab, self._where = lab, where
        self._host, self._port = host, port
        self._feeds: dict[int, Feed] = {}
        self._ids = itertools.count(1)
        self._subacks: dict[int, queue.Queue[ReasonCode]] = {}
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        if tls is not None:
            # Verified: the broker's certificate against the device CA, and its name.
            self._client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        self._connack: queue.Queue[ReasonCode] = queue.Queue()
        self._client.on_connect = lambda _c, _u, _f, code, _p: self._connack.put(code)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        # The link under test is elsewhere: this client never reconnects (a reconnect would
        # open its socket outside the lab's namespace).
        self._client.reconnect_delay_set(3_600, 3_600)

    def start(self, timeout: float = 10.0) -> MqttWatch:
        """Connected, or an AssertionError that says why not (a refused certificate reads
        as the broker's reason code, not as a missing SUBACK later)."""
        self._lab.call(self._where, self._client.connect, self._host, self._port, 60)
        self._client.loop_start()
        try:
            code = self._connack.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no CONNACK within {timeout}s") from None
        assert not code.is_failure, f"the broker refused the lab's reader: {code}"
        return self

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def feed(self, topic_filter: str, timeout: float = 10.0) -> Feed:
        """Subscribes to `topic_filter`: its messages from now on (retained ones first)."""
        feed = Feed()
        identifier = next(self._ids)
        properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
        properties.SubscriptionIdentifier = identifier
        self._feeds[identifier] = feed  # before its first message can come
        result, mid = self._client.subscribe(topic_filter, qos=1, properties=properties)
        assert result == paho.MQTT_ERR_SUCCESS and mid is not None, f"not sent: {result}"
        acked = self._subacks.setdefault(mid, queue.Queue())
        try:
            code = acked.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no SUBACK for {topic_filter} within {timeout}s") from None
        assert not code.is_failure, f"subscription to {topic_filter} refused: {code}"
        return feed

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        arrival = Arrival(time.monotonic(), msg.topic, bytes(msg.payload), msg.retain)
        identifiers = getattr(msg.properties, "SubscriptionIdentifier", [])
        for identifier in identifiers:
            # In paho's network thread: a message of no feed of ours is passed over.
            feed = self._feeds.get(identifier)
            if feed is not None:
                feed.arrivals.put(arrival)

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        self._subacks.setdefault(mid, queue.Queue()).put(codes[0])

"""An MQTT subscriber inside a lab namespace that stamps every message with time.monotonic()
on arrival (the same clock as the link emulator's), for scenarios that time what the center
sees."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.lab.lab import FaultLab, Where


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float
    topic: str
    payload: bytes
    retained: bool


class MqttWatch:
    def __init__(
        self, lab: FaultLab, where: Where, host: str, port: int, topic_filter: str
    ) -> None:
        self._lab, self._where = lab, where
        self._host, self._port, self._filter = host, port, topic_filter
        self._arrivals: queue.Queue[Arrival] = queue.Queue()
        self._subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        # The link under test is elsewhere: this client never reconnects (a reconnect would
        # open its socket outside the lab's namespace).
        self._client.reconnect_delay_set(3_600, 3_600)

    def start(self, timeout: float = 10.0) -> MqttWatch:
        self._lab.call(self._where, self._client.connect, self._host, self._port, 60)
        self._client.loop_start()
        self._client.subscribe(self._filter, qos=1)
        if not self._subscribed.wait(timeout):
            raise AssertionError(f"no SUBACK for {self._filter} within {timeout}s")
        return self

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def next(self, predicate: Callable[[Arrival], bool], timeout: float) -> Arrival:
        """The next message that satisfies `predicate` (others are passed over)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                arrival = self._arrivals.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(f"no such message within {timeout}s") from None
            if predicate(arrival):
                return arrival

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        self._arrivals.put(Arrival(time.monotonic(), msg.topic, bytes(msg.payload), msg.retain))

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        self._subscribed.set()

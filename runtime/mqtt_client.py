"""The paho client of one MQTT connection attempt, and the socket wrapper it reads through
(used by runtime/mqtt.py's `MqttLink` and runtime/mqtt_socket.py's `LoopSocket`)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from runtime.config import BrokerUrl, MqttTuning

RECV_SIZE = 65_536


def make_client(
    client_id: str,
    url: BrokerUrl,
    tuning: MqttTuning,
    username: str | None,
    will: tuple[str, bytes, int, bool] | None,
) -> paho.Client:
    """A fresh client for `url` (nothing stale survives a broken socket); `will` is
    (topic, payload, qos, retain)."""
    v5 = tuning.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else False,
    )
    client.connect_timeout = tuning.connect_timeout_s
    client.max_inflight_messages_set(tuning.max_inflight)
    client.suppress_exceptions = True
    if username:
        client.username_pw_set(username)
    if url.scheme == "mqtts":
        tls = tuning.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
        )
    if will is not None:
        topic, payload, qos, retain = will
        client.will_set(topic, payload, qos=qos, retain=retain)
    return client


class BufferedSocket:
    """Wraps paho's socket so that its small recv() calls are served from one big read.

    Over TLS one recv() returns one TLS record, and a broker sends one record per MQTT
    packet: the big read gathers the records already arrived, so that a burst is handled
    in one pass of the event loop rather than one pass per packet."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._eof = False

    @property
    def buffered(self) -> int:
        return len(self._data) - self._pos

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._data):
            data = b"" if self._eof else self._sock.recv(RECV_SIZE)
            if not data:
                return b""
            if self._tls:
                data = self._more_records(data)
            self._data, self._pos = data, 0
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk

    def _more_records(self, data: bytes) -> bytes:
        parts = [data]
        size = len(data)
        while size < RECV_SIZE:
            try:
                more = self._sock.recv(RECV_SIZE - size)
            except OSError:
                # Nothing more now (SSLWantRead, BlockingIO); a real error comes back on
                # the next read, after what arrived before it was handled.
                break
            if not more:
                self._eof = True  # told to paho once what arrived before it is read
                break
            parts.append(more)
            size += len(more)
        return b"".join(parts)

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return self.buffered + int(inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def fail_quietly(future: asyncio.Future[Any], exc: Exception) -> None:
    """Fail a future that nobody may be awaiting (fire-and-forget publishes are fine):
    marking the exception retrieved keeps asyncio from reporting it as lost."""
    if not future.done():
        future.set_exception(exc)
        future.exception()

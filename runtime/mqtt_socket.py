"""The socket of one paho client, driven from the asyncio event loop instead of paho's
network thread (used by runtime/mqtt.py's `MqttLink`): reads when the socket is readable,
writes what was queued once per loop iteration, and runs paho's keepalive housekeeping."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from runtime.dscp import DSCP_AF31, set_dscp
from runtime.keepalive import ping_check_interval_s
from runtime.mqtt_client import BufferedSocket

MAX_PACKETS_PER_READ = 500
# Linux's <netinet/tcp.h>; Python's socket module does not name it.
TCP_THIN_LINEAR_TIMEOUTS = 16


class LoopSocket:
    """Watches the socket of at most one client at a time, from `attach` to `detach`."""

    def __init__(self, keepalive_s: int) -> None:
        self._keepalive_s = keepalive_s
        self._client: paho.Client | None = None
        self._sock: int | None = None
        self._buffered: BufferedSocket | None = None
        self._flush_scheduled = False
        self._misc_task: asyncio.Task[None] | None = None

    def attach(self, client: paho.Client, sock: Any) -> None:
        """Start serving `client`, whose connected socket is `sock`."""
        loop = asyncio.get_running_loop()
        cast(socket.socket, sock).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        set_dscp(cast(socket.socket, sock), DSCP_AF31)  # status before media (media is AF21)
        _retransmit_linearly(cast(socket.socket, sock))
        # paho reads each packet with 3-4 recv() calls of a few bytes; serve them from one
        # large read instead (paho 2.2 private attribute, pinned and covered by tests).
        self._client = client
        self._buffered = BufferedSocket(sock)
        client._sock = self._buffered
        # Registered by file descriptor number, so removal works even after a close.
        self._sock = sock.fileno()
        loop.add_reader(self._sock, self._readable)

        def want_write(_c: paho.Client, _u: Any, _s: Any) -> None:
            # Coalesce: write everything queued in this loop iteration at once, and only
            # watch for writability when the socket buffer is actually full.
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush)

        def written(_c: paho.Client, _u: Any, _s: Any) -> None:
            if self._sock is not None:
                loop.remove_writer(self._sock)

        client.on_socket_close = self._socket_closed
        client.on_socket_register_write = want_write
        client.on_socket_unregister_write = written
        if client.want_write():
            loop.add_writer(self._sock, self._writable)
        self._misc_task = asyncio.create_task(self._misc_loop(client), name="mqtt-misc")

    def detach(self) -> None:
        """Stop serving the client; closing its socket is left to the caller."""
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None
        client, self._client = self._client, None
        if client is not None:
            client.on_socket_close = None
        self._forget_socket()

    def _forget_socket(self) -> None:
        self._buffered = None
        if self._sock is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._sock)
            loop.remove_writer(self._sock)
            self._sock = None

    async def _misc_loop(self, client: paho.Client) -> None:
        # Keepalive pings and the ping-timeout check live in loop_misc; a short keepalive
        # needs it often, or a ping would reach the broker after it gave up on us.
        interval = ping_check_interval_s(self._keepalive_s)
        while True:
            await asyncio.sleep(interval)
            client.loop_misc()

    def _readable(self) -> None:
        client, buffered = self._client, self._buffered
        if client is None or buffered is None:
            return
        # paho's loop_read handles one packet per call; drain what one recv() brought, and
        # what TLS decrypted already: bytes held by the SSL object never wake the reader,
        # so a message left there would wait for the next one to arrive.
        for _ in range(MAX_PACKETS_PER_READ):
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or self._client is not client:
                return
            if not buffered.pending():
                return
        asyncio.get_running_loop().call_soon(self._readable)

    def _writable(self) -> None:
        if self._client is not None:
            self._client.loop_write()

    def _flush(self) -> None:
        self._flush_scheduled = False
        client = self._client
        if client is None or self._sock is None:
            return
        client.loop_write()
        if client.want_write() and self._sock is not None:
            asyncio.get_running_loop().add_writer(self._sock, self._writable)

    def _socket_closed(self, _client: paho.Client, _userdata: Any, _sock: Any) -> None:
        self._forget_socket()


def _retransmit_linearly(sock: socket.socket) -> None:
    """Status is a thin stream (a few packets in flight). On a thin uplink that live video
    briefly overfills, TCP's exponential retransmission backoff would hold a lost ping back
    for seconds after the loss ended, past the broker's keepalive allowance (4 s for an 8 s
    keepalive). Linux retransmits thin streams at a fixed timeout for the first six tries
    instead; where the option is unknown the socket keeps the default backoff."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, 1)
    except OSError:
        return

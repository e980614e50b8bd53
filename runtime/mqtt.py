"""paho-mqtt driven from the asyncio event loop (socket callbacks in runtime/mqtt_socket.py,
no network thread).

One `MqttLink` keeps one logical connection alive across a list of brokers: a fresh paho
client per attempt (so nothing stale survives a broken socket), persistent broker session,
jittered exponential backoff, TCP_NODELAY, SUBACK checks and re-subscription whenever the
broker did not keep our session. Works with MQTT 5 and 3.1.1. The keepalive sent to the
broker is chosen so that our Last Will fires within 1.5 x the configured one (see
runtime/keepalive.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from runtime.backoff import Backoff, Retry
from runtime.config import BrokerUrl, MqttTuning
from runtime.keepalive import wire_keepalive_s
from runtime.mqtt_client import fail_quietly, make_client
from runtime.mqtt_socket import LoopSocket

_WARNED_KEEPALIVES: set[int] = set()


class MqttError(Exception):
    """Base of this module's errors."""


class NotConnected(MqttError):
    """There is no live connection, or it was lost before the broker acknowledged."""


class PublishRejected(MqttError):
    """The broker answered a publish with a failure reason code (MQTT 5)."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.code = code


class ConnectFailed(MqttError):
    pass


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Subscription:
    topic_filter: str
    qos: int = 1


MessageHandler = Callable[[str, bytes, bool], None]
ConnectedHook = Callable[[bool], Awaitable[None]]


class MqttLink:
    def __init__(
        self,
        *,
        client_id: str,
        urls: Sequence[BrokerUrl],
        tuning: MqttTuning,
        subscriptions: Sequence[Subscription] = (),
        on_message: MessageHandler | None = None,
        on_connected: ConnectedHook | None = None,
        will: Callable[[], Will] | None = None,
        username: str | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not urls:
            raise ValueError("at least one broker URL is needed")
        self.client_id = client_id
        self._urls = list(urls)
        self._tuning = tuning
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._on_connected = on_connected
        self._will = will
        self._username = username
        self._retry = Retry(Backoff(tuning.reconnect_initial_s, tuning.reconnect_max_s), rand=rand)
        self._log = structlog.get_logger("rtcc.mqtt").bind(client_id=client_id)
        wire = wire_keepalive_s(tuning.keepalive_s)
        if wire is None and tuning.keepalive_s not in _WARNED_KEEPALIVES:
            _WARNED_KEEPALIVES.add(tuning.keepalive_s)  # once per process, not per link
            self._log.warning(
                "mqtt_keepalive_too_short_for_will_promise",
                keepalive_s=tuning.keepalive_s,
                detail="the Last Will may take longer than 1.5x keepalive; use 7 s or more",
            )
        self._keepalive_s = wire or tuning.keepalive_s
        self._client: paho.Client | None = None
        self._socket = LoopSocket(self._keepalive_s)
        self._connack: asyncio.Future[tuple[ReasonCode, bool]] | None = None
        self._lost: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._suback: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._stopping = False
        self._live = False
        self._hurry = asyncio.Event()
        # Set once a connection is fully up: subscribed and the on_connected hook has run.
        self.connected = asyncio.Event()
        self.connects = 0
        self.current_url: BrokerUrl | None = None

    # ---- public API -------------------------------------------------------------------

    async def run(self) -> None:
        """Keep connected until cancelled or `close()`d. Each new connection goes to the
        next broker in the list. May be run again after `close()`."""
        self._stopping = False
        index = 0
        while not self._stopping:
            url = self._urls[index % len(self._urls)]
            index += 1
            try:
                await self._session(url)
                self._retry.reset()
            except ConnectFailed as exc:
                self._log.warning("mqtt_connect_failed", broker=str(url), error=str(exc))
                self._retry.failed()
            except NotConnected:
                self._log.warning("mqtt_connection_lost_during_setup", broker=str(url))
                self._retry.failed()
            except Exception:
                self._log.exception("mqtt_session_crashed", broker=str(url))
                self._retry.failed()
            finally:
                self._teardown()
            if not self._stopping:
                await self._pause(self._retry.delay())

    def reconnect(self, reason: str) -> None:
        """Give up the current connection and make a new one now, skipping any wait between
        attempts. After a handover the old socket may be tied to an address that is gone,
        which only keepalive would notice, one or two keepalives later. A DISCONNECT goes
        first, so where the old path still works the broker keeps our session and does not
        publish our Will."""
        self._log.info("mqtt_reconnect", reason=reason)
        self._hurry.set()
        client, lost = self._client, self._lost
        if client is None or not self._live or lost is None or lost.done():
            return
        client.disconnect()  # written by the flush already scheduled, before teardown
        lost.set_result(None)

    async def _pause(self, delay: float) -> None:
        """The wait before the next connection attempt, cut short by `reconnect()`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), delay)
        self._hurry.clear()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
    ) -> asyncio.Future[None]:
        """Send now; the future resolves on PUBACK (QoS 1) or once written (QoS 0)."""
        client = self._client
        if client is None or not self._live:
            raise NotConnected("not connected")
        props = None
        if expiry_s is not None and self._tuning.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.MessageExpiryInterval = max(1, expiry_s)
        info = client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise NotConnected(f"publish refused by client: {paho.error_string(info.rc)}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if qos == 0:
            future.set_result(None)
        else:
            self._pending[info.mid] = future
        return future

    async def close(
        self, final: Sequence[tuple[str, bytes, bool]] = (), timeout: float = 2.0
    ) -> None:
        """Send `final` messages (topic, payload, retain), wait for their PUBACKs, then
        disconnect cleanly (the broker does not publish the Will)."""
        self._stopping = True
        client = self._client
        if client is None or not self._live:
            return
        acks = []
        for topic, payload, retain in final:
            try:
                acks.append(self.publish(topic, payload, retain=retain))
            except NotConnected:
                break
        if acks:
            await asyncio.wait(acks, timeout=timeout)
        lost = self._lost
        client.disconnect()
        if lost is not None:
            await asyncio.wait([lost], timeout=timeout)

    # ---- one connection ---------------------------------------------------------------

    async def _session(self, url: BrokerUrl) -> None:
        loop = asyncio.get_running_loop()
        client = self._make_client(url)
        self._connack = loop.create_future()
        self._lost = loop.create_future()
        self._client = client
        try:
            await asyncio.to_thread(self._blocking_connect, client, url)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        sock = client.socket()
        if sock is None:
            raise ConnectFailed("socket closed during connect")
        self._socket.attach(client, sock)
        try:
            reason, session_present = await asyncio.wait_for(
                asyncio.shield(self._connack), self._tuning.connect_timeout_s * 2
            )
        except TimeoutError:
            raise ConnectFailed("no CONNACK in time") from None
        if reason.is_failure:
            raise ConnectFailed(f"broker refused: {reason}")
        self.current_url = url
        self.connects += 1
        self._live = True
        self._log.info("mqtt_connected", broker=str(url), session_present=session_present)
        # The first connection of a process subscribes even into a kept session, so that the
        # broker sends retained messages to our empty in-memory state.
        if self._subscriptions and (not session_present or self.connects == 1):
            await self._subscribe()
        if self._on_connected is not None:
            await self._on_connected(session_present)
        self.connected.set()
        await asyncio.shield(self._lost)
        if self._stopping:
            self._log.info("mqtt_disconnected", broker=str(url))
        else:
            self._log.warning("mqtt_connection_lost", broker=str(url))

    def _blocking_connect(self, client: paho.Client, url: BrokerUrl) -> None:
        if self._tuning.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self._tuning.session_expiry_s
            client.connect(
                url.host, url.port, self._keepalive_s, clean_start=False, properties=props
            )
        else:
            client.connect(url.host, url.port, self._keepalive_s)

    def _make_client(self, url: BrokerUrl) -> paho.Client:
        will = self._will() if self._will is not None else None
        fields = (will.topic, will.payload, will.qos, will.retain) if will is not None else None
        client = make_client(self.client_id, url, self._tuning, self._username, fields)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_publish = self._handle_publish
        client.on_subscribe = self._handle_subscribe
        return client

    def _teardown(self) -> None:
        self._live = False
        self.connected.clear()
        self._socket.detach()
        client, self._client = self._client, None
        if client is not None:
            client.on_disconnect = None
            client._sock_close()  # closes the socket; paho offers no public equivalent
        self._fail_pending()
        self.current_url = None

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            fail_quietly(future, NotConnected("connection lost before PUBACK"))
        subacks, self._suback = self._suback, {}
        for sub_future in subacks.values():
            fail_quietly(sub_future, NotConnected("connection lost before SUBACK"))

    async def _subscribe(self) -> None:
        assert self._client is not None
        loop = asyncio.get_running_loop()
        topics = [(s.topic_filter, s.qos) for s in self._subscriptions]
        rc, mid = self._client.subscribe(topics)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectFailed(f"subscribe refused by client: {paho.error_string(rc)}")
        future: asyncio.Future[list[ReasonCode]] = loop.create_future()
        self._suback[mid] = future
        try:
            codes = await asyncio.wait_for(future, self._tuning.connect_timeout_s * 2)
        except (TimeoutError, NotConnected):
            raise ConnectFailed("no SUBACK") from None
        failed = [t for (t, _), code in zip(topics, codes, strict=False) if code.is_failure]
        if failed or len(codes) != len(topics):
            raise ConnectFailed(f"subscription refused: {failed or 'count mismatch'}")

    # ---- paho callbacks (always on the event loop thread after connect) ----------------

    def _handle_connect(
        self, _c: paho.Client, _u: Any, flags: paho.ConnectFlags, reason: ReasonCode, _p: Any
    ) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result((reason, flags.session_present))

    def _handle_disconnect(
        self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        self._live = False
        self.connected.clear()
        self._fail_pending()
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(ConnectFailed(f"disconnected before CONNACK: {reason}"))
            self._connack.exception()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _handle_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        if self._on_message is None:
            return
        try:
            self._on_message(msg.topic, bytes(msg.payload), bool(msg.retain))
        except Exception:
            self._log.exception("mqtt_message_handler_failed", topic=msg.topic[:120])

    def _handle_publish(
        self, _c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any
    ) -> None:
        future = self._pending.pop(mid, None)
        if future is None or future.done():
            return
        if reason.is_failure:
            fail_quietly(future, PublishRejected(str(reason), reason.value))
        else:
            future.set_result(None)

    def _handle_subscribe(
        self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        future = self._suback.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(codes)

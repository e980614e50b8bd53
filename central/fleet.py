"""The fleet service: MQTT in (presence, state, events, results) -> registry; commands out."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import JsonValue

from central.commands import CommandTracker, PendingCommand, TooManyPending
from central.config import CentralSettings
from central.errors import TimedOut, Unavailable, UnitOffline, UnknownUnit
from central.metrics import Metrics
from central.registry import Outcome, Partition, Registry, UnitRecord, Verdict
from protocol import (
    CenterStatus,
    Command,
    CommandResult,
    Event,
    Message,
    ProtocolError,
    Topic,
    TopicKind,
    UnitState,
    decode,
)
from protocol.commands import CommandName
from protocol.envelope import Stamper
from protocol.events import EventType
from protocol.models import ContractModel, Presence
from protocol.topics import unit_filter
from protocol.version import VERSION
from runtime.mqtt import MqttError, MqttLink, Subscription, Will

RECENT_EVENTS = 1000
GAP_CHECK_S = 0.5
LOGS_PER_REASON_PER_MINUTE = 10


class CommandNotSent(Unavailable):
    """The broker did not take the command (unreachable, or too many in flight)."""


class NoResultInTime(TimedOut):
    """The unit gave no final result in time (it may still have accepted the command)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A command's final result and how long it took, sent to answered."""

    cmd_id: str
    result: CommandResult
    rtt_s: float


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    id: str
    unit_id: str
    event: Event
    ts: float
    received: float


class LogBudget:
    """At most `limit` log lines per key per minute, so a flood of garbage cannot flood logs."""

    def __init__(self, limit: int = LOGS_PER_REASON_PER_MINUTE) -> None:
        self._limit = limit
        self._windows: dict[str, tuple[float, int]] = {}

    def allow(self, key: str, now: float) -> bool:
        start, used = self._windows.get(key, (now, 0))
        if now - start >= 60.0:
            start, used = now, 0
        self._windows[key] = (start, used + 1)
        return used < self._limit


def _nobody(_unit_id: str) -> bool:
    return False


class FleetService:
    def __init__(
        self,
        settings: CentralSettings,
        metrics: Metrics,
        mqtt_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        fleet = settings.fleet
        self.settings = settings
        self.metrics = metrics
        self.registry = Registry(Partition(fleet.partition_index, fleet.partition_count))
        self.commands = CommandTracker()
        self.recent_events: deque[ReceivedEvent] = deque(maxlen=RECENT_EVENTS)
        self.event_listeners: list[Callable[[ReceivedEvent], None]] = []
        # Called with the unit id when a unit starts a new connection (not a retained birth).
        self.birth_listeners: list[Callable[[str], None]] = []
        # Called with the unit id when its presence changed, or with its new state.
        self.unit_listeners: list[Callable[[str, UnitState | None], None]] = []
        self.clock = clock
        # A unit whose certificate is revoked: nothing it left on the broker is believed.
        self.shut_out: Callable[[str], bool] = _nobody
        self._log = structlog.get_logger("rtcc.fleet").bind(center_id=settings.center_id)
        self._log_budget = LogBudget()
        self._status_topic = Topic.center_status(settings.center_id)
        self._counters = {kind: metrics.messages.labels(kind.value) for kind in TopicKind}
        self._background: set[asyncio.Task[None]] = set()
        self._stamper = Stamper()
        settings_urls = settings.model_copy(update={"mqtt_url": mqtt_url}).broker_urls()
        self.link = MqttLink(
            client_id=f"{settings.center_id}-fleet-{fleet.partition_index}",
            urls=settings_urls,
            tuning=settings.mqtt,
            subscriptions=[
                Subscription(unit_filter(kind))
                for kind in (TopicKind.PRESENCE, TopicKind.STATE, TopicKind.EVENT, TopicKind.RESULT)
            ],
            on_message=self._on_message,
            on_connected=self._on_connected,
            will=self._will,
        )
        metrics.bind_gauges(
            online=self.registry.online_count,
            known=lambda: len(self.registry),
            connected=lambda: float(self.link.connected.is_set()),
        )

    # ---- own status -------------------------------------------------------------------

    def _stamp(self, topic: Topic, body: ContractModel) -> bytes:
        return self._stamper.stamp(topic, body, self.clock())

    def _status(self, online: bool) -> CenterStatus:
        return CenterStatus(online=online, version=VERSION, center_id=self.settings.center_id)

    def _will(self) -> Will:
        # Milliseconds since the epoch: grows with every connection, across restarts.
        now = self.clock()
        will = self._stamper.session(int(now * 1000), self._status_topic, self._status(False), now)
        return Will(str(self._status_topic), will)

    async def _on_connected(self, _session_present: bool) -> None:
        self.link.publish(
            str(self._status_topic),
            self._stamp(self._status_topic, self._status(True)),
            retain=True,
        )

    def announce(self, event_type: EventType, data: dict[str, JsonValue]) -> None:
        """Publish one of the center's own events (QoS 1, not retained) for other center
        processes and pages; dropped with a warning when the broker is unreachable."""
        topic = Topic.center_event(self.settings.center_id, event_type)
        try:
            self.link.publish(str(topic), self._stamp(topic, Event(type=event_type, data=data)))
        except MqttError as exc:
            self._log.warning("center_event_not_sent", event=event_type, error=str(exc))

    def goodbye(self) -> tuple[str, bytes, bool]:
        return str(self._status_topic), self._stamp(self._status_topic, self._status(False)), True

    # ---- ingest -----------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        now = self.clock()
        admitted = self._admit(topic, payload, retained, now)
        if admitted is None:
            return
        message, verdict = admitted
        kind = message.topic.kind
        unit_id = message.topic.subject
        envelope = message.envelope
        self._counters[kind].inc()
        if not retained and kind in (TopicKind.STATE, TopicKind.EVENT):
            self.metrics.ingest_latency.observe(max(0.0, now - envelope.ts))
        if verdict.presence_changed:
            self._log.info(
                "unit_presence",
                unit_id=unit_id,
                online=envelope.body.online,
                reason=envelope.body.reason,
                sid=envelope.sid,
            )
        if kind is TopicKind.EVENT:
            received = ReceivedEvent(str(envelope.id), unit_id, envelope.body, envelope.ts, now)
            self.recent_events.append(received)
            for listener in self.event_listeners:
                listener(received)
        elif kind is TopicKind.RESULT:
            self._finish_command(unit_id, envelope.body, now)
        else:
            self._unit_changed(message, retained)
        if verdict.gap:
            self._on_gap(unit_id, now)

    def _unit_changed(self, message: Message, retained: bool) -> None:
        """A presence or state was applied: tell who listens."""
        unit_id = message.topic.subject
        body = message.envelope.body
        if isinstance(body, Presence) and not retained and body.reason == "birth":
            for born in self.birth_listeners:
                born(unit_id)
        state = body if isinstance(body, UnitState) else None
        for changed in self.unit_listeners:
            changed(unit_id, state)

    def _admit(
        self, topic: str, payload: bytes, retained: bool, now: float
    ) -> tuple[Message, Verdict] | None:
        """The message and what the registry made of it, if it is new and ours; whatever
        is not is counted (and rejects logged) here."""
        try:
            message = decode(topic, payload)
        except ProtocolError as exc:
            self._reject(exc.reason, str(exc), topic, now)
            return None
        if message.topic.kind in (TopicKind.COMMAND, TopicKind.CENTER_STATUS):
            self._reject("unexpected_topic", "not an agent->center topic", topic, now)
            return None
        if self.shut_out(message.topic.subject):
            self._reject("unit_shut_out", "the unit's certificate is revoked", topic, now)
            return None
        verdict = self.registry.apply(message, payload, now, retained)
        if verdict.outcome is Outcome.APPLIED:
            return message, verdict
        if verdict.outcome is Outcome.DUPLICATE:
            self.metrics.duplicates.inc()
        elif verdict.outcome is Outcome.STALE:
            self.metrics.stale.inc()
        elif verdict.outcome is Outcome.REFUSED:
            self._reject("registry_full", "too many units", topic, now)
        return None

    def unit_shut_out(self, unit_id: str) -> None:
        """The unit was thrown off the broker for good (revoked): the broker sends no Will
        for it, so the center marks it offline itself."""
        if self.registry.mark_offline(unit_id, self.clock()):
            self._log.info("unit_presence", unit_id=unit_id, online=False, reason="revoked")
            for changed in self.unit_listeners:
                changed(unit_id, None)

    def _on_gap(self, unit_id: str, now: float) -> None:
        self.metrics.seq_gaps.inc()
        if self.registry.rebirth_due(unit_id, now):
            self._request_rebirth(unit_id)

    async def run(self) -> None:
        """The MQTT link, and the check for sequence holes that never closed."""
        link = asyncio.create_task(self.link.run(), name="fleet-mqtt")
        try:
            while not link.done():
                await asyncio.sleep(GAP_CHECK_S)
                now = self.clock()
                for unit_id in self.registry.expire_holes(now):
                    self._on_gap(unit_id, now)
            await link
        finally:
            link.cancel()
            for task in self._background:
                task.cancel()
            await asyncio.gather(link, *self._background, return_exceptions=True)

    def _reject(self, reason: str, detail: str, topic: str, now: float) -> None:
        self.metrics.rejected.labels(reason).inc()
        if self._log_budget.allow(reason, now):
            self._log.warning(
                "message_rejected", reason=reason, detail=detail[:200], topic=topic[:120]
            )

    def _finish_command(self, unit_id: str, result: Any, now: float) -> None:
        pending = self.commands.resolve(unit_id, result)
        if pending is None:
            return
        self.metrics.commands.labels(result.status.value).inc()
        self.metrics.command_rtt.observe(max(0.0, now - pending.sent_at))

    def _request_rebirth(self, unit_id: str) -> None:
        self.metrics.rebirths.inc()
        self._log.info("rebirth_requested", unit_id=unit_id)
        task = asyncio.get_running_loop().create_task(
            self._send_quietly(unit_id, CommandName.REBIRTH, self.settings.fleet.rebirth_ttl_s)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_quietly(self, unit_id: str, name: str, ttl_s: float) -> None:
        try:
            await self.call(unit_id, name, {}, ttl_s)
        except CommandNotSent as exc:
            self._log.warning("command_send_failed", unit_id=unit_id, command=name, error=str(exc))
        except NoResultInTime as exc:
            self._log.warning("command_unanswered", unit_id=unit_id, cmd_id=exc.context["cmd_id"])

    # ---- commands ---------------------------------------------------------------------

    def online_unit(self, unit_id: str) -> UnitRecord:
        """The unit's record; UnknownUnit or UnitOffline when it cannot be commanded."""
        record = self.registry.get(unit_id)
        if record is None:
            raise UnknownUnit(unit_id)
        if not record.online:
            raise UnitOffline(unit_id)
        return record

    async def call(
        self,
        unit_id: str,
        name: str,
        args: dict[str, JsonValue],
        timeout_s: float,
        ttl_s: float | None = None,
    ) -> Answer:
        """Send a command (valid at the unit for `ttl_s`, default `timeout_s`) and wait up
        to `timeout_s` for its final result. Raises CommandNotSent or NoResultInTime."""
        try:
            pending = await self.send_command(
                unit_id, name, args, timeout_s if ttl_s is None else ttl_s
            )
        except (MqttError, TooManyPending) as exc:
            raise CommandNotSent(f"cannot send command: {exc}") from None
        try:
            result = await asyncio.wait_for(asyncio.shield(pending.result), timeout_s)
        except TimeoutError:
            self.metrics.commands.labels("timeout").inc()
            raise NoResultInTime(
                "no final result in time", cmd_id=pending.cmd_id, accepted=pending.accepted
            ) from None
        finally:
            self.commands.close(pending.cmd_id)
        return Answer(pending.cmd_id, result, self.clock() - pending.sent_at)

    async def tell(self, unit_id: str, name: str) -> None:
        """Send a command nobody waits on the result of; one the broker does not take is
        given up quietly (the center asks again when it matters)."""
        try:
            pending = await self.send_command(unit_id, name, {}, self.settings.fleet.command_ttl_s)
        except (MqttError, TooManyPending) as exc:
            self._log.info("command_not_sent", unit_id=unit_id, command=name, error=str(exc))
            return
        self.commands.close(pending.cmd_id)

    async def send_command(
        self, unit_id: str, name: str, args: dict[str, JsonValue], ttl_s: float
    ) -> PendingCommand:
        """Publish a command and wait for the broker's PUBACK; the result arrives on
        `pending.result`. The caller closes the pending command when done waiting."""
        now = self.clock()
        cmd_id = uuid.uuid4().hex
        topic = Topic.command(unit_id, name)
        command = Command(
            name=name,
            cmd_id=cmd_id,
            reply_to=str(Topic.result(unit_id)),
            expires_at=now + ttl_s,
            args=args,
        )
        pending = self.commands.open(unit_id, cmd_id, name, now)
        try:
            await self.link.publish(
                str(topic), self._stamp(topic, command), expiry_s=math.ceil(ttl_s)
            )
        except BaseException:
            self.commands.close(cmd_id)
            raise
        self._log.info("command_sent", unit_id=unit_id, cmd_id=cmd_id, command=name)
        return pending

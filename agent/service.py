"""The agent's asyncio shell: device polling, MQTT presence/state, outbox, commands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import JsonValue, ValidationError

from agent import __version__
from agent.bodycam import BodycamConnection
from agent.commands import CommandGate
from agent.config import AgentSettings
from agent.device import with_bodycam
from agent.outbox import Outbox, OutboxRow
from agent.pump import OutboxPump
from agent.state import AgentFacts, StatePolicy, build_state
from agent.store import Meta, SeenCommands, open_store
from agent.stream_keeper import StreamKeeper, StreamNotLive
from agent.triggers import Action, TriggerPolicy
from firmware_bridge import DeviceStatus, StatusSource
from firmware_bridge.device import DeviceEvent
from firmware_bridge.link.messages import Haptic, Record, Watched
from protocol import (
    Command,
    CommandResult,
    CommandStatus,
    Envelope,
    Event,
    Health,
    Presence,
    RuntimeConfig,
    Topic,
    UnitState,
    encode,
)
from protocol.codec import decode_body
from protocol.models import ContractModel
from protocol.streams import StreamStartArgs
from protocol.topics import TopicKind, parse_topic, unit_filter
from runtime.mqtt import MqttLink, NotConnected, Subscription, Will
from runtime.netwatch import NetworkChange, NetworkWatch
from runtime.supervise import TaskGroup

if TYPE_CHECKING:
    from agent.evidence.manager import EvidenceManager

Handler = Callable[[Command], Awaitable[dict[str, JsonValue]]]
COMMAND_QUEUE_SIZE = 64
COMMAND_TIMEOUT_S = 30.0


class CommandFailed(Exception):
    """A handler's way to answer `failed` with a reason."""


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        source: StatusSource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.unit_id = settings.unit_id
        self._source = source
        self._clock = clock
        self._log = structlog.get_logger("rtcc.agent").bind(unit_id=self.unit_id)
        self._conn = open_store(settings.data_dir / "agent.db")
        self._meta = Meta(self._conn)
        self.outbox = Outbox(self._conn, settings.outbox.max_rows, settings.outbox.max_bytes)
        stored = self._meta.get("runtime_config")
        config = RuntimeConfig.model_validate(stored) if stored else settings.runtime
        self._policy = StatePolicy(config)
        self._handlers: dict[str, Handler] = {
            "ping": self._cmd_ping,
            "rebirth": self._cmd_rebirth,
            "config.set": self._cmd_config_set,
            "stream.start": self._cmd_stream_start,
            "stream.stop": self._cmd_stream_stop,
            "recording.start": self._cmd_recording_start,
            "recording.stop": self._cmd_recording_stop,
            "snapshot": self._cmd_snapshot,
            "evidence.status": self._cmd_evidence_status,
        }
        self.evidence: EvidenceManager | None = None
        self.streams = StreamKeeper(
            settings,
            self._meta,
            lambda: self.evidence.capture if self.evidence else None,
            self._watched,
            clock,
        )
        self._triggers = TriggerPolicy(settings.triggers)
        device = settings.device
        self.bodycam = (
            BodycamConnection(
                device.link, self._on_device_events, device.baud, device.stale_after_s
            )
            if device.link
            else None
        )
        self._gate = CommandGate(self.unit_id, self._handlers, SeenCommands(self._conn).add_if_new)
        self.link = MqttLink(
            client_id=self.unit_id,
            urls=settings.broker_urls(),
            tuning=settings.mqtt,
            subscriptions=[Subscription(unit_filter(TopicKind.COMMAND, self.unit_id))],
            on_message=self._on_command,
            on_connected=self._on_connected,
            will=self._will,
            username=self.unit_id,
        )
        self.pump = OutboxPump(self.outbox, self.link, self._render_row)
        self._commands: asyncio.Queue[Command] = asyncio.Queue(COMMAND_QUEUE_SIZE)
        self._tasks = TaskGroup()
        self._sid = 0
        self._seq = 0
        self._started = clock()
        self._device: DeviceStatus | None = None
        self.commands_rejected = 0

    # ---- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._poll_device()
        self._tasks.spawn("mqtt", self.link.run, supervise=False)
        self._tasks.spawn("outbox", self.pump.run)
        self._tasks.spawn("device", self._device_loop)
        if self.bodycam is not None:
            self._tasks.spawn("bodycam", self.bodycam.run)
        if self.settings.evidence.enabled:
            from agent.evidence.manager import EvidenceManager  # noqa: PLC0415 (media stack)

            self.evidence = EvidenceManager(
                self.settings, lambda kind, data: self.record_event(kind, data, self._clock())
            )
            self._tasks.spawn("evidence", self.evidence.run)
        self._tasks.spawn("commands", self._command_loop)
        self._tasks.spawn("netwatch", NetworkWatch(self._on_network_change).run)
        self.streams.resume()
        self._log.info("agent_started", version=__version__, outbox_rows=self.outbox.rows)

    async def stop(self) -> None:
        """Say goodbye (retained offline presence), disconnect, stop every task."""
        await self.streams.close()
        if self.evidence is not None:
            # Finish the open segment so a clean stop leaves nothing for recovery to quarantine.
            await self._tasks.cancel("evidence")
            self.evidence.recorder.cut()
        goodbye = (
            str(Topic.presence(self.unit_id)),
            self._stamp(Topic.presence(self.unit_id), Presence(online=False, reason="shutdown")),
            True,
        )
        await self.link.close(final=[goodbye])
        await self._tasks.close()
        self._conn.close()
        self._log.info("agent_stopped")

    # ---- what the unit says -----------------------------------------------------------

    def record_event(self, event_type: str, data: dict[str, JsonValue], ts: float) -> None:
        """Durably queue an event for the center."""
        self._enqueue(Topic.event(self.unit_id, event_type), Event(type=event_type, data=data), ts)

    def _reply(self, result: CommandResult) -> None:
        self._enqueue(Topic.result(self.unit_id), result, self._clock())

    def _enqueue(self, topic: Topic, body: ContractModel, ts: float) -> None:
        self.outbox.put(str(uuid.uuid4()), str(topic), ts, body.model_dump_json().encode())
        self.pump.notify()

    def _stamp(
        self,
        topic: Topic,
        body: ContractModel,
        msg_id: uuid.UUID | None = None,
        ts: float | None = None,
    ) -> bytes:
        self._seq += 1
        envelope: Envelope[Any] = Envelope(
            id=msg_id or uuid.uuid4(),
            sid=self._sid,
            seq=self._seq,
            ts=self._clock() if ts is None else ts,
            body=body,
        )
        return encode(topic, envelope)

    def _render_row(self, row: OutboxRow) -> tuple[str, bytes]:
        topic = parse_topic(row.topic)
        body = decode_body(topic.kind, row.body)
        return row.topic, self._stamp(topic, body, uuid.UUID(row.msg_id), row.ts)

    def _will(self) -> Will:
        # Called before every connection attempt: each connection is a new session.
        self._sid = self._meta.next_session_id()
        self._seq = 0
        topic = Topic.presence(self.unit_id)
        envelope: Envelope[Presence] = Envelope(
            sid=self._sid, seq=0, ts=self._clock(), body=Presence(online=False, reason="lwt")
        )
        return Will(str(topic), encode(topic, envelope))

    async def _on_connected(self, _session_present: bool) -> None:
        if self.link.connects > 1 and not self.streams.live:
            # The connection was lost and the stream is not up either: rebuild it now
            # rather than wait for its own retry.
            self.streams.path_changed("mqtt reconnected")
        self._publish_presence("birth")
        self._publish_state(force=True)
        self.pump.notify()

    def _publish_presence(self, reason: Literal["birth", "rebirth"]) -> None:
        topic = Topic.presence(self.unit_id)
        body = Presence(online=True, reason=reason)
        self.link.publish(str(topic), self._stamp(topic, body), retain=True)

    def current_state(self) -> UnitState | None:
        if self._device is None:
            return None
        facts = AgentFacts(
            version=__version__,
            uptime_s=max(0.0, self._clock() - self._started),
            streaming=self.streams.live,
            uplink=self.streams.uplink,
            recording=self.evidence is not None and self.evidence.recording,
            storage_full=self.evidence is not None and self.evidence.storage_full,
            health=Health(
                outbox_rows=self.outbox.rows,
                outbox_dropped=self.outbox.dropped,
                mqtt_connects=self.link.connects,
                commands_rejected=self.commands_rejected,
            ),
            config=self._policy.config,
        )
        return build_state(self._device, facts)

    def _publish_state(self, force: bool = False) -> None:
        state = self.current_state()
        now = self._clock()
        if state is None or not (force or self._policy.due(now, state)):
            return
        topic = Topic.state(self.unit_id)
        try:
            self.link.publish(str(topic), self._stamp(topic, state), retain=True)
        except NotConnected:
            return
        self._policy.published(now, state)

    # ---- device -----------------------------------------------------------------------

    def _poll_device(self) -> None:
        now = self._clock()
        status, events = self._source.poll(now)
        if self.bodycam is not None:
            status = with_bodycam(status, self.bodycam.state, now)
        self._device = status
        if self.evidence is not None and status.fix is not None:
            self.evidence.add_gps(status.fix.ts, status.fix.lat, status.fix.lon)
        self._on_device_events(events)

    def _on_device_events(self, events: list[DeviceEvent]) -> None:
        """Every device event goes to the center; those a trigger rule names also act."""
        for event in events:
            self.record_event(event.type, dict(event.data), event.ts)
            actions = self._triggers.actions(event, self._clock())
            if actions:
                self._act(event, actions)

    def _act(self, event: DeviceEvent, actions: frozenset[Action]) -> None:
        recording = False
        if Action.RECORD in actions:
            if self.bodycam is not None:
                recording = self.bodycam.send(Record(on=True))
            if self.evidence is not None:
                self.evidence.start_recording(event.type)
                recording = True
        # The center answers a stream request with stream.start (and the token it needs).
        kind = "alert" if Action.ALERT in actions else "stream.request"
        if Action.ALERT in actions or Action.STREAM in actions:
            data: dict[str, JsonValue] = {
                "trigger": event.type,
                "actions": [str(a) for a in sorted(actions)],
                "stream": Action.STREAM in actions,
                "recording": recording,
            }
            self.record_event(kind, data, event.ts)
        self._log.info("trigger_fired", trigger=event.type, actions=sorted(actions))

    async def _device_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            self._poll_device()
            self._publish_state()
            await self.streams.expire()

    # ---- commands ---------------------------------------------------------------------

    def _on_command(self, topic: str, payload: bytes, _retained: bool) -> None:
        admission = self._gate.admit(topic, payload, self._clock())
        if admission.reason is not None:
            self.commands_rejected += admission.reason != "duplicate"
            self._log.warning("command_not_run", reason=admission.reason, topic=topic[:120])
        if admission.run is not None:
            try:
                self._commands.put_nowait(admission.run)
            except asyncio.QueueFull:
                self._reply(
                    CommandResult(
                        cmd_id=admission.run.cmd_id, status=CommandStatus.REJECTED, detail="busy"
                    )
                )
                return
        if admission.reply is not None:
            self._reply(admission.reply)

    async def _command_loop(self) -> None:
        while True:
            command = await self._commands.get()
            log = self._log.bind(cmd_id=command.cmd_id, command=command.name)
            try:
                data = await asyncio.wait_for(
                    self._handlers[command.name](command), COMMAND_TIMEOUT_S
                )
                result = CommandResult(cmd_id=command.cmd_id, status=CommandStatus.DONE, data=data)
                log.info("command_done")
            except CommandFailed as exc:
                result = CommandResult(
                    cmd_id=command.cmd_id, status=CommandStatus.FAILED, detail=str(exc)[:1000]
                )
                log.warning("command_failed", detail=str(exc))
            except Exception as exc:
                result = CommandResult(
                    cmd_id=command.cmd_id,
                    status=CommandStatus.FAILED,
                    detail=f"internal error: {type(exc).__name__}",
                )
                log.exception("command_crashed")
            self._reply(result)

    async def _cmd_ping(self, _command: Command) -> dict[str, JsonValue]:
        return {"pong": self._clock(), "sid": self._sid}

    async def _cmd_rebirth(self, _command: Command) -> dict[str, JsonValue]:
        try:
            self._publish_presence("rebirth")
        except NotConnected as exc:
            raise CommandFailed("not connected") from exc
        self._publish_state(force=True)
        return {"sid": self._sid}

    async def _cmd_stream_start(self, command: Command) -> dict[str, JsonValue]:
        try:
            args = StreamStartArgs.model_validate(command.args)
        except ValidationError as exc:
            raise CommandFailed(f"stream.start: {_first_error(exc)}") from None
        try:
            await self.streams.start(args)
        except (ValueError, StreamNotLive) as exc:
            raise CommandFailed(str(exc)) from None
        return {"stream_id": args.stream_id}

    async def _cmd_stream_stop(self, _command: Command) -> dict[str, JsonValue]:
        return {"stopped": await self.streams.stop()}

    def _on_network_change(self, changes: list[NetworkChange]) -> None:
        """A handover (new address, route or link): reconnect and rebuild now rather than
        wait ~30 s for timeouts to tell."""
        self._log.warning("network_changed", changes=[str(c) for c in changes[:8]])
        self.streams.path_changed("network changed")
        self.link.reconnect("network changed")

    def _watched(self, watched: bool) -> None:
        self._tell_officer(watched)
        self._publish_state(force=True)

    def _tell_officer(self, watched: bool) -> None:
        """The body-cam's "being watched" light, and a short buzz when the center joins."""
        if self.bodycam is None:
            return
        self.bodycam.send(Watched(on=watched))
        if watched:
            self.bodycam.send(Haptic(pattern=1, duration_ms=300))

    def _evidence(self) -> EvidenceManager:
        if self.evidence is None:
            raise CommandFailed("evidence recording is disabled on this unit")
        return self.evidence

    async def _cmd_recording_start(self, command: Command) -> dict[str, JsonValue]:
        trigger = command.args.get("trigger", "command")
        recording_id = self._evidence().start_recording(str(trigger)[:64])
        if self.bodycam is not None:
            self.bodycam.send(Record(on=True))
        self._publish_state(force=True)
        return {"recording_id": recording_id}

    async def _cmd_recording_stop(self, _command: Command) -> dict[str, JsonValue]:
        recording_id = self._evidence().stop_recording()
        if self.bodycam is not None:
            self.bodycam.send(Record(on=False))
        self._publish_state(force=True)
        return {"recording_id": recording_id}

    async def _cmd_snapshot(self, _command: Command) -> dict[str, JsonValue]:
        try:
            return self._evidence().snapshot()
        except LookupError as exc:
            raise CommandFailed(str(exc)) from None

    async def _cmd_evidence_status(self, _command: Command) -> dict[str, JsonValue]:
        evidence = self._evidence()
        return await asyncio.to_thread(evidence.status)

    async def _cmd_config_set(self, command: Command) -> dict[str, JsonValue]:
        merged = {**self._policy.config.model_dump(), **command.args}
        try:
            config = RuntimeConfig.model_validate(merged)
        except ValidationError as exc:
            raise CommandFailed(_first_error(exc)) from None
        self._meta.put("runtime_config", config.model_dump())
        self._policy.config = config
        self._publish_state(force=True)
        return {"config": config.model_dump()}


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"

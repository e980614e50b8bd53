"""The agent's asyncio shell: device polling, MQTT presence/state, outbox, commands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import structlog
from pydantic import JsonValue

from agent.bodycam import BodycamConnection
from agent.commands import CommandGate
from agent.config import AgentSettings
from agent.device import with_bodycam
from agent.handlers import HANDLERS, run_command
from agent.health import AgentHealth
from agent.outbox import Outbox, OutboxRow
from agent.pump import OutboxPump
from agent.renewal import Renewer, not_renewing, recover_pair
from agent.state import AgentFacts, StatePolicy, build_state
from agent.store import Meta, SeenCommands, open_store
from agent.stream_keeper import StreamKeeper
from agent.triggers import AlertIntent, Intent, RecordIntent, TriggerPolicy
from agent.vehicle import Vehicle
from firmware_bridge import DeviceStatus
from firmware_bridge.device import DeviceEvent
from protocol import (
    VERSION,
    Command,
    CommandResult,
    CommandStatus,
    Event,
    Health,
    Presence,
    RuntimeConfig,
    Stamper,
    Topic,
    UnitState,
)
from protocol.codec import decode_body
from protocol.models import ContractModel
from protocol.topics import TopicKind, parse_topic, unit_filter
from runtime.mqtt import MqttLink, NotConnected, Subscription, Will
from runtime.netwatch import NetworkWatch
from runtime.rtnetlink import NetworkChange
from runtime.supervise import TaskGroup

if TYPE_CHECKING:
    from agent.evidence.manager import EvidenceManager

COMMAND_QUEUE_SIZE = 64


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        vehicle: Vehicle,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.unit_id = settings.unit_id
        self._vehicle = vehicle
        self._clock = clock
        self._log = structlog.get_logger("rtcc.agent").bind(unit_id=self.unit_id)
        self._conn = open_store(settings.data_dir / "agent.db")
        self._meta = Meta(self._conn)
        self.outbox = Outbox(self._conn, settings.outbox.max_rows, settings.outbox.max_bytes)
        stored = self._meta.get("runtime_config")
        config = RuntimeConfig.model_validate(stored) if stored else settings.runtime
        self._policy = StatePolicy(config)
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
        self._gate = CommandGate(self.unit_id, HANDLERS, SeenCommands(self._conn).add_if_new)
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
        self.renewal = None if not_renewing(settings) else Renewer(settings, self.link, clock)
        self._commands: asyncio.Queue[Command] = asyncio.Queue(COMMAND_QUEUE_SIZE)
        self._tasks = TaskGroup()
        self._stamper = Stamper()
        self._started = clock()
        # The device loop polls every poll_interval_s: one that stops completing its rounds
        # is wedged, and the systemd watchdog is no longer fed.
        self.health = AgentHealth(["device"], settings.health.stall_after_s, self._started)
        self._device: DeviceStatus | None = None
        self.commands_rejected = 0

    # ---- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._poll_device()
        # Before the first connection reads the certificate files.
        recover_pair(self.settings)
        self._tasks.spawn("mqtt", self.link.run, supervise=False)
        counted = self.health.restarts.counted
        if self.renewal is not None:
            self._tasks.spawn("renewal", counted("renewal", self.renewal.run))
        else:
            self._log.info("certificate_renewal_off", reason=not_renewing(self.settings))
        self._tasks.spawn("outbox", counted("outbox", self.pump.run))
        self._tasks.spawn("device", counted("device", self._device_loop))
        self._tasks.spawn("vehicle", self._vehicle.run, supervise=False)
        if self.bodycam is not None:
            self._tasks.spawn("bodycam", counted("bodycam", self.bodycam.run))
        if self.settings.evidence.enabled:
            from agent.evidence.manager import EvidenceManager  # noqa: PLC0415 (media stack)

            self.evidence = EvidenceManager(
                self.settings, lambda kind, data: self.record_event(kind, data, self._clock())
            )
            self._tasks.spawn("evidence", counted("evidence", self.evidence.run))
        self._tasks.spawn("commands", counted("commands", self._command_loop))
        netwatch = NetworkWatch(self._on_network_change)
        self._tasks.spawn("netwatch", counted("netwatch", netwatch.run))
        self.streams.resume()
        self._log.info("agent_started", version=VERSION, outbox_rows=self.outbox.rows)

    async def stop(self) -> None:
        """Say goodbye (retained offline presence), disconnect, stop every task."""
        await self.streams.close()
        if self.evidence is not None:
            # Finish the open segment so a clean stop leaves nothing for recovery to quarantine.
            await self._tasks.cancel("evidence")
            self.evidence.recorder.cut()
        presence = Topic.presence(self.unit_id)
        goodbye = self._stamp(presence, Presence(online=False, reason="shutdown"))
        await self.link.close(final=[(str(presence), goodbye, True)])
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

    def _stamp(self, topic: Topic, body: ContractModel) -> bytes:
        return self._stamper.stamp(topic, body, self._clock())

    def _render_row(self, row: OutboxRow) -> tuple[str, bytes]:
        topic = parse_topic(row.topic)
        body = decode_body(topic.kind, row.body)
        return row.topic, self._stamper.stamp(topic, body, row.ts, uuid.UUID(row.msg_id))

    def _will(self) -> Will:
        # Called before every connection attempt: each connection is a new session.
        topic = Topic.presence(self.unit_id)
        will = Presence(online=False, reason="lwt")
        sid = self._meta.next_session_id()
        return Will(str(topic), self._stamper.session(sid, topic, will, self._clock()))

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
        now = self._clock()
        facts = AgentFacts(
            version=VERSION,
            uptime_s=max(0.0, now - self._started),
            fix=self._vehicle.fix_kind(now),
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
        status, events = self._vehicle.poll(now)
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
            intents = self._triggers.intents(event, self._clock())
            recording = False
            for intent in intents:
                recording = self._carry_out(intent, recording)
            if intents:
                self._log.info("trigger_fired", trigger=event.type, intents=len(intents))

    def _carry_out(self, intent: Intent, recording: bool) -> bool:
        """Returns whether evidence recording started."""
        match intent:
            case RecordIntent(trigger):
                started = self.camera_record(True)
                if self.evidence is not None:
                    self.evidence.start_recording(trigger)
                    started = True
                return started
            case AlertIntent(body, ts):
                body = body.model_copy(update={"recording": recording})
                self.record_event(body.event_type, body.model_dump(mode="json"), ts)
        return recording

    async def _device_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            self._poll_device()
            self._publish_state()
            await self.streams.expire()
            self.health.beats.beat("device", self._clock())

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
            self._reply(await run_command(self, command, self._log))

    # ---- what handlers may use (agent.handlers.Unit) ------------------------------------

    @property
    def sid(self) -> int:
        return self._stamper.sid

    @property
    def config(self) -> RuntimeConfig:
        return self._policy.config

    def now(self) -> float:
        return self._clock()

    def evidence_or_none(self) -> EvidenceManager | None:
        return self.evidence

    def rebirth(self) -> None:
        self._publish_presence("rebirth")
        self._publish_state(force=True)

    def camera_record(self, on: bool) -> bool:
        """Ask the body-cam to record (or stop); False when no camera is connected."""
        return self.bodycam is not None and self.bodycam.record(on)

    def save_config(self, config: RuntimeConfig) -> None:
        self._meta.put("runtime_config", config.model_dump())
        self._policy.config = config
        self._publish_state(force=True)

    def state_changed(self) -> None:
        self._publish_state(force=True)

    def _on_network_change(self, changes: list[NetworkChange]) -> None:
        """A handover (new address, route or link): reconnect and rebuild now rather than
        wait ~30 s for timeouts to tell."""
        self._log.warning("network_changed", changes=[str(c) for c in changes[:8]])
        self.streams.path_changed("network changed", new_network=True)
        self.link.reconnect("network changed")

    def _watched(self, watched: bool) -> None:
        if self.bodycam is not None:
            self.bodycam.watched(watched)
        self._publish_state(force=True)

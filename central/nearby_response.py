"""What the center does around a unit whose trigger fires, by policy (both off by default):
the online units near it start recording too (group recording), and its live stream is
shared with the patrols near it (auto-share). Each is audited as the center's own act."""

from __future__ import annotations

import asyncio

import structlog
from pydantic import JsonValue

from central.alerts import AlertDesk, AlertView
from central.console_settings import ConsoleSettings
from central.db.audit_chain import AuditEntry
from central.errors import CenterError
from central.fleet import FleetService
from central.gate import Gate
from central.shares import Scene, ShareRequest, ShareService
from protocol.commands import CommandName, RecordingStartArgs
from runtime.supervise import BoundedTasks

log = structlog.get_logger("rtcc.nearby")
COMMAND_TIMEOUT_S = 10.0
MAX_PENDING = 200
ACTOR = "center"


class NearbyResponse:
    def __init__(
        self,
        fleet: FleetService,
        desk: AlertDesk,
        shares: ShareService,
        gate: Gate,
        settings: ConsoleSettings,
    ) -> None:
        self.fleet = fleet
        self.shares = shares
        self.gate = gate
        self.settings = settings
        self.hub = desk.hub
        self._tasks = BoundedTasks("nearby-response", MAX_PENDING)
        desk.trigger_listeners.append(self.on_trigger)
        desk.live_listeners.append(self.on_live)

    def on_trigger(self, alert: AlertView) -> None:
        policy = self.settings.group_recording
        if alert.trigger is None or policy.radius_for(alert.trigger) is None:
            return
        online = {r.unit_id for r in self.fleet.registry.units() if r.online}
        targets = policy.targets(alert.unit_id, alert.trigger, self.hub.index, online)
        if targets:
            self._tasks.spawn(self._record_with(alert, targets))

    def on_live(self, alert: AlertView) -> None:
        """The alerting unit's stream is live: share it, when the policy says so."""
        policy = self.settings.auto_share
        if alert.stream_id is None or alert.trigger is None or not policy.applies(alert.trigger):
            return
        scene = (
            None if alert.lat is None or alert.lon is None else Scene(lat=alert.lat, lon=alert.lon)
        )
        request = ShareRequest(
            stream_id=alert.stream_id,
            text=f"{alert.kind.replace('_', ' ')}: unit {alert.unit_id}",
            scene=scene,
            radius_m=policy.radius_m,
            ttl_s=policy.ttl_s,
        )
        self._tasks.spawn(self._share(alert, request))

    async def _record_with(self, alert: AlertView, targets: list[str]) -> None:
        args: dict[str, JsonValue] = dict(
            RecordingStartArgs(trigger=f"group:{alert.unit_id}:{alert.trigger}").model_dump()
        )
        results = await asyncio.gather(
            *(self._start_recording(unit_id, args) for unit_id in targets)
        )
        detail: dict[str, JsonValue] = {
            "trigger": alert.trigger,
            "alert_id": alert.id,
            "units": dict(zip(targets, results, strict=True)),
        }
        await asyncio.to_thread(self._audit, "recording.group_start", alert.unit_id, detail)

    async def _start_recording(self, unit_id: str, args: dict[str, JsonValue]) -> str:
        try:
            answer = await self.fleet.call(
                unit_id, CommandName.RECORDING_START, args, COMMAND_TIMEOUT_S
            )
        except CenterError as exc:
            log.warning("group_recording_failed", unit_id=unit_id, error=str(exc))
            return f"failed: {exc}"
        return answer.result.status.value

    async def _share(self, alert: AlertView, request: ShareRequest) -> None:
        try:
            await self.shares.create(f"{ACTOR}:auto-share", request, None)
        except CenterError as exc:
            log.warning("auto_share_failed", unit_id=alert.unit_id, error=str(exc))

    def _audit(self, action: str, obj: str, detail: dict[str, JsonValue]) -> None:
        now = self.fleet.clock()
        self.gate.append(AuditEntry(now, ACTOR, action, "ok", None, "center", obj, detail))

    async def close(self) -> None:
        await self._tasks.close()

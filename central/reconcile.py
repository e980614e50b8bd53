"""Keeps the desired streams live (the asyncio shell around `central.desired.StreamPlan`).

Every half second, and at once when something happens (a unit's birth, a relay worker
restarted, a new request), it asks the relay workers which streams have media, feeds that
to the plan and carries out what the plan says: `stream.start` (with a fresh WHIP token)
to a unit whose stream has no media, `stream.stop` when a request expires. The desired
streams are kept in a file, so a restarted center picks them up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog
from pydantic import TypeAdapter, ValidationError

from central.config import RelaySettings
from central.desired import ActionKind, DesiredStream, DesiredStreamRecord, StreamPlan
from central.errors import Failed
from central.fleet import CommandNotSent, FleetService, NoResultInTime
from central.relay_front import RelayFront, WorkerReports
from protocol import CommandResult, CommandStatus
from protocol.commands import CommandName
from protocol.streams import StreamStartArgs
from runtime.files import write_atomic

log = structlog.get_logger("rtcc.reconcile")
RECONCILE_INTERVAL_S = 0.5
UNWANTED_CHECK_S = 3.0
RECORDS = TypeAdapter(list[DesiredStreamRecord])


class StreamStartFailed(Failed):
    """The unit did not take the stream.start (offline, refused, no answer in time)."""


class Reconciler:
    def __init__(
        self,
        fleet: FleetService,
        relay: RelayFront,
        settings: RelaySettings,
        store: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fleet = fleet
        self.relay = relay
        self.settings = settings
        self.plan = StreamPlan(start_timeout_s=settings.start_timeout_s)
        self._store = store
        self._clock = clock
        self._kick = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.plan.restore(self._load(), clock())
        fleet.birth_listeners.append(self._on_birth)
        relay.on_restart.append(self._on_worker_restart)

    # ---- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), RECONCILE_INTERVAL_S)
            self._kick.clear()
            await self.reconcile()

    def kick(self) -> None:
        self._kick.set()

    async def reconcile(self) -> None:
        reports, unreachable = await self.worker_streams()
        now = self._clock()
        for stream in self.plan.streams():
            if self.relay.home_of(stream.stream_id) in unreachable:
                continue  # unknown is not "no media": a busy worker is no reason to rebuild
            info = reports.get(stream.stream_id)
            self.plan.observe(stream.stream_id, info is not None and info.live, now)
        actions = self.plan.due(now, self._online)
        for action in actions:
            if action.kind is ActionKind.START:
                log.info(
                    "stream_restart",
                    unit_id=action.stream.unit_id,
                    stream_id=action.stream.stream_id,
                    attempt=action.stream.attempts,
                )
                self._spawn(
                    self._start_in_background(action.stream, action.attempt_id, action.republish)
                )
            else:
                log.info("stream_expired", stream_id=action.stream.stream_id)
                self._spawn(self.end(action.stream))
        if any(a.kind is ActionKind.STOP for a in actions):
            self.save()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- what the relay says ------------------------------------------------------------

    async def worker_streams(self) -> WorkerReports:
        return await self.relay.streams()

    async def wait_live(self, stream_id: str, deadline: float) -> bool:
        """Until the relay sees media of the stream."""
        if not await self.relay.wait_live(stream_id, deadline):
            return False
        self.plan.observe(stream_id, True, self._clock())
        return True

    # ---- commands to units --------------------------------------------------------------

    async def start_now(self, stream: DesiredStream) -> None:
        """Ask the unit now (the API's remote start); raises StreamStartFailed."""
        attempt_id, republish = self.plan.begin_start(stream, self._clock())
        await self.start(stream, attempt_id, republish)

    async def start(self, stream: DesiredStream, attempt_id: int, republish: bool) -> None:
        """Send stream.start number `attempt_id` (see `StreamPlan.begin_start`) with a
        fresh WHIP token; raises StreamStartFailed."""
        ok = False
        try:
            result = await self._command(stream, republish, self._clock())
            if result.status is not CommandStatus.DONE:
                raise StreamStartFailed(f"{result.status}: {result.detail}")
            ok = True
        finally:
            self.plan.start_finished(stream.stream_id, ok, self._clock(), attempt_id)

    async def _command(self, stream: DesiredStream, republish: bool, now: float) -> CommandResult:
        token = self.relay.signer.issue(
            "whip", stream.stream_id, now, self.settings.whip_token_ttl_s, who=stream.unit_id
        )
        args = StreamStartArgs(
            stream_id=stream.stream_id, token=token, until=stream.record.until, republish=republish
        )
        try:
            answer = await self.fleet.call(
                stream.unit_id,
                CommandName.STREAM_START,
                args.model_dump(mode="json"),
                self.settings.start_timeout_s,
            )
        except CommandNotSent as exc:
            raise StreamStartFailed(f"broker: {exc}") from None
        except NoResultInTime:
            raise StreamStartFailed("the unit did not answer in time") from None
        return answer.result

    async def _start_in_background(
        self, stream: DesiredStream, attempt_id: int, republish: bool
    ) -> None:
        try:
            await self.start(stream, attempt_id, republish)
        except StreamStartFailed as exc:
            log.warning("stream_start_failed", stream_id=stream.stream_id, error=str(exc))

    async def end(self, stream: DesiredStream) -> None:
        """Tell the unit to stop and drop the stream at its relay worker."""
        await self.fleet.tell(stream.unit_id, CommandName.STREAM_STOP)
        await self.relay.drop(stream.stream_id)

    # ---- desired state ------------------------------------------------------------------

    def want(
        self, unit_id: str, requested_by: str, reason: str, duration_s: float
    ) -> tuple[DesiredStream, bool]:
        now = self._clock()
        existing = self.plan.for_unit(unit_id)
        until_before = existing.record.until if existing else None
        stream, new = self.plan.want(
            unit_id, requested_by, reason, now + duration_s, now, lambda: _stream_id(unit_id)
        )
        self.save()
        if until_before is not None and stream.record.until > until_before:
            # The unit keeps the order's end time itself: tell it the new one.
            self._spawn(self._extend(stream))
        return stream, new

    async def _extend(self, stream: DesiredStream) -> None:
        if stream.start_sent is not None:
            return  # the start in flight already carries the new end time
        attempt_id, _ = self.plan.begin_start(stream, self._clock())
        try:
            await self.start(stream, attempt_id, republish=False)
        except StreamStartFailed as exc:
            log.warning("stream_extend_failed", stream_id=stream.stream_id, error=str(exc))

    def forget(self, stream_id: str) -> DesiredStream | None:
        stream = self.plan.remove(stream_id)
        if stream is not None:
            self.save()
        return stream

    def save(self) -> None:
        """Write the desired streams atomically (a crash leaves the old or the new file)."""
        write_atomic(self._store, RECORDS.dump_json(self.plan.records()))

    def _load(self) -> list[DesiredStreamRecord]:
        try:
            return RECORDS.validate_json(self._store.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValidationError, json.JSONDecodeError) as exc:
            aside = self._store.with_suffix(".unreadable")
            with contextlib.suppress(OSError):
                self._store.replace(aside)
            log.error("desired_streams_unreadable", path=str(self._store), error=str(exc)[:200])
            return []

    # ---- what happens around ------------------------------------------------------------

    def _online(self, unit_id: str) -> bool:
        record = self.fleet.registry.get(unit_id)
        return bool(record and record.online)

    def _on_birth(self, unit_id: str) -> None:
        self.plan.unit_born(unit_id, self._clock())
        self.kick()
        if self.plan.for_unit(unit_id) is None:
            self._spawn(self._stop_unwanted(unit_id))

    async def _stop_unwanted(self, unit_id: str) -> None:
        """A unit that comes back publishing a stream the center no longer wants (it was
        stopped while the unit was away) is told to stop."""
        await asyncio.sleep(UNWANTED_CHECK_S)  # its state follows its birth
        record = self.fleet.registry.get(unit_id)
        state = record.state if record is not None else None
        if self.plan.for_unit(unit_id) is not None or state is None or not state.camera.streaming:
            return
        log.warning("unwanted_stream_stopped", unit_id=unit_id)
        await self.fleet.tell(unit_id, CommandName.STREAM_STOP)

    def _on_worker_restart(self, index: int) -> None:
        homed = self.relay.home_of
        lost = [s.stream_id for s in self.plan.streams() if homed(s.stream_id) == index]
        log.warning("relay_streams_lost", worker=index, streams=lost)
        self.plan.relay_lost(lost, self._clock())
        self.kick()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _stream_id(unit_id: str) -> str:
    return f"{unit_id}-{secrets.token_hex(4)}"

"""The commands a unit carries out: one small handler per command, in a table, each taking
its typed arguments (protocol.commands) and returning its typed result. Handlers act only
through `Unit`, the few things the service lends them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError
from structlog.typing import FilteringBoundLogger

from agent.stream_keeper import StreamKeeper, StreamNotLive
from protocol import Command, CommandResult, CommandStatus, RuntimeConfig
from protocol.commands import (
    COMMAND_ARGS,
    CommandName,
    ConfigSetArgs,
    ConfigSetResult,
    EvidenceStatusResult,
    NoArgs,
    PingResult,
    RebirthResult,
    RecordingResult,
    RecordingStartArgs,
    SnapshotResult,
    StreamStartResult,
    StreamStopResult,
)
from protocol.models import ContractModel
from protocol.streams import StreamStartArgs
from runtime.mqtt import NotConnected

if TYPE_CHECKING:
    from agent.evidence.manager import EvidenceManager

COMMAND_TIMEOUT_S = 30.0
TRIGGER_LENGTH = 64


class CommandFailed(Exception):
    """A handler's way to answer `failed` with a reason."""


class Unit(Protocol):
    """What a handler may use of the running unit."""

    streams: StreamKeeper

    @property
    def sid(self) -> int: ...

    @property
    def config(self) -> RuntimeConfig: ...

    def now(self) -> float: ...

    def evidence_or_none(self) -> EvidenceManager | None: ...

    def rebirth(self) -> None:
        """Announce a rebirth; raises NotConnected."""

    def camera_record(self, on: bool) -> bool: ...

    def save_config(self, config: RuntimeConfig) -> None: ...

    def state_changed(self) -> None: ...


Handler = Callable[[Unit, Any], Awaitable[ContractModel]]


def _evidence(unit: Unit) -> EvidenceManager:
    evidence = unit.evidence_or_none()
    if evidence is None:
        raise CommandFailed("evidence recording is disabled on this unit")
    return evidence


async def ping(unit: Unit, _args: NoArgs) -> PingResult:
    return PingResult(pong=unit.now(), sid=unit.sid)


async def rebirth(unit: Unit, _args: NoArgs) -> RebirthResult:
    try:
        unit.rebirth()
    except NotConnected as exc:
        raise CommandFailed("not connected") from exc
    return RebirthResult(sid=unit.sid)


async def config_set(unit: Unit, args: ConfigSetArgs) -> ConfigSetResult:
    merged = {**unit.config.model_dump(), **args.model_dump(exclude_none=True)}
    try:
        config = RuntimeConfig.model_validate(merged)
    except ValidationError as exc:
        raise CommandFailed(first_error(exc)) from None
    unit.save_config(config)
    return ConfigSetResult(config=config)


async def stream_start(unit: Unit, args: StreamStartArgs) -> StreamStartResult:
    try:
        await unit.streams.start(args)
    except (ValueError, StreamNotLive) as exc:
        raise CommandFailed(str(exc)) from None
    return StreamStartResult(stream_id=args.stream_id)


async def stream_stop(unit: Unit, _args: NoArgs) -> StreamStopResult:
    return StreamStopResult(stopped=await unit.streams.stop())


async def recording_start(unit: Unit, args: RecordingStartArgs) -> RecordingResult:
    recording_id = _evidence(unit).start_recording(args.trigger[:TRIGGER_LENGTH])
    unit.camera_record(True)
    unit.state_changed()
    return RecordingResult(recording_id=recording_id)


async def recording_stop(unit: Unit, _args: NoArgs) -> RecordingResult:
    recording_id = _evidence(unit).stop_recording()
    unit.camera_record(False)
    unit.state_changed()
    return RecordingResult(recording_id=recording_id)


async def snapshot(unit: Unit, _args: NoArgs) -> SnapshotResult:
    try:
        return _evidence(unit).snapshot()
    except LookupError as exc:
        raise CommandFailed(str(exc)) from None


async def evidence_status(unit: Unit, _args: NoArgs) -> EvidenceStatusResult:
    return await asyncio.to_thread(_evidence(unit).status)


HANDLERS: dict[CommandName, Handler] = {
    CommandName.PING: ping,
    CommandName.REBIRTH: rebirth,
    CommandName.CONFIG_SET: config_set,
    CommandName.STREAM_START: stream_start,
    CommandName.STREAM_STOP: stream_stop,
    CommandName.RECORDING_START: recording_start,
    CommandName.RECORDING_STOP: recording_stop,
    CommandName.SNAPSHOT: snapshot,
    CommandName.EVIDENCE_STATUS: evidence_status,
}


async def run_command(unit: Unit, command: Command, log: FilteringBoundLogger) -> CommandResult:
    """Validate the arguments, run the handler within its time, answer with its result;
    a handler's refusal or crash becomes `failed`. The gate admits only known names."""
    name = CommandName(command.name)
    log = log.bind(cmd_id=command.cmd_id, command=command.name)
    try:
        args = COMMAND_ARGS[name].model_validate(command.args)
        result = await asyncio.wait_for(HANDLERS[name](unit, args), COMMAND_TIMEOUT_S)
    except ValidationError as exc:
        log.warning("command_failed", detail=first_error(exc))
        return _failed(command, f"{name}: {first_error(exc)}")
    except CommandFailed as exc:
        log.warning("command_failed", detail=str(exc))
        return _failed(command, str(exc))
    except Exception as exc:
        log.exception("command_crashed")
        return _failed(command, f"internal error: {type(exc).__name__}")
    log.info("command_done")
    return CommandResult(
        cmd_id=command.cmd_id, status=CommandStatus.DONE, data=result.model_dump(mode="json")
    )


def _failed(command: Command, detail: str) -> CommandResult:
    return CommandResult(cmd_id=command.cmd_id, status=CommandStatus.FAILED, detail=detail[:1000])


def first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"

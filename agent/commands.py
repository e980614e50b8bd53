"""Admission of commands from the center (pure): validate, reject with a reason, run once."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass

from protocol import Command, CommandResult, CommandStatus, ProtocolError, Topic, TopicKind, decode

Remember = Callable[[str, float, float], bool]
"""remember(cmd_id, expires_at, now) -> True the first time a cmd_id is seen."""


@dataclass(frozen=True, slots=True)
class Admission:
    """`run` is the command to execute, `reply` the result to send at once (accepted or
    rejected), `reason` a metrics label when nothing runs. Both None: drop silently."""

    run: Command | None = None
    reply: CommandResult | None = None
    reason: str | None = None


class CommandGate:
    def __init__(self, unit_id: str, known: Collection[str], remember: Remember) -> None:
        self._unit_id = unit_id
        self._known = frozenset(known)
        self._remember = remember
        self._reply_to = str(Topic.result(unit_id))

    def admit(self, topic: str, payload: bytes, now: float) -> Admission:
        try:
            message = decode(topic, payload)
        except ProtocolError as exc:
            cmd_id = _salvage_cmd_id(payload)
            reply = None
            if cmd_id is not None:
                reply = CommandResult(
                    cmd_id=cmd_id, status=CommandStatus.REJECTED, detail=f"malformed: {exc}"
                )
            return Admission(reply=reply, reason=exc.reason)
        if message.topic.kind is not TopicKind.COMMAND or message.topic.subject != self._unit_id:
            return Admission(reason="not_for_us")
        command: Command = message.envelope.body
        if not self._remember(command.cmd_id, command.expires_at, now):
            return Admission(reason="duplicate")
        if command.expires_at <= now:
            return self._reject(command, "expired", "expired")
        if command.name not in self._known:
            return self._reject(command, "unknown", f"unknown command {command.name!r}")
        if command.reply_to != self._reply_to:
            return self._reject(command, "bad_reply_to", f"reply_to must be {self._reply_to}")
        return Admission(
            run=command, reply=CommandResult(cmd_id=command.cmd_id, status=CommandStatus.ACCEPTED)
        )

    @staticmethod
    def _reject(command: Command, reason: str, detail: str) -> Admission:
        result = CommandResult(cmd_id=command.cmd_id, status=CommandStatus.REJECTED, detail=detail)
        return Admission(reply=result, reason=reason)


def _salvage_cmd_id(payload: bytes) -> str | None:
    """Best effort: find a well-formed cmd_id in a payload that failed validation, so the
    center gets a prompt rejection instead of a timeout."""
    try:
        body = json.loads(payload).get("body", {})
        cmd_id = body.get("cmd_id")
        CommandResult(cmd_id=cmd_id, status=CommandStatus.REJECTED)
    except Exception:
        return None
    return cmd_id if isinstance(cmd_id, str) else None

"""Commands in flight from the center, matched to their results by cmd_id."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from protocol import CommandResult, CommandStatus


class TooManyPending(Exception):
    pass


@dataclass
class PendingCommand:
    unit_id: str
    cmd_id: str
    name: str
    sent_at: float
    result: asyncio.Future[CommandResult] = field(repr=False)
    accepted: bool = False


class CommandTracker:
    def __init__(self, max_pending: int = 10_000) -> None:
        self._pending: dict[str, PendingCommand] = {}
        self._max_pending = max_pending

    def __len__(self) -> int:
        return len(self._pending)

    def open(self, unit_id: str, cmd_id: str, name: str, now: float) -> PendingCommand:
        if len(self._pending) >= self._max_pending:
            raise TooManyPending(f"{len(self._pending)} commands already pending")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        pending = PendingCommand(unit_id, cmd_id, name, now, future)
        self._pending[cmd_id] = pending
        return pending

    def resolve(self, unit_id: str, result: CommandResult) -> PendingCommand | None:
        """Feed a result; returns the command it finished, if any. A result from another
        unit than the one commanded is ignored."""
        pending = self._pending.get(result.cmd_id)
        if pending is None or pending.unit_id != unit_id:
            return None
        if result.status is CommandStatus.ACCEPTED:
            pending.accepted = True
            return None
        del self._pending[result.cmd_id]
        if not pending.result.done():
            pending.result.set_result(result)
        return pending

    def close(self, cmd_id: str) -> None:
        pending = self._pending.pop(cmd_id, None)
        if pending is not None and not pending.result.done():
            pending.result.cancel()

    def close_all(self) -> None:
        for cmd_id in list(self._pending):
            self.close(cmd_id)

"""Refused requests that nobody signed in to make (a unit's uploads and video), in the audit
log without letting anybody flood it: refusals of one kind, from one address, for one unit
fold into one record a minute that says how many it stands for."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi import Request
from pydantic import JsonValue

from central.access.tally import AuditTally
from central.db.audit_chain import AuditEntry
from central.gate import Gate, source_of

FOLD_S = 60.0


class FoldedRefusals:
    def __init__(self, gate: Gate, action: str, clock: Callable[[], float]) -> None:
        self._gate = gate
        self._action = action
        self._clock = clock
        self._tally = AuditTally(FOLD_S)
        self._lock = threading.Lock()  # refusals are recorded from worker threads

    def record(
        self,
        request: Request,
        actor: tuple[str, str | None],
        unit_id: str,
        refused: Exception,
        detail: dict[str, JsonValue],
    ) -> None:
        """Blocking. `actor`: who the request is from and their role, as far as known;
        `unit_id`: the unit it is for, the record's object."""
        source, now = source_of(request), self._clock()
        key = (source, unit_id, type(refused))
        with self._lock:
            folded = self._tally.due(key, now)
        if folded is None:
            return
        detail = detail | {"reason": str(refused), "folded": folded}
        who, role = actor
        entry = AuditEntry(now, who, self._action, "refused", role, source, unit_id, detail)
        try:
            self._gate.append(entry)
        except BaseException:
            with self._lock:
                self._tally.unrecorded(key, folded)
            raise

"""The audit chain's head, also kept in a file outside the database (append-only, one JSON
line per head, fsynced). Whoever rewrites the database consistently, re-sealing every
record after the one they changed, still cannot make the chain pass through the heads
written here before: `Audit(tx).verify(anchors=AnchorFile(path).heads())` names the first
one it no longer holds. Keep the file where the database's administrators cannot write
(another disk, another host, a write-once store)."""

from __future__ import annotations

import os
from pathlib import Path

from central.db.audit_chain import (
    ChainHead,
    anchor_line,
    base_line,
    parse_anchor_file,
    parse_anchors,
)
from runtime.files import append_durably

ANCHOR_FILE = "audit-anchors.jsonl"


class AnchorFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: ChainHead | None = None

    def heads(self) -> list[ChainHead]:
        """Every head written so far (none when there is no file yet); raises
        AnchorsUnreadable for a line that is not one."""
        try:
            return parse_anchors(self.path.read_bytes())
        except FileNotFoundError:
            return []

    def bases(self) -> list[ChainHead]:
        """Where purges moved the chain's start, oldest first (none without a file)."""
        try:
            return parse_anchor_file(self.path.read_bytes())[1]
        except FileNotFoundError:
            return []

    def record_base(self, base: ChainHead, at: float) -> None:
        """A purge moved the chain's start to after `base`: `verify` accepts a start that
        this file holds, so that cutting the start off in the database alone is caught."""
        self._create()
        append_durably(self.path, base_line(base, at))

    def record(self, head: ChainHead, at: float) -> bool:
        """Appends `head` unless it is the one this process wrote last; True if written.
        Call it every little while (and at shutdown) with `Audit(tx).head()`."""
        if head == self._last:
            return False
        self._create()
        append_durably(self.path, anchor_line(head, at))
        self._last = head
        return True

    def _create(self) -> None:
        if not self.path.exists():
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))

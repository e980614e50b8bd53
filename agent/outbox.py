"""Durable outbox for events and command results: written before publishing, deleted only
on PUBACK, read back in order.

Bounded by rows and bytes. Drop policy when full: the oldest rows go first (the newest
events describe the present), each drop is counted in `dropped` and reported in state.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agent.store import Meta


@dataclass(frozen=True, slots=True)
class OutboxRow:
    row_id: int
    msg_id: str
    topic: str
    ts: float
    body: bytes


class Outbox:
    def __init__(
        self, conn: sqlite3.Connection, max_rows: int = 100_000, max_bytes: int = 64 * 2**20
    ) -> None:
        self._conn = conn
        self._meta = Meta(conn)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        rows, size = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox"
        ).fetchone()
        self._rows, self._bytes = int(rows), int(size)

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        return int(self._meta.get("outbox_dropped", 0))

    def put(self, msg_id: str, topic: str, ts: float, body: bytes) -> int:
        """Store one message durably; returns its row id."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            cur = self._conn.execute(
                "INSERT INTO outbox (msg_id, topic, ts, body) VALUES (?, ?, ?, ?)",
                (msg_id, topic, ts, body),
            )
            self._rows += 1
            self._bytes += len(body)
            dropped = self._evict()
            if dropped:
                self._meta.put("outbox_dropped", self.dropped + dropped)
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _evict(self) -> int:
        dropped = 0
        while self._rows > self.max_rows or self._bytes > self.max_bytes:
            row = self._conn.execute(
                "SELECT row_id, LENGTH(body) FROM outbox ORDER BY row_id LIMIT 1"
            ).fetchone()
            if row is None:
                break
            self._conn.execute("DELETE FROM outbox WHERE row_id = ?", (row[0],))
            self._rows -= 1
            self._bytes -= int(row[1])
            dropped += 1
        return dropped

    def peek(self, after_row: int = 0, limit: int = 100) -> list[OutboxRow]:
        cur = self._conn.execute(
            "SELECT row_id, msg_id, topic, ts, body FROM outbox WHERE row_id > ? "
            "ORDER BY row_id LIMIT ?",
            (after_row, limit),
        )
        return [OutboxRow(r[0], r[1], r[2], r[3], bytes(r[4])) for r in cur]

    def discard(self, row_id: int) -> None:
        """Give up on one row that can never be delivered; counted as dropped."""
        self.ack(row_id)
        self._meta.put("outbox_dropped", self.dropped + 1)

    def ack(self, row_id: int) -> None:
        """The broker has the message: forget it."""
        with self._conn:
            row = self._conn.execute(
                "DELETE FROM outbox WHERE row_id = ? RETURNING LENGTH(body)", (row_id,)
            ).fetchone()
        if row is not None:
            self._rows -= 1
            self._bytes -= int(row[0])

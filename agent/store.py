"""The agent's durable state: one SQLite database (WAL, synchronous=FULL).

Holds the outbox, the session counter, the command ids already run and the runtime
config, so that a power cut or `kill -9` loses nothing that was written.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    row_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id  TEXT NOT NULL,
    topic   TEXT NOT NULL,
    ts      REAL NOT NULL,
    body    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_commands (
    cmd_id     TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_commands_expiry ON seen_commands (expires_at);
"""


def open_store(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a transaction is on disk before commit returns, so power cuts lose nothing.
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


class Meta:
    """Small persistent key -> JSON values."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def next_session_id(self) -> int:
        """A session id larger than every one handed out before, across restarts."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            sid = int(self.get("session_id", 0)) + 1
            self.put("session_id", sid)
        return sid


class SeenCommands:
    """Command ids already admitted, kept until they expire (a repeat after expiry is
    rejected as expired anyway), capped in rows."""

    def __init__(self, conn: sqlite3.Connection, max_rows: int = 10_000) -> None:
        self._conn = conn
        self._max_rows = max_rows

    def add_if_new(self, cmd_id: str, expires_at: float, now: float) -> bool:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM seen_commands WHERE expires_at < ?", (now,))
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO seen_commands (cmd_id, expires_at) VALUES (?, ?)",
                (cmd_id, expires_at),
            )
            self._conn.execute(
                "DELETE FROM seen_commands WHERE cmd_id IN (SELECT cmd_id FROM seen_commands "
                "ORDER BY expires_at DESC LIMIT -1 OFFSET ?)",
                (self._max_rows,),
            )
        return cur.rowcount == 1

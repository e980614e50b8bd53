"""Connecting to the center's database: an SQLite file by default, PostgreSQL by URL.

SQLite runs in WAL mode with foreign keys on and a busy timeout, and every write
transaction starts with BEGIN IMMEDIATE: it takes the file's write lock at once, so two
center processes writing the same file wait for each other instead of failing halfway.
PostgreSQL goes through psycopg 3; `postgresql://` URLs are read as `postgresql+psycopg://`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from runtime.backoff import Backoff

SQLITE_FILE = "center.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
WAL_RETRY = Backoff(initial_s=0.01, max_s=0.5)
# Execution option of the engine that write transactions go through (SQLite only).
_IMMEDIATE = "rtcc_begin_immediate"


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / SQLITE_FILE}"


def parse_url(text: str) -> URL:
    """The URL as SQLAlchemy takes it, or ValueError naming what is wrong (never the
    password)."""
    try:
        url = make_url(text)
    except Exception:
        raise ValueError("database URL must look like sqlite:///path or postgresql://...") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError(
            f"database URL scheme {url.drivername!r} is not supported: use sqlite:///path "
            "or postgresql://user@host/db"
        )
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError("an SQLite database URL needs a file: sqlite:///path/center.db")
    return url


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def create_database_engine(url: str | URL) -> Engine:
    """An engine for `url`; the parent directory of an SQLite file is created (0700) and the
    file itself is made readable by its owner only: it holds password hashes."""
    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    path = Path(str(url.database))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    _use_wal(path)
    engine = create_engine(url)
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _use_wal(path: Path) -> None:
    """WAL is kept in the file, so it is set once. Centers opening a new file together race
    for the switch, and SQLite answers "locked" at once instead of waiting its busy timeout:
    try again with jittered backoff until that timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    attempt = 0
    while True:
        with closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)) as db:
            try:
                if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                    return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(WAL_RETRY.delay(attempt))
        attempt += 1


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are ours to begin (see _begin_sqlite), not the driver's.
    dbapi_connection.isolation_level = None
    for pragma in (
        f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",  # first: the others may wait for a lock
        "foreign_keys=ON",
        "synchronous=FULL",
    ):
        dbapi_connection.execute(f"PRAGMA {pragma}")


def _begin_sqlite(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def for_writing(engine: Engine) -> Engine:
    """`engine` for transactions that may write (BEGIN IMMEDIATE on SQLite)."""
    return engine.execution_options(**{_IMMEDIATE: True})


class Database:
    """One engine and the two kinds of transaction the repositories run in."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = for_writing(engine)

    @classmethod
    def open(cls, url: str | URL) -> Database:
        return cls(create_database_engine(url))

    @property
    def url(self) -> str:
        """For messages and logs: the password is masked."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction that may write: committed when the block ends, rolled back
        when it raises."""
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """One transaction that only reads (it never waits for a writer on SQLite)."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def lookup(self) -> Iterator[Connection]:
        """One read by plain statements, without an ORM session: for what runs on every
        request (who is asking)."""
        with self.engine.begin() as connection:
            yield connection

    def close(self) -> None:
        self.engine.dispose()

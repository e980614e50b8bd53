"""Schema migrations, run before the database is used (today by `rtcc users` and `rtcc
audit`; by the center at start once sign-in lands) (Alembic, driven from here: the
migration scripts live in `central.db.migrations`, no alembic.ini is needed).

`migrate` upgrades a database to the newest schema this code knows and refuses one whose
schema is newer (written by a later version of rtcc): running old code on it could lose
or misread what the newer version keeps. Several center processes starting at once
migrate one after the other (an advisory lock on PostgreSQL, the write lock on SQLite).
"""

from __future__ import annotations

from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text

# The device tables are described next to their repository; importing it puts them in the
# models' metadata, which the migrations are checked against.
from central.db import devices as _devices  # noqa: F401
from central.db.engine import Database, for_writing, is_sqlite

log = structlog.get_logger("rtcc.db")

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant shared by every center process: the key of the migration advisory lock.
_MIGRATION_LOCK = 0x72_74_63_63  # "rtcc"


class SchemaTooNew(Exception):
    """The database's schema is newer than (or unknown to) this version of rtcc."""

    def __init__(self, found: str, known: str) -> None:
        super().__init__(
            f"the database's schema is at revision {found}, which this version of rtcc does "
            f"not know (its newest is {known}): run a version of rtcc that knows it"
        )
        self.found = found
        self.known = known


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations have one head"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database's schema is at; None for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def _check_known(found: str | None) -> None:
    if found is None:
        return
    scripts = ScriptDirectory.from_config(_config())
    try:
        known = scripts.get_revision(found)
    except CommandError:
        known = None
    if known is None:
        raise SchemaTooNew(found, head_revision())


def migrate(engine: Engine) -> str:
    """Upgrades the schema to the newest revision and returns it; raises SchemaTooNew for a
    database written by a newer rtcc (and changes nothing then)."""
    with for_writing(engine).connect() as connection, connection.begin():
        if not is_sqlite(connection):
            # Held until this transaction ends: concurrent starts migrate in turn.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        _check_known(current_revision(connection))
        command.upgrade(_config(connection), "head")
        found = current_revision(connection)
    assert found is not None
    return found


def open_migrated(url: str) -> Database:
    """What the center does at start: opens its database and brings the schema to the
    newest revision, or raises SchemaTooNew (and leaves the database as it was)."""
    database = Database.open(url)
    try:
        revision = migrate(database.engine)
    except BaseException:
        database.close()
        raise
    log.info("database ready", url=database.url, revision=revision)
    return database

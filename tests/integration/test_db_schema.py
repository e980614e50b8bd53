"""Migrations on a real SQLite file and a real PostgreSQL: from empty to head, again as a
no-op, to exactly the schema the models describe, and never onto a newer schema."""

from __future__ import annotations

import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from central.db.audit import Audit
from central.db.audit_chain import GENESIS, AuditEntry
from central.db.engine import Database
from central.db.models import Base
from central.db.schema import (
    SchemaTooNew,
    current_revision,
    head_revision,
    migrate,
    open_migrated,
)

TABLES = {
    "users",
    "address_failures",
    "sessions",
    "api_clients",
    "audit",
    "audit_head",
    "viewer_grants",
    "alerts",
    "stills",
    "shares",
    "share_recipients",
    "enroll_codes",
    "device_certs",
    "unit_evidence_keys",
    "alembic_version",
}


def test_an_empty_database_is_migrated_to_head(empty_database: Database) -> None:
    with empty_database.engine.connect() as connection:
        assert current_revision(connection) is None
    assert migrate(empty_database.engine) == head_revision()
    assert set(inspect(empty_database.engine).get_table_names()) == TABLES
    with empty_database.read() as tx:
        assert Audit(tx).head() == GENESIS


def test_migrating_again_changes_nothing(empty_database: Database) -> None:
    migrate(empty_database.engine)
    with empty_database.write() as tx:
        kept = Audit(tx).append(AuditEntry(1_800_000_000.0, "admin", "user.create", "ok"))
    assert migrate(empty_database.engine) == head_revision()
    with empty_database.read() as tx:
        assert list(Audit(tx).scan()) == [kept]


def test_the_migrations_build_what_the_models_describe(empty_database: Database) -> None:
    migrate(empty_database.engine)
    with empty_database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_a_newer_schema_is_refused_and_left_alone(empty_database: Database) -> None:
    migrate(empty_database.engine)
    with empty_database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'r9999'"))
    with pytest.raises(SchemaTooNew) as refused:
        migrate(empty_database.engine)
    assert "r9999" in str(refused.value) and head_revision() in str(refused.value)
    with empty_database.engine.connect() as connection:
        assert current_revision(connection) == "r9999"


def test_centers_starting_together_migrate_in_turn(
    new_database_url: Callable[[], str],
) -> None:
    url = new_database_url()
    databases = [Database.open(url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(len(databases)) as pool:
            revisions = list(pool.map(lambda db: migrate(db.engine), databases))
        assert revisions == [head_revision()] * len(databases)
    finally:
        for db in databases:
            db.close()


def test_sqlite_runs_in_wal_with_foreign_keys_in_a_private_file(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'center' / 'center.db'}")
    try:
        migrate(db.engine)
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert stat.S_IMODE((tmp_path / "center" / "center.db").stat().st_mode) == 0o600
    finally:
        db.close()


def test_the_center_opens_its_database_migrated_or_not_at_all(
    new_database_url: Callable[[], str],
) -> None:
    url = new_database_url()
    database = open_migrated(url)
    try:
        with database.engine.begin() as connection:
            assert current_revision(connection) == head_revision()
            connection.execute(text("UPDATE alembic_version SET version_num = 'r9999'"))
    finally:
        database.close()
    with pytest.raises(SchemaTooNew):
        open_migrated(url)

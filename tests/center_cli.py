"""`rtcc` run in this process against a new center database (SQLite file or real
PostgreSQL, from `tests.db_fixtures`) and a temporary data directory.

Fixture: `center` — `run(*argv, stdin=...)` returns the exit code, stdout and stderr;
`database` reads what the commands wrote; `sql` edits it behind the center's back."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from central.access.passwords import PasswordSettings
from central.db.audit import Audit, AuditQuery
from central.db.audit_chain import AuditRecord
from central.db.engine import Database
from central.db.schema import migrate
from central.db.users import User, Users
from rtcc.cli import main
from runtime.logs import configure_logging

CHEAP_PASSWORDS = PasswordSettings(time_cost=1, memory_kib=8192, parallelism=1)


@dataclass
class Center:
    url: str
    data_dir: Path
    database: Database
    run: Callable[..., tuple[int, str, str]]

    def user(self, name: str) -> User:
        with self.database.read() as tx:
            found = Users(tx).get(name)
        assert found is not None
        return found

    def audit(self) -> list[AuditRecord]:
        with self.database.read() as tx:
            return Audit(tx).query(AuditQuery(limit=1000, newest_first=False)).records

    def sql(self, *statements: str) -> None:
        with self.database.engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))


@pytest.fixture
def center(
    new_database_url: Callable[[], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Center]:
    url = new_database_url()
    monkeypatch.setenv("RTCC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RTCC_DATABASE_URL", url)
    for field in ("time_cost", "memory_kib", "parallelism"):
        value = getattr(CHEAP_PASSWORDS, field)
        monkeypatch.setenv(f"RTCC_ACCESS__PASSWORDS__{field.upper()}", str(value))

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    database = Database.open(url)
    migrate(database.engine)
    try:
        yield Center(url, tmp_path, database, run)
    finally:
        database.close()
        configure_logging("warning", "console")  # the commands bound logging to capsys

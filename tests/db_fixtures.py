"""The center's database in tests: the same tests run on an SQLite file and on a real
PostgreSQL server that the session starts for itself (Debian's `postgresql` binaries, a
cluster in a temporary directory on a free port, owned by the `postgres` user when the
tests run as root, since PostgreSQL refuses to run as root). Never the machine's own
server, never a mock.

Fixtures: `postgres` (the session's cluster), `backend` ("sqlite" or "postgresql": every
test that uses the fixtures below runs once per backend), `new_database_url` (makes an
empty database), `database` (one migrated database per test module) and
`empty_database` (a new empty database per test).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from central.broker import free_port
from central.db.engine import Database
from central.db.schema import migrate

BACKENDS = ("sqlite", "postgresql")
_USER = "rtcc"


def _server_binaries() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster: trust authentication on 127.0.0.1 only, fsync off."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="rtcc-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._names = itertools.count(1)
        # PostgreSQL refuses to run as root: run it as the user the Debian package makes.
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_user:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    def _run(self, *args: str) -> None:
        command = [*self._as_user, str(self.bindir / args[0]), *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            _USER,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        for attempt in range(3):
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c synchronous_commit=off"
            )
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-w",
                    "-l",
                    str(self.root / "log"),
                    "-o",
                    options,
                    "start",
                )
                return
            except RuntimeError:
                if attempt == 2:  # the free port was taken in between, three times over
                    raise

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"rtcc_{next(self._names)}"
        admin = f"host=127.0.0.1 port={self.port} user={_USER} dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bindir = _server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are absent (Debian: apt-get install postgresql)")
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def new_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], str]:
    """Makes a new, empty database on this module's backend and returns its URL."""
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        return cluster.create_database
    directory = tmp_path_factory.mktemp("sqlite")
    names = itertools.count(1)
    return lambda: f"sqlite:///{directory / f'center-{next(names)}.db'}"


@pytest.fixture(scope="module")
def database(new_database_url: Callable[[], str]) -> Iterator[Database]:
    """One migrated database shared by the tests of a module (use unique names in it)."""
    db = Database.open(new_database_url())
    migrate(db.engine)
    yield db
    db.close()


@pytest.fixture
def empty_database(new_database_url: Callable[[], str]) -> Iterator[Database]:
    """A database of this test's own, not yet migrated."""
    db = Database.open(new_database_url())
    yield db
    db.close()

"""Access control: what signing in and the gate cost, in one run.

One FastAPI app in this process, served by uvicorn on 127.0.0.1 over one keep-alive
connection, answers the same small JSON list unguarded (auth off, the baseline), behind a
no-op sync dependency (the thread-pool hop the gate's dependency also takes), and behind
`gate.require(Action.UNITS_LIST)` for an API key and for a session cookie; requests are
interleaved. The SQLite database behind the gate holds 1,000 users and 100,000 audit records.
Requests on which the gate writes (a key's first use in a minute, a session touched every
15 s) are measured apart, by moving the gate's clock on. Also: sign-in at the default argon2
cost against argon2 alone; audit appends/s on SQLite and PostgreSQL, one per transaction
(as the center appends) and batched.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' signatures.

import argparse
import contextlib
import itertools
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvicorn
from fastapi import Depends, FastAPI
from pydantic import JsonValue
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.results import write_results
from central.access import totp
from central.access.passwords import PasswordHasher, PasswordSettings
from central.access.policy import Action, Role
from central.access.settings import AccessSettings
from central.broker import free_port
from central.client_keys import add_client
from central.db.audit import Audit
from central.db.audit_chain import AuditEntry
from central.db.engine import Database
from central.db.schema import open_migrated
from central.db.users import Users
from central.gate import CSRF_HEADER, KEY_USE_AUDIT_S, MAX_TOUCH_INTERVAL_S, SESSION_COOKIE, Gate
from central.http_errors import install_error_handlers
from central.people import Operator, People
from central.sign_in import SignedIn, SignInService
from runtime.http import EmbeddedServer
from tests.db_fixtures import PostgresCluster, _server_binaries

PASSWORD = "bench-password-0123"
SOURCE = "127.0.0.1"
BUDGET_MS = 2.0
FILL_BATCH = 5_000
APPEND_BATCH = 100
HOP = "no auth, no-op sync dependency"
KEY_WRITING = "API key, first use in a minute"
SESSION_WRITING = "session cookie, use to write"
ACTIONS = ("signin", "apikey.use", "commands.send", "streams.watch", "evidence.read")


@dataclass(frozen=True)
class Counts:
    users: int = 1_000
    signins: int = 20
    audit_records: int = 100_000
    requests: int = 2_000
    warmup: int = 100
    write_path: int = 200
    appends: int = 2_000


QUICK = Counts(1_000, 5, 10_000, 300, 30, 40, 200)


@dataclass
class Latency:
    case: str
    requests: int
    p50_ms: float
    p99_ms: float
    added_p99_ms: float | None  # against "no auth" in the same run
    gate_writes: int  # write transactions the gate made during these requests


@dataclass
class Appends:
    backend: str
    per_transaction: int
    records: int
    records_per_s: float
    durability: str


class CountingDatabase(Database):
    """A gate's database, counting its write transactions (key-use audits, touches)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database.engine)
        self.writes = 0

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        self.writes += 1
        with super().write() as tx:
            yield tx


@dataclass
class Clock:
    """Real time plus an offset the bench moves on to make the gate write."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class DurablePostgres(PostgresCluster):
    """The tests' throwaway cluster, durable like a real server: its start options turn
    fsync, full-page writes and synchronous commit back on (the tests turn them off)."""

    def _run(self, *args: str) -> None:
        super()._run(*(a.replace("=off", "=on") if a.startswith("-p ") else a for a in args))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def mixed_p99(steady: list[float], writing: list[float], fraction: float) -> float:
    """p99 when `fraction` of the requests take the writing path."""
    weighted = sorted(
        [(v, (1 - fraction) / len(steady)) for v in steady]
        + [(v, fraction / len(writing)) for v in writing]
    )
    below = list(itertools.accumulate(w for _, w in weighted))
    hits = (v for (v, _), b in zip(weighted, below, strict=True) if b >= 0.99)
    return next(hits, weighted[-1][0])


def append_rate(database: Database, records: int, per_tx: int) -> float:
    """Appends `records` audit records, `per_tx` to a transaction; records per second."""
    start = time.perf_counter()
    for first in range(0, records, per_tx):
        with database.write() as tx:
            audit = Audit(tx)
            for i in range(first, min(first + per_tx, records)):
                detail: dict[str, JsonValue] = {"n": i, "reason": "bench"}
                actor, action = f"user-{i % 1000:04d}", ACTIONS[i % len(ACTIONS)]
                entry = AuditEntry(time.time(), actor, action, "ok", "dispatcher", SOURCE)
                audit.append(replace(entry, object=f"unit-{i % 50:03d}", detail=detail))
    return records / (time.perf_counter() - start)


def add_people(database: Database, counts: Counts) -> dict[str, str]:
    """Dispatchers who sign in (People.add at the default argon2 cost, TOTP enrolled) ->
    {name: TOTP secret}; the other users share one hash made once at the same cost."""
    people = People(database, Operator("bench"), PasswordSettings())
    secrets_by_name = {}
    for i in range(counts.signins):
        name = f"dispatcher-{i:03d}"
        people.add(name, Role.DISPATCHER.value, PASSWORD)
        secrets_by_name[name] = people.enroll_totp(name).secret
    shared_hash = PasswordHasher(PasswordSettings()).hash(secrets.token_urlsafe(16))
    roles = list(Role)
    with database.write() as tx:
        users = Users(tx)
        for i in range(counts.users - counts.signins):
            users.create(f"user-{i:04d}", roles[i % len(roles)].value, shared_hash, time.time())
    return secrets_by_name


def ms(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - start)


def sign_ins(database: Database, people: dict[str, str]) -> tuple[list[Latency], SignedIn]:
    """Each dispatcher signs in once with a fresh TOTP code (no failure, so the throttle
    never waits); then argon2 alone, verifying the first one's stored hash as often."""
    service = SignInService(database, AccessSettings())
    signed: list[SignedIn] = []
    took = []
    for name, secret in people.items():
        code = totp.code_at(secret, totp.time_step(time.time()))
        start = time.perf_counter()
        signed.append(service.sign_in(name, PASSWORD, code, SOURCE))
        took.append(1000 * (time.perf_counter() - start))
    with database.read() as tx:
        stored = Users(tx).get(signed[0].user)
    assert stored is not None
    alone = [ms(lambda: service.hasher.verify(stored.password_hash, PASSWORD)) for _ in people]
    rows = [
        Latency(case, len(v), pct(v, 0.5), pct(v, 0.99), None, 0)
        for case, v in (("sign-in (argon2, TOTP, db)", took), ("argon2 verify alone", alone))
    ]
    return rows, signed[0]


def no_op() -> None:
    """A dependency that does nothing: FastAPI runs it in its thread pool, like the gate's."""


def make_app(key_gate: Gate, session_gate: Gate) -> FastAPI:
    """GET /0 to /3: the same list, unguarded, behind no_op, the key gate, the session gate."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    units = [{"unit_id": f"unit-{i:03d}", "online": True, "session": i} for i in range(10)]
    guards: tuple[list[Any], ...] = (
        [],
        [Depends(no_op)],
        [Depends(key_gate.require(Action.UNITS_LIST))],
        [Depends(session_gate.require(Action.UNITS_LIST))],
    )
    for i, dependencies in enumerate(guards):
        app.add_api_route(
            f"/{i}", lambda: units, dependencies=dependencies, response_model=list[dict[str, Any]]
        )
    return app


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = EmbeddedServer(config)
    thread = threading.Thread(target=server.run, name="bench-api", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("the bench API did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


Call = Callable[[], float]


def caller(client: httpx.Client, path: str, headers: dict[str, str]) -> Call:
    def call() -> float:
        answers: list[httpx.Response] = []
        elapsed = ms(lambda: answers.append(client.get(path, headers=headers)))
        if answers[0].status_code != 200:
            raise RuntimeError(f"{path}: {answers[0].status_code} {answers[0].text}")
        return elapsed

    return call


def interleaved(calls: dict[str, Call], requests: int) -> dict[str, list[float]]:
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(requests):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            samples[name].append(calls[name]())
    return samples


def api_latency(
    database: Database, signed: SignedIn, key: str, counts: Counts
) -> tuple[list[Latency], dict[str, float]]:
    cookie = {"cookie": f"{SESSION_COOKIE}={signed.session_id}", CSRF_HEADER: signed.csrf}
    headers = {"no auth": {}, HOP: {}, "API key": {"authorization": f"Bearer {key}"}}
    headers["session cookie"] = cookie
    dbs = {case: CountingDatabase(database) for case in ("API key", "session cookie")}
    clocks = {case: Clock() for case in dbs}
    gates = {case: Gate(dbs[case], AccessSettings(), clock=clocks[case]) for case in dbs}
    with serving(make_app(*gates.values())) as url, httpx.Client(base_url=url) as client:
        calls = {case: caller(client, f"/{i}", h) for i, (case, h) in enumerate(headers.items())}
        interleaved(calls, counts.warmup)
        before = {case: db.writes for case, db in dbs.items()}
        start = time.perf_counter()
        samples = interleaved(calls, counts.requests)
        polled = {"loop_seconds": time.perf_counter() - start}
        writes = {case: dbs[case].writes - before[case] if case in dbs else 0 for case in calls}
        for case, wrote, step in (
            ("API key", KEY_WRITING, KEY_USE_AUDIT_S),
            ("session cookie", SESSION_WRITING, MAX_TOUCH_INTERVAL_S),
        ):
            before[case], samples[wrote] = dbs[case].writes, []
            for _ in range(counts.write_path):  # the gate's clock moves on: each one writes
                clocks[case].offset += step + 1
                samples[wrote].append(calls[case]())
                # A session's use is written by the gate's flusher, off the request's path
                # (the center runs it every second): here after each request.
                gates[case].flush_touches()
            writes[wrote] = dbs[case].writes - before[case]
            rate = 1 / step  # polled once a second: the share of requests that write
            polled[f"{case} 1/s p99_ms"] = mixed_p99(samples[case], samples[wrote], rate)
    base = pct(samples["no auth"], 0.99)
    rows = [
        Latency(case, len(v), pct(v, 0.5), pct(v, 0.99), pct(v, 0.99) - base, writes[case])
        for case, v in samples.items()
    ]
    rows[0].added_p99_ms = None
    return rows, polled


def durability(database: Database) -> str:
    with database.read() as tx:
        if database.engine.dialect.name == "sqlite":
            level = tx.execute(text("PRAGMA synchronous")).scalar()
            mode = tx.execute(text("PRAGMA journal_mode")).scalar()
            names = ("OFF", "NORMAL", "FULL", "EXTRA")
            return f"journal={mode}, synchronous={names[int(level or 0)]}"
        query = "SELECT current_setting('fsync'), current_setting('synchronous_commit')"
        fsync, commit = tx.execute(text(query)).one()
        return f"fsync={fsync}, synchronous_commit={commit}"


def append_rows(backend: str, url: str, counts: Counts) -> list[Appends]:
    database = open_migrated(url)
    try:
        durable = durability(database)
        rows = []
        for per_tx, records in ((1, counts.appends), (APPEND_BATCH, 5 * counts.appends)):
            rate = append_rate(database, records, per_tx)
            rows.append(Appends(backend, per_tx, records, rate, durable))
        return rows
    finally:
        database.close()


def postgres_appends(counts: Counts) -> list[Appends]:
    bindir = _server_binaries()
    if bindir is None:
        print("PostgreSQL skipped: no server binaries (Debian: apt-get install postgresql)")
        return []
    cluster = DurablePostgres(bindir)
    try:
        cluster.start()
        return append_rows("postgresql", cluster.create_database(), counts)
    finally:
        cluster.stop()


def print_tables(rows: list[Latency], polled: dict[str, float], appends: list[Appends]) -> None:
    print(f"\n{'case':<34} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'+p99 ms':>8} {'writes':>7}")
    for r in rows:
        added = "" if r.added_p99_ms is None else f"{r.added_p99_ms:.2f}"
        line = f"{r.case:<34} {r.requests:>6} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {added:>8}"
        print(f"{line} {r.gate_writes:>7}")
    for r in rows[4:6]:
        verdict = "within" if (r.added_p99_ms or 0.0) <= BUDGET_MS else "OVER"
        print(f"  {r.case}: auth adds {r.added_p99_ms:.2f} ms to p99: {verdict} the 2 ms budget")
    for case, step in (("API key", KEY_USE_AUDIT_S), ("session cookie", MAX_TOUCH_INTERVAL_S)):
        p99 = polled[f"{case} 1/s p99_ms"]
        print(f"  {case} polled once a second (1 in {step:.0f} writes): p99 {p99:.2f} ms (est.)")
    print(f"\n{'audit append':<22} {'per tx':>6} {'records':>8} {'rec/s':>9}  durability")
    for a in appends:
        line = f"{a.backend:<22} {a.per_transaction:>6} {a.records:>8} {a.records_per_s:>9.0f}"
        print(f"{line}  {a.durability}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.access", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, a smoke run")
    counts = QUICK if parser.parse_args(argv).quick else Counts()
    with tempfile.TemporaryDirectory(prefix="rtcc-bench-access-") as tmp:
        database = open_migrated(f"sqlite:///{Path(tmp) / 'center.db'}")
        try:
            people = add_people(database, counts)
            fill = append_rate(database, counts.audit_records, FILL_BATCH)
            durable = durability(database)
            appends = [Appends("sqlite (fill)", FILL_BATCH, counts.audit_records, fill, durable)]
            key = add_client(database, Operator("bench"), "bench-cad", ["units:read"])
            signin, signed = sign_ins(database, people)
            latency, polled = api_latency(database, signed, key, counts)
        finally:
            database.close()
        appends += append_rows("sqlite", f"sqlite:///{Path(tmp) / 'appends.db'}", counts)
        mounts = [p for p in psutil.disk_partitions(all=True) if tmp.startswith(p.mountpoint)]
        filesystem = max(mounts, key=lambda p: len(p.mountpoint)).fstype
    appends += postgres_appends(counts)
    print(f"\nAccess control: {counts.users} users, {counts.audit_records} audit records (SQLite)")
    print_tables(signin + latency, polled, appends)
    write_results(
        "access",
        {
            "counts": asdict(counts),
            "argon2": PasswordSettings().model_dump(),
            "latency": [asdict(r) for r in signin + latency],
            "polled": polled,
            "appends": [asdict(a) for a in appends],
            "machine": {"cpus": os.cpu_count(), "load": os.getloadavg(), "tmp_fs": filesystem},
        },
    )
    return 0

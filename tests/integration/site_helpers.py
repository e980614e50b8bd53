"""A whole center with people: cheap password hashing, users of each role (a patrol login
bound to its unit), browsers that sign in and send the CSRF header, and the audit log."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from central.access import totp
from central.access.policy import Role
from central.db.audit import Audit, AuditQuery
from central.people import Operator, People
from central.service import Central
from tests.center_cli import CHEAP_PASSWORDS
from tests.integration.center_helpers import api_client, central_settings

PASSWORD = "correct horse battery staple"
IDLE_LOCK_S = 2.0


class Person:
    """A signed-in browser: its cookies, and the CSRF header on every change."""

    def __init__(self, http: httpx.AsyncClient, name: str, role: Role) -> None:
        self.http = http
        self.name = name
        self.role = role
        self.csrf = ""

    async def sign_in(self, secret: str | None, password: str = PASSWORD) -> httpx.Response:
        code = totp.code_at(secret, totp.time_step(time.time())) if secret else None
        body = {"name": self.name, "password": password, "code": code}
        answer = await self.http.post("/api/v1/session", json=body)
        if answer.status_code == 200:
            self.csrf = answer.json()["csrf_token"]
        return answer

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)


class Site:
    def __init__(self, central: Central) -> None:
        self.central = central
        assert central.database is not None
        self.database = central.database
        self.people = People(self.database, Operator("tests"), CHEAP_PASSWORDS)
        self.secrets: dict[str, str | None] = {}

    def add(self, name: str, role: Role, unit_id: str | None = None) -> None:
        """A user; a patrol login is bound to `unit_id` (default: a unit named after it)."""
        if role is Role.PATROL and unit_id is None:
            unit_id = f"unit-{name}"
        self.people.add(name, role.value, PASSWORD, unit_id)
        needs_code = role in (Role.ADMIN, Role.SUPERVISOR, Role.DISPATCHER)
        self.secrets[name] = self.people.enroll_totp(name).secret if needs_code else None

    def browser(self) -> httpx.AsyncClient:
        return api_client(self.central, key=False)

    async def person(self, name: str, role: Role, unit_id: str | None = None) -> Person:
        self.add(name, role, unit_id)
        person = Person(self.browser(), name, role)
        answer = await person.sign_in(self.secrets[name])
        assert answer.status_code == 200, answer.text
        return person

    def audit(self, action: str) -> list[dict[str, Any]]:
        with self.database.read() as tx:
            records = Audit(tx).query(AuditQuery(action=action, limit=1000)).records
        return [
            {
                "actor": r.entry.actor,
                "outcome": r.entry.outcome,
                "object": r.entry.object,
                "detail": dict(r.entry.detail),
                "source": r.entry.source,
            }
            for r in records
        ]


@contextlib.asynccontextmanager
async def running_site(
    broker_url: str,
    unique: str,
    tmp_path: Path,
    idle_lock_s: float = IDLE_LOCK_S,
    **extra: Any,
) -> AsyncIterator[Site]:
    """A whole center with cheap password hashing and the idle lock given (and any other
    settings in `extra`)."""
    settings = central_settings(
        broker_url,
        unique,
        tmp_path,
        **extra,
        access={
            "passwords": {"time_cost": 1, "memory_kib": 8192, "parallelism": 1},
            "sessions": {"idle_lock_s": idle_lock_s},
            # No waits between failures, so that five come at once; the lock is as configured.
            "throttle": {"account": {"base_delay_s": 0}},
        },
    )
    central = Central(settings)
    await central.start()
    try:
        yield Site(central)
    finally:
        await central.stop()

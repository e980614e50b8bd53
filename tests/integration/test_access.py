"""People and programs at the whole center (its database, API and relay worker): every route
refuses no credentials (401) and the wrong role (403); sign-in with password and TOTP,
throttled and locked after five failures; CSRF on changes; the idle lock and unlock;
sign-out everywhere; remote start needs a reason; a revoked viewer token drops a viewer who
is already watching; everything lands in the audit log."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from central.access.policy import POLICY, Action, Role
from central.db.users import Users
from tests.center_tls import client_tls
from tests.helpers import wait_for
from tests.integration.center_helpers import (
    agent_of,
    api_client,
)
from tests.integration.relay_helpers import RelayViewer
from tests.integration.site_helpers import IDLE_LOCK_S, PASSWORD, Person, Site, running_site

# (method, path, action); the unit, stream and recording need not exist: a refusal comes
# before the lookup, and an allowed call answers anything but 401/403.
ROUTES: list[tuple[str, str, Action]] = [
    ("GET", "/api/v1/units", Action.UNITS_LIST),
    ("GET", "/api/v1/units/u-1", Action.UNIT_VIEW),
    ("POST", "/api/v1/units/u-1/commands", Action.COMMAND_SEND),
    ("POST", "/api/v1/units/u-1/stream", Action.REMOTE_START),
    ("DELETE", "/api/v1/units/u-1/stream", Action.STREAM_STOP),
    ("GET", "/api/v1/streams", Action.STREAMS_LIST),
    ("POST", "/api/v1/streams/s-1/viewer-token", Action.LIVE_WATCH),
    ("GET", "/api/v1/viewer-tokens", Action.VIEWER_TOKEN_REVOKE),
    ("DELETE", "/api/v1/viewer-tokens/t-1", Action.VIEWER_TOKEN_REVOKE),
    ("GET", "/api/v1/alerts", Action.ALERTS_READ),
    ("POST", "/api/v1/alerts/a-1/ack", Action.ALERTS_ACKNOWLEDGE),
    ("GET", "/api/v1/units/u-1/events", Action.UNIT_VIEW),
    ("POST", "/api/v1/streams/s-1/stills", Action.LIVE_WATCH),
    ("POST", "/api/v1/shares", Action.SHARES_CREATE),
    ("GET", "/api/v1/shares", Action.SHARES_CREATE),
    ("DELETE", "/api/v1/shares/x-1", Action.SHARES_REVOKE),
    ("GET", "/api/v1/patrol/shares", Action.SHARES_RECEIVE),
    ("POST", "/api/v1/patrol/shares/x-1/received", Action.SHARES_RECEIVE),
    ("POST", "/api/v1/patrol/shares/x-1/open", Action.SHARES_OPEN),
    ("GET", "/api/v1/evidence", Action.EVIDENCE_SEARCH),
    ("GET", "/api/v1/evidence/r-1", Action.EVIDENCE_SEARCH),
    ("GET", "/api/v1/evidence/r-1/segments/0", Action.EVIDENCE_PLAYBACK),
    ("GET", "/api/v1/evidence/r-1/segments/0?download=true", Action.EVIDENCE_DOWNLOAD),
    ("GET", "/api/v1/evidence/r-1/verify", Action.EVIDENCE_VERIFY),
    ("GET", "/api/v1/audit", Action.AUDIT_READ),
    ("POST", "/api/v1/provision/codes", Action.DEVICES_PROVISION),
    ("GET", "/api/v1/provision/devices", Action.DEVICES_PROVISION),
    ("POST", "/api/v1/provision/devices/u-1/revoke", Action.DEVICES_PROVISION),
    ("GET", "/metrics", Action.METRICS_SCRAPE),
    ("GET", "/docs", Action.API_DOCS),
    ("GET", "/openapi.json", Action.API_DOCS),
]


@pytest.fixture
async def site(broker_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Site]:
    async with running_site(broker_url, unique, tmp_path) as running:
        yield running


async def test_every_route_refuses_no_credentials_and_the_wrong_role(site: Site) -> None:
    async with site.browser() as anonymous:
        for method, path, _ in ROUTES:
            answer = await anonymous.request(method, path)
            assert answer.status_code == 401, (method, path, answer.text)
        assert (await anonymous.get("/healthz")).status_code in (200, 503)
    for role in Role:
        person = await site.person(f"p-{role.value}", role)
        for method, path, action in ROUTES:
            answer = await person.call(method, path, json={})
            if action in POLICY[role]:
                assert answer.status_code not in (401, 403), (role, method, path, answer.text)
            else:
                assert answer.status_code == 403, (role, method, path, answer.text)
        await person.http.aclose()
    denied = [(r["actor"], r["object"]) for r in site.audit("access.denied")]
    assert ("p-patrol", "/api/v1/units") in denied


async def test_sign_in_needs_the_second_factor_and_five_failures_lock(site: Site) -> None:
    site.add("ana", Role.DISPATCHER)
    async with site.browser() as http:
        ana = Person(http, "ana", Role.DISPATCHER)
        assert (await ana.sign_in(None)).status_code == 401  # no code
        wrong = await http.post(
            "/api/v1/session", json={"name": "ana", "password": PASSWORD, "code": "000000"}
        )
        assert wrong.status_code == 401
        for _ in range(3):
            assert (await ana.sign_in(site.secrets["ana"], "wrong")).status_code == 401
        locked = await ana.sign_in(site.secrets["ana"])
        assert locked.status_code == 401 and locked.json()["outcome"] == "locked", locked.text
    with site.database.read() as tx:
        user = Users(tx).get("ana")
    assert user is not None and user.locked_until is not None
    outcomes = [r["outcome"] for r in site.audit("signin")]
    assert outcomes.count("wrong_credentials") == 5 and "locked" in outcomes


async def test_csrf_idle_lock_unlock_and_sign_out(site: Site) -> None:
    bob = await site.person("bob", Role.TECH)
    async with contextlib.aclosing(bob):
        assert (await bob.call("GET", "/metrics")).status_code == 200
        no_csrf = await bob.http.delete("/api/v1/session")
        assert no_csrf.status_code == 403
        # The behaviour under test is time passing without use: nothing to wait on but it.
        await asyncio.sleep(IDLE_LOCK_S + 0.5)
        locked = await bob.call("GET", "/metrics")
        assert locked.status_code == 401 and locked.json()["session"] == "locked"
        wrong = await bob.call("POST", "/api/v1/session/unlock", json={"password": "nope"})
        assert wrong.status_code == 401
        unlocked = await bob.call("POST", "/api/v1/session/unlock", json={"password": PASSWORD})
        assert unlocked.status_code == 200, unlocked.text
        assert (await bob.call("GET", "/metrics")).status_code == 200
        assert (await bob.call("DELETE", "/api/v1/session")).status_code == 204
    async with site.browser() as again:
        assert (await again.get("/metrics")).status_code == 401
    actions = {a: [r["outcome"] for r in site.audit(a)] for a in ("session.lock", "signout")}
    assert actions == {"session.lock": ["ok"], "signout": ["ok"]}
    assert [r["outcome"] for r in site.audit("session.unlock")] == ["ok", "wrong_credentials"]


async def test_remote_start_needs_a_reason_and_revoking_drops_the_viewer(
    site: Site, broker_url: str, tmp_path: Path
) -> None:
    central = site.central
    unit = "u-revoke"
    async with (
        agent_of(
            central, unit, broker_url, tmp_path / "agent", video={"width": 320, "height": 240}
        ),
        api_client(central) as cad,
    ):
        assert central.fleet is not None
        await wait_for(lambda: (r := central.fleet.registry.get(unit)) and r.online)  # type: ignore[union-attr]
        no_reason = await cad.post(f"/api/v1/units/{unit}/stream", json={})
        assert no_reason.status_code == 422
        started = await cad.post(f"/api/v1/units/{unit}/stream", json={"incident": "24-0117"})
        assert started.status_code == 200, started.text
        grant = started.json()
        viewer = RelayViewer("h264")
        await viewer.join(central.api_url, grant["stream_id"], grant["token"], client_tls())
        await wait_for(lambda: viewer.frames > 5, timeout=15)
        revoked = await cad.delete(f"/api/v1/viewer-tokens/{grant['token_id']}")
        assert revoked.status_code == 200, revoked.text
        reading = viewer.task
        assert reading is not None
        await wait_for(reading.done, timeout=5)
        again = await RelayViewer("h264").join(
            central.api_url, grant["stream_id"], grant["token"], client_tls()
        )
        assert again.status_code == 403
        await viewer.pc.close()
        # A dispatcher's own token ends with their session: signing out drops their view.
        dana = await site.person("dana", Role.DISPATCHER)
        async with contextlib.aclosing(dana):
            token = await dana.call("POST", f"/api/v1/streams/{grant['stream_id']}/viewer-token")
            assert token.status_code == 200, token.text
            watching = RelayViewer("h264")
            own = token.json()["token"]
            await watching.join(central.api_url, grant["stream_id"], own, client_tls())
            await wait_for(lambda: watching.frames > 5, timeout=15)
            assert (await dana.call("DELETE", "/api/v1/session")).status_code == 204
            assert watching.task is not None
            await wait_for(watching.task.done, timeout=5)
            await watching.pc.close()
    start = site.audit("streams.remote_start")
    assert [(r["outcome"], r["detail"].get("incident")) for r in start] == [("ok", "24-0117")]
    stops = site.audit("streams.view_stop")
    assert sorted((r["actor"], r["outcome"]) for r in stops) == [
        ("dana", "revoked"),
        ("tests", "revoked"),
    ]
    assert len(site.audit("streams.view_start")) == 2

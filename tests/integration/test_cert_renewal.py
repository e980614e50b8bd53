"""Certificate renewal end to end, on the center's own mTLS broker: an enrolled agent whose
certificate is due renews it by itself while events stream, reconnects with the new one
(still taken by the broker once the old serial is revoked alone), and every event arrives
exactly once. Over HTTPS, renewals with a wrong signature, a stale time, for a revoked or
unknown unit are refused and audited; an unusable CSR is a 400; the address is throttled."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from agent.enroll import certificate_request
from agent.renewal_files import matching
from agent.service import Agent
from central.db.devices import DeviceCertRow
from central.service import Central
from protocol.renewal import RENEW_ROUTE, RenewRequest, signed_request
from tests.helpers import wait_for
from tests.integration.center_helpers import api_client
from tests.integration.identity_helpers import (
    TECH,
    audited,
    center_with_own_broker,
    enroll_gateway,
    enrolled_agent,
    gateway_tls,
)

TICK_S = 0.02
MAX_EVENTS = 900  # the center keeps its last 1000 events in memory


def received(central: Central, unit_id: str) -> list[int]:
    assert central.fleet is not None
    events = [e for e in central.fleet.recent_events if e.unit_id == unit_id]
    return [cast(int, e.event.data["n"]) for e in events]


@contextlib.asynccontextmanager
async def ticking(agent: Agent) -> AsyncIterator[list[int]]:
    """The agent records an event every TICK_S until the block ends; yields their numbers."""
    sent: list[int] = []

    async def tick() -> None:
        while len(sent) < MAX_EVENTS:
            agent.record_event("test.tick", {"n": len(sent)}, time.time())
            sent.append(len(sent))
            await asyncio.sleep(TICK_S)

    task = asyncio.create_task(tick())
    try:
        yield sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_agent_renews_its_certificate_and_loses_no_event(
    unique: str, tmp_path: Path
) -> None:
    unit = f"P-{unique}"
    async with center_with_own_broker(unique, tmp_path, provision={"cert_days": 1}) as central:
        assert central.fleet is not None and central.provisioning is not None
        assert central.center_broker is not None and central.database is not None
        access = central.center_broker.access
        assert access is not None
        fleet, provisioning = central.fleet, central.provisioning
        folder = tmp_path / "gateway"
        enrolled = await enroll_gateway(central, unit, folder)
        tls = gateway_tls(enrolled)
        assert tls.cert_file is not None and tls.key_file is not None
        async with (
            # A share of 1: due as soon as issued (the window keeps it to one renewal).
            enrolled_agent(central, enrolled, folder, renewal={"share": 1.0}) as agent,
            ticking(agent) as sent,
        ):
            renewal = agent.renewal
            assert renewal is not None
            # Renewed once online, then reconnected with the new pair.
            await wait_for(lambda: renewal.status.outcomes["ok"] == 1, timeout=30)
            new_serial = renewal.status.last_detail
            await wait_for(lambda: agent.link.connects >= 2 and agent.link.connected.is_set())
            cert = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())
            assert format(cert.serial_number, "x") == new_serial != enrolled.serial
            assert matching(tls.cert_file.read_bytes(), tls.key_file.read_bytes())
            certs = [c for c in provisioning.certs() if c.unit_id == unit]
            assert {c.serial for c in certs} == {enrolled.serial, new_serial}
            assert all(c.revoked_at is None for c in certs)
            [renewed] = audited(central, "device.renew", unit)
            assert renewed.outcome == "ok" and renewed.detail["previous"] == enrolled.serial

            # The broker takes the new certificate: with the old serial alone revoked, the
            # unit is thrown off once and comes straight back.
            with central.database.write() as tx:
                tx.execute(
                    update(DeviceCertRow)
                    .where(DeviceCertRow.serial == enrolled.serial)
                    .values(revoked_at=time.time(), revoked_by="tests")
                )
            connects = agent.link.connects
            assert await access.refresh()
            await wait_for(lambda: agent.link.connects > connects, timeout=15)
            await wait_for(lambda: (r := fleet.registry.get(unit)) and r.online, timeout=15)
            ticks = len(sent)
            await wait_for(lambda: len(sent) >= ticks + 10)
        assert renewal.status.outcomes == {"ok": 1, "refused": 0, "failed": 0}

        # Every event produced across the renewal and the reconnects arrived, once each.
        await wait_for(lambda: len(set(received(central, unit))) >= len(sent), timeout=20)
        counts = Counter(received(central, unit))
        assert sorted(counts) == sent
        assert set(counts.values()) == {1}


def renewal_of(
    unit_id: str, serial: str, key: Ed25519PrivateKey, ts: float | None = None, csr: str = ""
) -> RenewRequest:
    csr = csr or certificate_request(ec.generate_private_key(ec.SECP256R1())).decode()
    return signed_request(key, unit_id, serial, csr, int(time.time() if ts is None else ts))


async def test_renewals_over_https_are_refused_and_audited(unique: str, tmp_path: Path) -> None:
    unit = f"P-{unique}"
    attempts = 7
    settings = {"provision": {"enroll_attempts": attempts}}
    async with (
        center_with_own_broker(unique, tmp_path, **settings) as central,
        api_client(central, key=False) as http,
    ):
        assert central.provisioning is not None
        enrolled = await enroll_gateway(central, unit, tmp_path / "gateway")
        evidence = Ed25519PrivateKey.from_private_bytes(enrolled.files.evidence_key.read_bytes())
        serial = enrolled.serial

        async def post(request: RenewRequest) -> httpx.Response:
            body, headers = request.model_dump_json(), {"Content-Type": "application/json"}
            return await http.post(RENEW_ROUTE, content=body, headers=headers)

        stranger = Ed25519PrivateKey.generate()
        refused = {
            "signature": await post(renewal_of(unit, serial, stranger)),
            "behind": await post(renewal_of(unit, serial, evidence, time.time() - 600)),
            "never enrolled": await post(renewal_of(f"Q-{unique}", serial, evidence)),
        }
        for reason, answer in refused.items():
            assert answer.status_code == 403, answer.text
            assert reason in answer.json()["detail"]
        unusable = await post(renewal_of(unit, serial, evidence, csr="not a CSR"))
        assert unusable.status_code == 400, unusable.text

        renewed = await post(renewal_of(unit, serial, evidence))
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["unit_id"] == unit and renewed.json()["serial"] != serial

        await asyncio.to_thread(central.provisioning.revoke, TECH, unit)
        for serial_named in (serial, renewed.json()["serial"]):
            answer = await post(renewal_of(unit, serial_named, evidence))
            assert answer.status_code == 403 and "revoked" in answer.json()["detail"]
        throttled = await post(renewal_of(unit, serial, evidence))
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1

        outcomes = [(e.outcome, e.source) for e in audited(central, "device.renew", unit)]
        assert [o for o, _ in outcomes] == ["refused"] * 3 + ["ok"] + ["refused"] * 2
        assert {s for _, s in outcomes} == {"127.0.0.1"}
        [unknown] = audited(central, "device.renew", f"Q-{unique}")
        assert unknown.outcome == "refused" and "never enrolled" in str(unknown.detail["reason"])

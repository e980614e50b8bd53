"""Renewal at the center's records, on a real SQLite file and a real PostgreSQL: a renewal
signed with the enrolled evidence key gets a new certificate and keeps the old one valid;
refusals and unusable requests are audited with their reason; a renewal racing a revocation
of the same unit waits for it and is refused."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from agent.enroll import certificate_request
from central.db.audit import Audit, AuditQuery
from central.db.audit_chain import AuditEntry
from central.db.devices import Devices
from central.db.engine import Database
from central.errors import Invalid, Refused
from central.people import Operator
from central.provision_settings import ProvisionSettings
from central.provisioning import Provisioning
from protocol.evidence import UnitKey
from protocol.renewal import RenewRequest, signed_request

TECH = Operator("tech-1", "tech")


@dataclass
class Enrolled:
    provisioning: Provisioning
    unit_id: str
    serial: str
    key: Ed25519PrivateKey

    def request(self, ts: float | None = None, serial: str | None = None) -> RenewRequest:
        csr = certificate_request(ec.generate_private_key(ec.SECP256R1())).decode()
        when = int(time.time() if ts is None else ts)
        return signed_request(self.key, self.unit_id, serial or self.serial, csr, when)


def enrolled(database: Database, tmp_path: Path, unique: str) -> Enrolled:
    provisioning = Provisioning(database, tmp_path, ProvisionSettings(cert_days=2))
    unit_id = f"P-{unique}"
    code = provisioning.create_code(TECH, unit_id)
    evidence = UnitKey.generate()
    csr = certificate_request(ec.generate_private_key(ec.SECP256R1())).decode()
    done = provisioning.enroll(code, csr, evidence.public_b64, "10.0.0.7")
    key = Ed25519PrivateKey.from_private_bytes(evidence.private_bytes())
    return Enrolled(provisioning, unit_id, done.serial, key)


def audited(database: Database, unit_id: str) -> list[AuditEntry]:
    with database.read() as tx:
        page = Audit(tx).query(AuditQuery(limit=1000, newest_first=False))
    return [
        r.entry
        for r in page.records
        if r.entry.action == "device.renew" and r.entry.object == unit_id
    ]


def test_a_signed_renewal_gets_a_new_certificate_and_the_old_stays_valid(
    database: Database, tmp_path: Path, unique: str
) -> None:
    unit = enrolled(database, tmp_path, unique)
    renewed = unit.provisioning.renew(unit.request(), "10.0.0.7")
    cert = x509.load_pem_x509_certificate(renewed.cert_pem.encode())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [n.value for n in names] == [unit.unit_id] and renewed.serial != unit.serial
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert abs(lifetime.total_seconds() - (2 * 86_400 + 300)) < 1  # 2 days, backdated 5 min
    with database.read() as tx:
        certs = Devices(tx).certs(unit.unit_id)
    assert {c.serial for c in certs} == {unit.serial, renewed.serial}
    assert all(c.revoked_at is None for c in certs)
    assert unit.unit_id in unit.provisioning.standing().enrolled
    [entry] = audited(database, unit.unit_id)
    assert (entry.outcome, entry.actor, entry.source) == ("ok", "gateway", "10.0.0.7")
    assert entry.detail["serial"] == renewed.serial and entry.detail["previous"] == unit.serial
    # The new certificate renews too.
    again = unit.provisioning.renew(unit.request(serial=renewed.serial), "10.0.0.7")
    assert again.serial not in (unit.serial, renewed.serial)


def test_refusals_and_unusable_requests_are_audited_with_their_reason(
    database: Database, tmp_path: Path, unique: str
) -> None:
    unit = enrolled(database, tmp_path, unique)
    provisioning = unit.provisioning
    stale = unit.request(ts=time.time() - 3600)
    with pytest.raises(Refused, match="behind the center's clock"):
        provisioning.renew(stale, "10.0.0.8")
    forged = signed_request(
        Ed25519PrivateKey.generate(),
        unit.unit_id,
        unit.serial,
        unit.request().csr,
        int(time.time()),
    )
    with pytest.raises(Refused, match="signature"):
        provisioning.renew(forged, "10.0.0.8")
    bad_csr = signed_request(unit.key, unit.unit_id, unit.serial, "garbage", int(time.time()))
    with pytest.raises(Invalid, match="certificate request"):
        provisioning.renew(bad_csr, "10.0.0.8")
    provisioning.revoke(TECH, unit.unit_id)
    with pytest.raises(Refused, match="was revoked"):
        provisioning.renew(unit.request(), "10.0.0.8")
    reasons = [(e.outcome, str(e.detail["reason"])) for e in audited(database, unit.unit_id)]
    assert [o for o, _ in reasons] == ["refused"] * 4
    for (_, reason), expected in zip(
        reasons, ["behind", "signature", "certificate request", "revoked"], strict=True
    ):
        assert expected in reason
    with database.read() as tx:
        assert len(Devices(tx).certs(unit.unit_id)) == 1  # nothing was issued


def test_a_renewal_racing_a_revocation_waits_for_it_and_is_refused(
    database: Database, tmp_path: Path, unique: str, backend: str
) -> None:
    unit = enrolled(database, tmp_path, unique)
    request = unit.request()
    outcome: list[BaseException | None] = []

    def renew() -> None:
        try:
            unit.provisioning.renew(request, "10.0.0.7")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=renew)
    with database.write() as tx:
        devices = Devices(tx)
        devices.lock_unit(unit.unit_id)
        devices.revoke_unit(unit.unit_id, time.time(), "tech-1")
        thread.start()
        if backend == "postgresql":
            # The renewal is waiting for the unit's lock, not reading around it.
            deadline = time.monotonic() + 20
            while not waiting_for_a_lock(database):
                assert time.monotonic() < deadline, "the renewal never waited for the lock"
                time.sleep(0.02)
    thread.join(30)
    [found] = outcome
    assert isinstance(found, Refused) and "revoked" in str(found)
    with database.read() as tx:
        certs = Devices(tx).certs(unit.unit_id)
    assert [c.revoked_at is not None for c in certs] == [True]


def waiting_for_a_lock(database: Database) -> bool:
    with database.read() as tx:
        waiting = tx.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar()
    return bool(waiting)

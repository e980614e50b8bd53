"""Provisioning against a real `rtcc central` process, with the commands a tech runs (real
processes, files, permissions): code -> keys -> a certificate from the device CA, the
evidence key registered; reused, expired and unknown codes refused with their reason;
a replacement revokes the old certificate; revoke and list; all of it audited."""

import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import update

from agent.config import AgentSettings
from agent.enroll import certificate_request
from agent.enroll_files import in_force
from central.broker import MosquittoOptions, MosquittoProcess, free_port
from central.broker_security import BrokerTls
from central.db.audit import Audit, AuditQuery
from central.db.audit_chain import AuditEntry
from central.db.devices import DeviceCert, Devices, EnrollCodeRow
from central.db.engine import Database
from central.device_ca import DeviceCa, admin_identity, center_identity, serial_hex
from central.provision_settings import ProvisionSettings
from central.provisioning import Provisioning
from protocol.evidence import UnitKey
from runtime.config import TlsFiles, load_settings
from tests.helpers import ROOT, run_rtcc

CODE = re.compile(r"[A-Z2-9]{4}(?:-[A-Z2-9]{4}){3}")
ATTEMPTS = 30  # enrollment attempts per address per minute at this center


@dataclass
class Center:
    url: str
    data_dir: Path
    env: dict[str, str]
    database: Database

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run_rtcc(*args, env=self.env, stdin=stdin)

    def code(self, unit_id: str, *more: str) -> str:
        done = self.run("provision", "create-code", "--unit", unit_id, *more)
        assert done.returncode == 0, done.stderr
        found = CODE.search(done.stdout)
        assert found is not None, done.stdout
        return found.group(0)

    def enroll(self, code: str, folder: Path) -> subprocess.CompletedProcess[str]:
        ca = str(self.data_dir / "tls" / "ca.pem")
        return self.run(
            "provision", "enroll", "--center", self.url, "--code", code, "--ca-file", ca,
            "--dir", str(folder),
        )  # fmt: skip

    def certs(self, unit_id: str) -> list[DeviceCert]:
        with self.database.read() as tx:
            return Devices(tx).certs(unit_id)

    def audit(self, action: str) -> list[AuditEntry]:
        with self.database.read() as tx:
            page = Audit(tx).query(AuditQuery(limit=1000, newest_first=False))
        return [r.entry for r in page.records if r.entry.action == action]

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.pem"))


@pytest.fixture(scope="module")
def center(
    tmp_path_factory: pytest.TempPathFactory, new_database_url: Callable[[], str]
) -> Iterator[Center]:
    data_dir = tmp_path_factory.mktemp("center")
    port = free_port()
    url = new_database_url()
    env = {
        **os.environ,
        "RTCC_DATA_DIR": str(data_dir),
        "RTCC_DATABASE_URL": url,
        "RTCC_HTTP__PORT": str(port),
        "RTCC_LOG__FORMAT": "json",
        "RTCC_RELAY__WORKERS": "1",
        "RTCC_PROVISION__ENROLL_ATTEMPTS": str(ATTEMPTS),
        "RTCC_ACCESS__PASSWORDS__TIME_COST": "1",
        "RTCC_ACCESS__PASSWORDS__MEMORY_KIB": "8192",
        "RTCC_ACCESS__PASSWORDS__PARALLELISM": "1",
    }
    with (data_dir / "central.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtcc", "central"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = f"https://127.0.0.1:{port}"
    database: Database | None = None
    try:
        ca = data_dir / "tls" / "ca.pem"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (data_dir / "central.log").read_text()
            try:
                tls = ssl.create_default_context(cafile=str(ca))
                if httpx.get(api + "/healthz", verify=tls, timeout=2).status_code == 200:
                    break
            except (OSError, httpx.HTTPError):
                pass
            assert time.monotonic() < deadline, "the center did not start"
            time.sleep(0.2)
        database = Database.open(url)
        yield Center(api, data_dir, env, database)
    finally:
        if database is not None:
            database.close()
        proc.terminate()
        assert proc.wait(20) == 0
    logs = (data_dir / "central.log").read_text()
    assert "Traceback" not in logs


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_gateway_enrolls_with_a_code(center: Center, tmp_path: Path) -> None:
    code = center.code("P-117", "--expires", "2h")
    folder = tmp_path / "gateway"
    done = center.enroll(code, folder)
    assert done.returncode == 0, done.stderr
    assert "Making this gateway's TLS key" in done.stdout
    assert "Enrolled as unit P-117" in done.stdout
    # The enrollment's files in a folder of their own, reached through stable paths.
    current = in_force(folder)
    assert current is not None
    files = [p.relative_to(current).as_posix() for p in current.rglob("*") if p.is_file()]
    assert set(files) == {
        "agent.toml",
        "tls/unit.key",
        "tls/unit.pem",
        "tls/device-ca.pem",
        "tls/center-ca.pem",
        "identity/unit.key",
    }
    assert all(mode(folder / rel) == 0o600 for rel in files)
    assert mode(folder) == mode(folder / "tls") == mode(folder / "identity") == 0o700

    # The certificate: the unit's name, this gateway's key, from the center's device CA.
    cert = x509.load_pem_x509_certificate((folder / "tls" / "unit.pem").read_bytes())
    device_ca = (center.data_dir / "devices" / "ca.pem").read_bytes()
    assert (folder / "tls" / "device-ca.pem").read_bytes() == device_ca
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(device_ca))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "P-117"
    key = serialization.load_pem_private_key((folder / "tls" / "unit.key").read_bytes(), None)
    assert cert.public_key() == key.public_key()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 364 <= lifetime.days <= 366

    # The evidence key the center now holds is the gateway's, which it never saw.
    evidence = UnitKey.from_bytes((folder / "identity" / "unit.key").read_bytes())
    with center.database.read() as tx:
        assert Devices(tx).evidence_key("P-117") == evidence.public_b64
    [issued] = center.certs("P-117")
    assert issued.serial == serial_hex(cert.serial_number) and issued.revoked_at is None

    # The agent reads what enrollment wrote.
    settings = load_settings(AgentSettings, folder / "agent.toml")
    assert settings.unit_id == "P-117" and settings.data_dir == folder
    assert settings.center_url == center.url
    assert settings.mqtt_url is not None and settings.mqtt_url.startswith("mqtts://127.0.0.1:")
    assert settings.mqtt.tls.cert_file == folder / "tls" / "unit.pem"
    assert settings.center_ca_file == folder / "tls" / "center-ca.pem"

    [made] = [r for r in center.audit("device.code_create") if r.object == "P-117"]
    assert made.actor.startswith("cli:") and made.outcome == "ok"
    [enrolled] = [r for r in center.audit("device.enroll") if r.object == "P-117"]
    assert enrolled.outcome == "ok" and enrolled.source == "127.0.0.1"
    assert enrolled.detail["serial"] == issued.serial
    assert enrolled.detail["evidence_key"] == evidence.public_b64

    # The code was used: a second gateway gets nothing with it, and is told why.
    again = center.enroll(code, tmp_path / "second")
    assert again.returncode == 1
    assert "already used" in again.stderr and "ask for a new one" in again.stderr
    assert not (tmp_path / "second").exists()
    assert len(center.certs("P-117")) == 1
    refused = [r for r in center.audit("device.enroll") if r.outcome == "refused"]
    assert any(r.object == "P-117" and "already used" in str(r.detail) for r in refused)


def test_unknown_and_expired_codes_are_refused(center: Center, tmp_path: Path) -> None:
    unknown = center.enroll("ABCD-EFGH-JKMN-PQRS", tmp_path / "a")
    assert unknown.returncode == 1 and "unknown enrollment code" in unknown.stderr
    code = center.code("P-300")
    with center.database.write() as tx:
        tx.execute(
            update(EnrollCodeRow)
            .where(EnrollCodeRow.unit_id == "P-300")
            .values(expires_at=time.time() - 60)
        )
    expired = center.enroll(code, tmp_path / "b")
    assert expired.returncode == 1 and "expired at" in expired.stderr
    assert center.certs("P-300") == []
    reasons = [str(r.detail.get("reason")) for r in center.audit("device.enroll")]
    assert any("unknown enrollment code" in r for r in reasons)
    assert any("expired at" in r for r in reasons)


def test_a_center_not_trusted_is_named_with_the_fix(center: Center, tmp_path: Path) -> None:
    done = center.run(
        "provision", "enroll", "--center", center.url, "--code", "ABCD-EFGH-JKMN-PQRS",
        "--dir", str(tmp_path / "gw"),
    )  # fmt: skip
    assert done.returncode == 1
    assert "not trusted" in done.stderr and "--ca-file" in done.stderr
    assert not (tmp_path / "gw").exists()


def crl_serials(center: Center) -> set[str]:
    crl = x509.load_pem_x509_crl((center.data_dir / "devices" / "crl.pem").read_bytes())
    return {serial_hex(r.serial_number) for r in crl}


def test_a_replacement_gateway_revokes_the_old_one(center: Center, tmp_path: Path) -> None:
    assert center.enroll(center.code("P-200"), tmp_path / "old").returncode == 0
    [old] = center.certs("P-200")
    assert center.enroll(center.code("P-200"), tmp_path / "new").returncode == 0
    first, second = center.certs("P-200")
    assert first.serial == old.serial
    assert first.revoked_at is not None and first.revoked_by == "replaced"
    assert second.revoked_at is None
    assert old.serial in crl_serials(center) and second.serial not in crl_serials(center)
    evidence = UnitKey.from_bytes((tmp_path / "new" / "identity" / "unit.key").read_bytes())
    with center.database.read() as tx:
        assert Devices(tx).evidence_key("P-200") == evidence.public_b64
    [replacing] = [r for r in center.audit("device.enroll") if r.detail.get("replaced")]
    assert replacing.detail["replaced"] == [old.serial]


def test_revoke_and_list(center: Center, tmp_path: Path) -> None:
    assert center.enroll(center.code("P-400"), tmp_path / "gw").returncode == 0
    [cert] = center.certs("P-400")
    revoked = center.run("provision", "revoke", "P-400")
    assert revoked.returncode == 0, revoked.stderr
    assert cert.serial in revoked.stdout
    assert cert.serial in crl_serials(center)
    [now] = center.certs("P-400")
    assert now.revoked_at is not None and now.revoked_by is not None
    assert now.revoked_by.startswith("cli:")
    listed = center.run("provision", "list")
    assert listed.returncode == 0, listed.stderr
    [line] = [row for row in listed.stdout.splitlines() if cert.serial in row]
    assert line.startswith("P-400") and "by cli:" in line
    [audited] = [r for r in center.audit("device.revoke") if r.object == "P-400"]
    assert audited.outcome == "ok" and audited.detail["serials"] == [cert.serial]
    nothing = center.run("provision", "revoke", "P-400")
    assert "none was valid" in nothing.stdout
    bad = center.run("provision", "create-code", "--unit", "rtcc.center")
    assert bad.returncode == 2 and "not a valid unit" in bad.stderr


def test_a_tech_makes_codes_and_revokes_over_https(center: Center) -> None:
    password = "correct horse battery staple 42"
    added = center.run(
        "users", "add", "tina", "--role", "tech", "--password-stdin", stdin=password + "\n"
    )
    assert added.returncode == 0, added.stderr
    with httpx.Client(base_url=center.url, verify=center.tls(), timeout=10) as http:
        signed = http.post("/api/v1/session", json={"name": "tina", "password": password})
        assert signed.status_code == 200, signed.text
        csrf = {"x-csrf-token": signed.json()["csrf_token"]}
        made = http.post("/api/v1/provision/codes", json={"unit_id": "P-500"}, headers=csrf)
        assert made.status_code == 201, made.text
        code = made.json()["code"]
        enrolled = httpx.post(
            center.url + "/api/v1/provision/enroll", json=enroll_body(code), verify=center.tls()
        )
        assert enrolled.status_code == 200, enrolled.text
        answer = enrolled.json()
        assert answer["unit_id"] == answer["config"]["unit_id"] == "P-500"
        cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(answer["ca"].encode()))
        listed = http.get("/api/v1/provision/devices").json()
        [row] = [d for d in listed if d["unit_id"] == "P-500"]
        assert row["serial"] == answer["serial"] and row["revoked_at"] is None
        revoked = http.post("/api/v1/provision/devices/P-500/revoke", headers=csrf)
        assert revoked.json() == {
            "unit_id": "P-500",
            "revoked": [answer["serial"]],
            "broker_updated": True,
        }
    [made_by] = [r for r in center.audit("device.code_create") if r.object == "P-500"]
    assert made_by.actor == "tina" and made_by.role == "tech"
    [revoked_by] = [r for r in center.audit("device.revoke") if r.object == "P-500"]
    assert revoked_by.actor == "tina"


def enroll_body(code: str) -> dict[str, str]:
    return {
        "code": code,
        "csr": certificate_request(ec.generate_private_key(ec.SECP256R1())).decode(),
        "evidence_key": UnitKey.generate().public_b64,
    }


def test_one_code_enrolls_one_gateway_even_at_once(center: Center) -> None:
    code = center.code("P-600")

    def attempt(_: int) -> int:
        url = center.url + "/api/v1/provision/enroll"
        return httpx.post(url, json=enroll_body(code), verify=center.tls(), timeout=30).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(attempt, range(2)))
    assert statuses == [200, 403]
    assert len(center.certs("P-600")) == 1


def test_nobody_signed_in_gets_codes(center: Center) -> None:
    made = httpx.post(
        center.url + "/api/v1/provision/codes", json={"unit_id": "P-1"}, verify=center.tls()
    )
    assert made.status_code == 401


def test_enrollment_attempts_are_limited_per_address(center: Center) -> None:
    """From an address of its own (127.0.0.2), so that the other tests' attempts (from
    127.0.0.1) neither count nor are held back."""
    body = enroll_body("ZZZZ-ZZZZ-ZZZZ-ZZZZ")
    transport = httpx.HTTPTransport(verify=center.tls(), local_address="127.0.0.2")
    with httpx.Client(base_url=center.url, transport=transport, timeout=10) as http:
        statuses = [http.post("/api/v1/provision/enroll", json=body) for _ in range(ATTEMPTS)]
        assert {a.status_code for a in statuses} == {403}
        held = http.post("/api/v1/provision/enroll", json=body)
    assert held.status_code == 429
    assert int(held.headers["retry-after"]) >= 1
    assert "too many enrollment attempts" in held.json()["detail"]
    assert center.enroll(center.code("P-800"), center.data_dir / "p-800").returncode == 0
    refused = [r for r in center.audit("device.enroll") if r.source == "127.0.0.2"]
    assert len(refused) == ATTEMPTS and {r.outcome for r in refused} == {"refused"}


CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


def mqtt_connect(port: int, files: TlsFiles, client_id: str) -> bytes:
    """The broker's answer to an MQTT 3.1.1 CONNECT over mutual TLS with `files`: its
    CONNACK, or b"" when it refuses the certificate and closes the connection."""
    assert files.ca_file and files.cert_file and files.key_file
    context = ssl.create_default_context(cafile=str(files.ca_file))
    context.load_cert_chain(files.cert_file, files.key_file)
    ident = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(ident).to_bytes(2, "big") + ident
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(bytes([0x10, len(body)]) + body)
                return tls.recv(4)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return b""


def test_enrolled_files_reach_a_broker_of_the_device_ca(center: Center, tmp_path: Path) -> None:
    """The broker's and the center's certificates and the CRL from the device CA, as the
    supervised broker takes them: the enrolled gateway is let in, and no more once revoked."""
    assert center.enroll(center.code("P-700"), tmp_path / "gw").returncode == 0
    gateway = load_settings(AgentSettings, tmp_path / "gw" / "agent.toml").mqtt.tls
    ca = DeviceCa(center.data_dir / "devices")
    served = ca.issue_broker(["127.0.0.1"])
    own = ca.issue_center("rtcc-1")
    provisioning = Provisioning(center.database, center.data_dir, ProvisionSettings())
    tls = BrokerTls(
        ca_file=ca.ca_file,
        cert_file=served.cert_file,
        key_file=served.key_file,
        crl_file=provisioning.write_crl(),
        center_identity=center_identity("rtcc-1"),
        center_id="rtcc-1",
        admin_identity=admin_identity("rtcc-1"),
        units=("P-700",),
    )
    broker = MosquittoProcess(tmp_path / "broker", MosquittoOptions(tls=tls))
    broker.start()
    try:
        assert mqtt_connect(broker.port, gateway, "P-700") == CONNACK_ACCEPTED
        center_files = TlsFiles(ca_file=ca.ca_file, cert_file=own.cert_file, key_file=own.key_file)
        assert mqtt_connect(broker.port, center_files, "rtcc-1-fleet") == CONNACK_ACCEPTED
        assert center.run("provision", "revoke", "P-700").returncode == 0
        broker.stop()  # a new start reads the CRL the revocation wrote
        broker.start()
        assert mqtt_connect(broker.port, gateway, "P-700") == b""
        assert mqtt_connect(broker.port, center_files, "rtcc-1-fleet") == CONNACK_ACCEPTED
    finally:
        broker.stop()

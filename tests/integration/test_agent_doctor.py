"""`rtcc doctor` on a gateway, against real things: a Mosquitto with a mutual-TLS listener
and certificates made here, a real `rtcc central` over HTTPS, gpsd fed by gpsfake, real
files and devices. A healthy unit exits 0; each failure is named with its fix."""

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.doctor import DoctorOptions, diagnose
from central.broker import free_port
from tests.helpers import ROOT, run_rtcc

NMEA = ROOT / "tests" / "data" / "patrol.nmea"
UNIT = "DOC-1"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    days: float = 365,
    ca: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca and issuer is not None and cn == "127.0.0.1":
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(cn))]),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path
    server_cert: Path
    server_key: Path
    ca_pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("test device CA", ca_key, None, ca=True)
    server_key, unit_key = _key(), _key()
    return Pki(
        ca=_write(folder / "ca.pem", _pem(ca)),
        cert=_write(folder / "unit.pem", _pem(_cert(UNIT, unit_key, (ca, ca_key)))),
        key=_write(folder / "unit.key", _key_pem(unit_key)),
        server_cert=_write(
            folder / "server.pem", _pem(_cert("127.0.0.1", server_key, (ca, ca_key)))
        ),
        server_key=_write(folder / "server.key", _key_pem(server_key)),
        ca_pair=(ca, ca_key),
    )


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "exited before it listened"
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} not listening within {timeout}s")


@pytest.fixture(scope="module")
def tls_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Mosquitto with only a listener that requires a client certificate from the CA."""
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    # As root Mosquitto drops to its own user, which cannot read the files made here.
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\ncafile {pki.ca}\ncertfile {pki.server_cert}\n"
        f"keyfile {pki.server_key}\nrequire_certificate true\nuse_identity_as_username true\n"
        f"allow_anonymous true\nlog_dest stderr\n{user}"
    )
    broker = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, broker)
        yield f"mqtts://127.0.0.1:{port}"
    finally:
        broker.terminate()
        broker.wait(10)


@dataclass
class CenterProcess:
    url: str
    ca: Path


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CenterProcess]:
    data_dir = tmp_path_factory.mktemp("center")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rtcc", "central"],
        cwd=ROOT,
        env={**os.environ, "RTCC_HTTP__PORT": str(port), "RTCC_DATA_DIR": str(data_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url, ca = f"https://127.0.0.1:{port}", data_dir / "tls" / "ca.pem"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "rtcc central exited"
            try:
                context = ssl.create_default_context(cafile=str(ca))
                with urllib.request.urlopen(url + "/healthz", context=context, timeout=2):
                    break
            except (OSError, ssl.SSLError):
                assert time.monotonic() < deadline, "center not up within 30 s"
                time.sleep(0.1)
        yield CenterProcess(url, ca)
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture(scope="module")
def gpsd() -> Iterator[int]:
    if shutil.which("gpsfake") is None:
        pytest.skip("gpsfake not installed (Debian: gpsd-clients)")
    port = free_port()
    process = subprocess.Popen(
        ["gpsfake", "-q", "-c", "0.05", "-P", str(port), str(NMEA)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def bodycam() -> Iterator[dict[str, str]]:
    """A simulated body-cam speaking the link over TCP, its video over RTSP."""
    sim = ["bodycam-sim", "--listen", "tcp://127.0.0.1:0", "--video-size", "320x240"]
    process = subprocess.Popen(
        [sys.executable, "-m", "rtcc", *sim, "--rtsp-port", str(free_port())],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready: dict[str, str] = json.loads(process.stdout.readline())
        yield ready
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def healthy_env(
    tmp_path: Path,
    pki: Pki,
    tls_broker: str,
    center: CenterProcess,
    gpsd: int,
    bodycam: dict[str, str],
) -> dict[str, str]:
    return {
        "RTCC_UNIT_ID": UNIT,
        "RTCC_DATA_DIR": str(tmp_path / "agent"),
        "RTCC_MQTT_URL": tls_broker,
        "RTCC_MQTT__TLS__CA_FILE": str(pki.ca),
        "RTCC_MQTT__TLS__CERT_FILE": str(pki.cert),
        "RTCC_MQTT__TLS__KEY_FILE": str(pki.key),
        "RTCC_CENTER_URL": center.url,
        "RTCC_CENTER_CA_FILE": str(center.ca),
        "RTCC_VEHICLE__SOURCE": "gpsd",
        "RTCC_VEHICLE__GPSD_PORT": str(gpsd),
        "RTCC_DEVICE__LINK": bodycam["link"],
        "RTCC_VIDEO__SOURCE": "rtsp",
        "RTCC_VIDEO__URL": bodycam["video"],
    }


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RTCC_")}
    done = run_rtcc(
        "doctor", "--json", "--gps-wait", "10", *args, env={**clean, **env}, timeout=120
    )
    return done.returncode, json.loads(done.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_a_healthy_unit_passes(healthy_env: dict[str, str]) -> None:
    code, report = doctor(healthy_env)
    checks = by_name(report)
    assert code == 0, report
    assert report["ok"] is True
    for name in (
        "configuration",
        "certificates",
        "center",
        "clock",
        "broker",
        "bodycam",
        "gps",
        "disk",
    ):
        assert checks[name]["status"] == "ok", checks[name]
    assert "RTSP camera" in checks["video"]["detail"]
    assert checks["certificates"]["facts"]["days_left"] > 360
    assert abs(checks["clock"]["facts"]["skew_s"]) <= 3


def test_each_failure_is_named_with_its_fix(
    healthy_env: dict[str, str], tmp_path: Path, pki: Pki
) -> None:
    closed = free_port()
    foreign_key = _key()
    foreign = _write(tmp_path / "foreign.key", _key_pem(foreign_key))
    env = {
        **healthy_env,
        "RTCC_MQTT_URL": f"mqtts://127.0.0.1:{closed}",  # the broker is down
        "RTCC_VIDEO__SOURCE": "v4l2",
        "RTCC_VIDEO__DEVICE": str(tmp_path / "video9"),  # no camera
        "RTCC_EVIDENCE__MIN_FREE_BYTES": str(2**62),  # more than any disk has free
        "RTCC_VEHICLE__GPSD_PORT": str(free_port()),  # gpsd not running
        "RTCC_DEVICE__LINK": f"tcp://127.0.0.1:{free_port()}",  # the body-cam is off
    }
    code, report = doctor(env, "--gps-wait", "1")
    checks = by_name(report)
    assert code == 1
    assert report["ok"] is False
    for name, words in (
        ("broker", "refused"),
        ("bodycam", "refused"),
        ("video", "does not exist"),
        ("disk", "recording pauses"),
        ("gps", "no answer"),
    ):
        assert checks[name]["status"] == "fail", checks[name]
        assert words in checks[name]["detail"].lower(), checks[name]
        assert checks[name]["fix"], checks[name]
    assert checks["center"]["status"] == "ok"

    # A key that is not the certificate's: refused before anything connects.
    code, report = doctor({**healthy_env, "RTCC_MQTT__TLS__KEY_FILE": str(foreign)})
    assert code == 1
    cert = by_name(report)["certificates"]
    assert cert["status"] == "fail" and "not the key" in cert["detail"], cert
    assert "enroll" in cert["fix"]


def test_an_expired_or_foreign_certificate_fails(
    healthy_env: dict[str, str], tmp_path: Path, pki: Pki
) -> None:
    key = serialization.load_pem_private_key(pki.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    expired = _write(tmp_path / "expired.pem", _pem(_cert(UNIT, key, pki.ca_pair, days=-0.5)))
    code, report = doctor({**healthy_env, "RTCC_MQTT__TLS__CERT_FILE": str(expired)})
    checks = by_name(report)
    assert code == 1
    assert checks["certificates"]["status"] == "fail"
    assert "expired" in checks["certificates"]["detail"]
    # The broker, too, refuses it: named as a TLS failure with its fix.
    assert checks["broker"]["status"] == "fail" and "TLS" in checks["broker"]["detail"]

    other_key = _key()
    other_ca = _cert("another CA", other_key, None, ca=True)
    foreign = _write(tmp_path / "foreign.pem", _pem(_cert(UNIT, key, (other_ca, other_key))))
    code, report = doctor({**healthy_env, "RTCC_MQTT__TLS__CERT_FILE": str(foreign)})
    checks = by_name(report)
    assert code == 1
    assert "not issued by the CA" in checks["certificates"]["detail"]
    assert checks["broker"]["status"] == "fail"


def test_a_wrong_clock_is_named_against_the_real_center(
    healthy_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in healthy_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RTCC_VEHICLE__SOURCE", "simulator")
    # This gateway's clock a minute fast (the machine's own cannot be set in a test).
    found = {c.name: c for c in diagnose(DoctorOptions(), clock=lambda: time.time() + 60)}
    assert found["clock"].status == "fail"
    assert 59 <= float(found["clock"].facts["skew_s"] or 0) <= 62, found["clock"]
    assert found["clock"].fix is not None and "timedatectl" in found["clock"].fix
    assert found["center"].status == "ok"


def test_a_broken_configuration_is_the_only_finding(tmp_path: Path) -> None:
    code, report = doctor({"RTCC_UNIT_ID": "no/slashes", "RTCC_DATA_DIR": str(tmp_path)})
    assert code == 1
    assert [c["name"] for c in report["checks"]] == ["configuration"]
    assert "RTCC_UNIT_ID" in report["checks"][0]["detail"]

"""`rtcc provision enroll` (a real process) against a stand-in for the center's HTTPS
enrollment endpoint that can answer wrongly: the center must be https://, its answer must be
an enrollment of the key made on the gateway (its unit, its CA, an mqtts:// broker), a later
center may add fields; anything refused leaves the earlier enrollment exactly as it was.
`--install-service` end to end under a temporary root, the system's commands recorded."""

import contextlib
import datetime as dt
import io
import json
import os
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent import install_service
from agent.config import AgentSettings
from agent.enroll import enroll
from rtcc.cli import main
from runtime.config import load_settings
from tests.helpers import run_rtcc
from tests.pki_helpers import DAY, TestCa
from tests.service_host import SERVICE_IDS, RecordingHost

UNIT = "P-117"
Answer = dict[str, Any]
# What the stand-in does with a request's body: the HTTP status, the JSON answer, headers.
Reply = tuple[int, Answer, dict[str, str]]
# Makes the answer wrong (or richer): a changed answer, anything else to send, or a Reply.
Change = Callable[[Answer, "StandIn"], Any]


def signed(ca: TestCa, public_key: Any, common_name: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + 365 * DAY)
        .sign(ca.key, hashes.SHA256())
    )


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class StandIn:
    """The center's enrollment endpoint over HTTPS, signing each request's CSR with its
    device CA; `change` makes the answer wrong (or richer) before it is sent."""

    folder: Path
    change: Change = lambda answer, _: answer
    requests: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.https_ca = TestCa(self.folder / "https", name="stand-in center CA")
        self.devices = TestCa(self.folder / "devices", name="stand-in device CA")
        self.cert_file, self.key_file, _ = self.https_ca.issue("center", server_ip="127.0.0.1")

    def answer(self, body: Answer) -> Reply:
        self.requests.append(body)
        csr = x509.load_pem_x509_csr(body["csr"].encode())
        cert = signed(self.devices, csr.public_key(), UNIT)
        answer = {
            "unit_id": UNIT,
            "serial": format(cert.serial_number, "x"),
            "expires_at": cert.not_valid_after_utc.timestamp(),
            "certificate": pem(cert),
            "ca": pem(self.devices.cert),
            "config": {
                "unit_id": UNIT,
                "mqtt_url": "mqtts://127.0.0.1:8883",
                "center_url": self.url,
            },
        }
        changed = self.change(answer, self)
        return changed if isinstance(changed, tuple) else (200, changed, {})

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def serve(self) -> Iterator[None]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer, headers = stand_in.answer(body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

    def args(self, folder: Path, *more: str) -> list[str]:
        return [
            "provision", "enroll", "--center", self.url, "--code", "ABCD-EFGH-JKMN-PQRS",
            "--ca-file", str(self.https_ca.ca_file), "--dir", str(folder), *more,
        ]  # fmt: skip

    def enroll(self, folder: Path, *more: str) -> subprocess.CompletedProcess[str]:
        return run_rtcc(*self.args(folder, *more))


@pytest.fixture
def center(tmp_path: Path) -> Iterator[StandIn]:
    stand_in = StandIn(tmp_path / "center")
    with stand_in.serve():
        yield stand_in


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Everything in the folder: files' bytes, symlinks' targets."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[rel] = os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def test_a_gateway_enrolls_and_a_later_centers_extra_fields_are_ignored(
    center: StandIn, tmp_path: Path
) -> None:
    def richer(answer: Answer, _: StandIn) -> Answer:
        answer["renew_after"] = 1.0
        answer["config"]["ntp"] = "pool.example"
        return answer

    center.change = richer
    folder = tmp_path / "gw"
    done = center.enroll(folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == [
        "Making this gateway's TLS key and evidence signing key...",
        f"Asking {center.url} to enroll this gateway...",
        f"Writing unit {UNIT}'s files to {folder}...",
    ]
    assert f"Enrolled as unit {UNIT}" in done.stdout and done.stderr == ""
    settings = load_settings(AgentSettings, folder / "agent.toml")
    assert settings.unit_id == UNIT and settings.mqtt_url == "mqtts://127.0.0.1:8883"
    assert settings.mqtt.tls.key_file == folder / "tls" / "unit.key"
    cert = x509.load_pem_x509_certificate((folder / "tls" / "unit.pem").read_bytes())
    key = serialization.load_pem_private_key((folder / "tls" / "unit.key").read_bytes(), None)
    assert cert.public_key() == key.public_key()
    assert (folder / "tls" / "center-ca.pem").read_bytes() == center.https_ca.ca_file.read_bytes()


def other_key(answer: Answer, center: StandIn) -> Answer:
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = signed(center.devices, stranger, UNIT)
    return {**answer, "certificate": pem(cert), "serial": format(cert.serial_number, "x")}


def other_name(answer: Answer, center: StandIn) -> Answer:
    mine = x509.load_pem_x509_certificate(answer["certificate"].encode()).public_key()
    cert = signed(center.devices, mine, "P-118")
    return {**answer, "certificate": pem(cert), "serial": format(cert.serial_number, "x")}


def other_ca(answer: Answer, center: StandIn) -> Answer:
    foreign = TestCa(center.folder / "foreign", name="stand-in device CA")
    return {**answer, "ca": pem(foreign.cert)}


def config(**changes: str) -> Change:
    return lambda answer, _: {**answer, "config": {**answer["config"], **changes}}


def top(**changes: Any) -> Change:
    return lambda answer, _: {**answer, **changes}


def without(name: str) -> Change:
    return lambda answer, _: {k: v for k, v in answer.items() if k != name}


REFUSED: dict[str, tuple[Change, str]] = {
    "plain broker": (config(mqtt_url="mqtt://127.0.0.1:1883"), "speaks mqtts:// only"),
    "one plain broker of two": (
        config(mqtt_url="mqtts://a.example:8883,mqtt://b.example:1883"),
        "the broker mqtt://b.example:1883 is plain MQTT",
    ),
    "plain center": (config(center_url="http://127.0.0.1:8080"), "is not https://"),
    "another unit's config": (config(unit_id="P-118"), "the configuration is for 'P-118'"),
    "key not ours": (other_key, "the certificate is not for the key made on this gateway"),
    "name not the unit": (other_name, "the certificate names ['P-118'] but the unit is 'P-117'"),
    "CA not the issuer": (other_ca, "the certificate is not from the device CA answered"),
    "serial not the certificate's": (top(serial="abc"), "the certificate's serial is not abc"),
    "bad unit id": (
        top(unit_id="P/117"),
        "(unit_id: Value error, bad_id: not a valid unit/center id",
    ),
    "number as text": (top(expires_at="tomorrow"), "(expires_at: Input should be a valid number"),
    "text as number": (top(serial=117), "(serial: Input should be a valid string"),
    "no certificate": (without("certificate"), "(certificate: Field required)"),
    "not a certificate": (top(certificate="hello"), "a certificate does not parse"),
    "not an object": (
        lambda answer, _: [answer],
        "(the answer: Input should be a valid dictionary",
    ),
    "redirected": (
        lambda answer, _: (307, {}, {"Location": "http://127.0.0.1:1/api/v1/provision/enroll"}),
        "the center refused: Temporary Redirect (HTTP 307)",
    ),
    "refused": (
        lambda answer, _: (403, {"detail": "enrollment code already used"}, {}),
        "the center refused: enrollment code already used (HTTP 403)",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_wrong_answer_is_refused_and_the_earlier_enrollment_kept(
    center: StandIn, tmp_path: Path, case: str
) -> None:
    folder = tmp_path / "gw"
    enroll(center.url, "ABCD-EFGH-JKMN-PQRS", folder, center.https_ca.ca_file, io.StringIO())
    (folder / "agent.db").write_bytes(b"the agent's outbox")
    before = snapshot(folder)
    center.change, expected = REFUSED[case]
    done = center.enroll(folder)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("rtcc provision enroll: ") and expected in line, line
    assert "Writing unit" not in done.stdout
    assert snapshot(folder) == before


def test_a_refused_first_enrollment_writes_nothing(center: StandIn, tmp_path: Path) -> None:
    center.change = other_key
    done = center.enroll(tmp_path / "gw")
    assert done.returncode == 1 and "not for the key made on this gateway" in done.stderr
    assert not (tmp_path / "gw").exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}", "127.0.0.1:{port}", "https://"])
def test_only_an_https_center_is_asked(center: StandIn, tmp_path: Path, url: str) -> None:
    args = center.args(tmp_path / "gw")
    args[args.index("--center") + 1] = url.format(port=center.port)
    done = run_rtcc(*args)
    assert done.returncode == 1
    assert "the center's URL must be https://host[:port]" in done.stderr
    assert "never sent in the clear" in done.stderr
    assert center.requests == []
    assert not (tmp_path / "gw").exists()


def test_install_service_refuses_another_folder_before_the_code_is_spent(
    center: StandIn, tmp_path: Path
) -> None:
    done = center.enroll(tmp_path / "elsewhere", "--install-service")
    assert done.returncode == 1
    assert "--install-service runs the agent from /var/lib/rtcc-agent" in done.stderr
    assert center.requests == []


def test_install_service_enrolls_into_the_units_folder_and_starts_it(
    center: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    host = RecordingHost()
    monkeypatch.setenv(install_service.ROOT_ENV, str(root))
    monkeypatch.setattr(install_service, "system_host", lambda root: host)
    args = center.args(tmp_path / "unused", "--install-service")
    del args[args.index("--dir") : args.index("--dir") + 2]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(args) == 0
    folder = root / "var" / "lib" / "rtcc-agent"
    settings = load_settings(AgentSettings, folder / "agent.toml")
    assert settings.unit_id == UNIT and settings.data_dir == folder
    unit = (root / "etc" / "systemd" / "system" / "rtcc-agent.service").read_text()
    assert " agent --config /var/lib/rtcc-agent/agent.toml" in unit
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in [folder, *folder.rglob("*")]} == {
        SERVICE_IDS
    }
    assert [c[:2] for c in host.calls] == [
        ["useradd", "--system"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable"],
        ["systemctl", "restart"],
    ]
    said = out.getvalue()
    assert f"Enrolled as unit {UNIT}" in said and "Gave " in said
    assert "Start the agent with" not in said


def test_install_service_under_another_root_changes_nothing_of_this_machine(
    center: StandIn, tmp_path: Path
) -> None:
    """A real `rtcc provision enroll --install-service` with RTCC_INSTALL_ROOT: the files and
    the unit land under it, and the commands for users and services are printed, not run."""
    root = tmp_path / "root"
    args = center.args(tmp_path / "unused", "--install-service")
    del args[args.index("--dir") : args.index("--dir") + 2]
    done = run_rtcc(*args, env={**os.environ, install_service.ROOT_ENV: str(root)})
    assert done.returncode == 0, done.stderr
    assert (root / "var/lib/rtcc-agent/agent.toml").is_file()
    assert (root / "etc/systemd/system/rtcc-agent.service").is_file()
    assert "As root run: useradd --system --user-group" in done.stdout
    assert "systemd is not running here" in done.stdout
    assert "systemctl daemon-reload; systemctl enable rtcc-agent.service;" in done.stdout

"""`rtcc provision enroll`: a gateway enrolls with the center using a one-time code.

The TLS key and the evidence signing key are made here and never leave the gateway: the
center gets a certificate request and the evidence public key, and answers with the unit's
certificate, the device CA and the agent's configuration. Everything is written to the
enrollment folder with mode 0600 (the folder 0700), keys last replaced only once the center
has answered, so a refused enrollment leaves an earlier one as it was.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protocol.evidence import UnitKey
from runtime.files import write_atomic

ENROLL_PATH = "/api/v1/provision/enroll"
TIMEOUT_S = 30.0


class EnrollFailed(Exception):
    """Why enrollment did not happen, in one line for the tech."""


@dataclass(frozen=True, slots=True)
class EnrollFiles:
    folder: Path

    @property
    def tls_key(self) -> Path:
        return self.folder / "tls" / "unit.key"

    @property
    def tls_cert(self) -> Path:
        return self.folder / "tls" / "unit.pem"

    @property
    def device_ca(self) -> Path:
        return self.folder / "tls" / "device-ca.pem"

    @property
    def center_ca(self) -> Path:
        return self.folder / "tls" / "center-ca.pem"

    @property
    def evidence_key(self) -> Path:
        # Where the agent's evidence recorder looks for its key under its data_dir.
        return self.folder / "identity" / "unit.key"

    @property
    def config(self) -> Path:
        return self.folder / "agent.toml"


@dataclass(frozen=True, slots=True)
class Enrollment:
    unit_id: str
    serial: str
    expires_at: float
    files: EnrollFiles


def certificate_request(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The center sets the subject (the unit id) itself: this one only proves the key."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtcc gateway")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def enroll(center: str, code: str, folder: Path, ca_file: Path | None, out: TextIO) -> Enrollment:
    files = EnrollFiles(folder)
    print("Making this gateway's TLS key and evidence signing key...", file=out, flush=True)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    evidence_key = UnitKey.generate()
    body = {
        "code": code.strip(),
        "csr": certificate_request(tls_key).decode(),
        "evidence_key": evidence_key.public_b64,
    }
    print(f"Asking {center} to enroll this gateway...", file=out, flush=True)
    answer = _post(center.rstrip("/") + ENROLL_PATH, body, ca_file)
    try:
        unit_id = str(answer["unit_id"])
        config = answer["config"]
        cert_pem, ca_pem = str(answer["certificate"]), str(answer["ca"])
        serial, expires_at = str(answer["serial"]), float(answer["expires_at"])
    except (KeyError, TypeError, ValueError):
        raise EnrollFailed(f"{center} answered something that is not an enrollment") from None
    print(f"Writing unit {unit_id}'s files to {folder}...", file=out, flush=True)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    for sub in (files.tls_key.parent, files.evidence_key.parent):
        sub.mkdir(mode=0o700, exist_ok=True)
    write_atomic(files.device_ca, ca_pem.encode(), mode=0o600)
    if ca_file is not None:
        write_atomic(files.center_ca, ca_file.read_bytes(), mode=0o600)
    key_pem = tls_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(files.tls_key, key_pem, mode=0o600)
    write_atomic(files.tls_cert, cert_pem.encode(), mode=0o600)
    write_atomic(files.evidence_key, evidence_key.private_bytes(), mode=0o600)
    toml = agent_toml(unit_id, config, files, ca_file is not None)
    write_atomic(files.config, toml.encode(), mode=0o600)
    return Enrollment(unit_id, serial, expires_at, files)


def agent_toml(unit_id: str, config: dict[str, Any], files: EnrollFiles, center_ca: bool) -> str:
    """What `rtcc agent --config` reads: the unit, the center and broker, and the files."""
    lines = [
        f"unit_id = {_quoted(unit_id)}",
        f"data_dir = {_quoted(str(files.folder))}",
        f"mqtt_url = {_quoted(str(config['mqtt_url']))}",
        f"center_url = {_quoted(str(config['center_url']))}",
    ]
    if center_ca:
        lines.append(f"center_ca_file = {_quoted(str(files.center_ca))}")
    lines += [
        "",
        "[mqtt.tls]",
        f"ca_file = {_quoted(str(files.device_ca))}",
        f"cert_file = {_quoted(str(files.tls_cert))}",
        f"key_file = {_quoted(str(files.tls_key))}",
    ]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    # A TOML basic string is a JSON string for everything written here.
    return json.dumps(text)


def _post(url: str, body: dict[str, str], ca_file: Path | None) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as answer:
            found = json.load(answer)
    except urllib.error.HTTPError as refused:
        raise EnrollFailed(f"the center refused: {_detail(refused)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise EnrollFailed(
                f"{url}: the center's certificate is not trusted here ({reason.verify_message});"
                " give the CA that signed it with --ca-file"
            ) from None
        raise EnrollFailed(f"cannot reach {url}: {reason}") from None
    except ValueError:
        raise EnrollFailed(f"{url} did not answer JSON") from None
    if not isinstance(found, dict):
        raise EnrollFailed(f"{url} answered something that is not an enrollment")
    return found


def _detail(refused: urllib.error.HTTPError) -> str:
    try:
        detail = json.load(refused).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(str(d.get("msg", d)) for d in detail if isinstance(d, dict))
    return f"{detail or refused.reason} (HTTP {refused.code})"

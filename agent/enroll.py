"""`rtcc provision enroll`: a gateway enrolls with the center using a one-time code.

The TLS key and the evidence signing key are made here and never leave the gateway: the
center gets a certificate request and the evidence public key, and answers with the unit's
certificate, the device CA and the agent's configuration. The center is reached over HTTPS
only, and its answer is checked before anything is written: the certificate is for the key
made here, names the unit answered, and comes from the CA answered; the broker is mqtts://.
Then the whole enrollment is put in force at once (agent/enroll_files.py), so a refused or
interrupted enrollment leaves an earlier one as it was.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TextIO
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from agent.enroll_files import EnrollFiles, write_enrollment
from agent.issued_cert import issued_problem
from protocol.evidence import UnitKey
from protocol.topics import check_id
from runtime.config import parse_broker_urls

ENROLL_PATH = "/api/v1/provision/enroll"
TIMEOUT_S = 30.0
MAX_PEM_CHARS = 65_536
MAX_ANSWER_BYTES = 1 << 20


class EnrollFailed(Exception):
    """Why enrollment did not happen, in one line for the tech."""


class _Answered(BaseModel):
    # A later center may say more: unknown fields are ignored, the known ones checked
    # strictly (no number where text is expected, or the reverse).
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class AnsweredConfig(_Answered):
    unit_id: str
    mqtt_url: str = Field(min_length=1, max_length=4096)
    center_url: str = Field(min_length=1, max_length=2048)


class CenterAnswer(_Answered):
    """What the center's /api/v1/provision/enroll answers (central/provision_routes.py)."""

    unit_id: Annotated[str, AfterValidator(check_id)]
    serial: str = Field(pattern=r"^[0-9a-fA-F]{1,64}$")
    expires_at: float
    certificate: str = Field(min_length=1, max_length=MAX_PEM_CHARS)
    ca: str = Field(min_length=1, max_length=MAX_PEM_CHARS)
    config: AnsweredConfig


@dataclass(frozen=True, slots=True)
class Enrollment:
    unit_id: str
    serial: str
    expires_at: float
    files: EnrollFiles
    # Files an earlier layout of the folder had where the enrollment's now are.
    moved_aside: Path | None = None


def certificate_request(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The center sets the subject (the unit id) itself: this one only proves the key."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtcc gateway")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def center_base(center: str) -> str:
    """The center's URL, which must be https:// (the code is the gateway's only credential,
    and the answer is what it will trust)."""
    parts = urlsplit(center.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise EnrollFailed(
            f"the center's URL must be https://host[:port] (given {center!r}):"
            " enrollment is never sent in the clear"
        )
    return center.strip().rstrip("/")


def enroll(center: str, code: str, folder: Path, ca_file: Path | None, out: TextIO) -> Enrollment:
    base = center_base(center)
    center_ca = _read_center_ca(ca_file) if ca_file is not None else None
    print("Making this gateway's TLS key and evidence signing key...", file=out, flush=True)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    evidence_key = UnitKey.generate()
    body = {
        "code": code.strip(),
        "csr": certificate_request(tls_key).decode(),
        "evidence_key": evidence_key.public_b64,
    }
    print(f"Asking {base} to enroll this gateway...", file=out, flush=True)
    answer = checked_answer(_post(base + ENROLL_PATH, body, ca_file), tls_key.public_key(), base)
    print(f"Writing unit {answer.unit_id}'s files to {folder}...", file=out, flush=True)
    files = EnrollFiles(folder)
    key_pem = tls_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    contents = {
        files.relative(files.device_ca): answer.ca.encode(),
        files.relative(files.tls_key): key_pem,
        files.relative(files.tls_cert): answer.certificate.encode(),
        files.relative(files.evidence_key): evidence_key.private_bytes(),
        files.relative(files.config): agent_toml(
            answer.unit_id, answer.config, files, center_ca is not None
        ).encode(),
    }
    if center_ca is not None:
        contents[files.relative(files.center_ca)] = center_ca
    aside = write_enrollment(folder, contents)
    return Enrollment(answer.unit_id, answer.serial, answer.expires_at, files, aside)


def checked_answer(found: Any, key: ec.EllipticCurvePublicKey, center: str) -> CenterAnswer:
    """The center's answer, if it is an enrollment of the key made here; else EnrollFailed
    naming what is wrong with it."""
    try:
        answer = CenterAnswer.model_validate(found)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "the answer"
        raise EnrollFailed(
            f"{center} answered something that is not an enrollment ({where}: {first['msg']})"
        ) from None
    problem = _certificate_problem(answer, key) or _config_problem(answer)
    if problem is not None:
        raise EnrollFailed(f"{center} answered an enrollment this gateway refuses: {problem}")
    return answer


def _certificate_problem(answer: CenterAnswer, key: ec.EllipticCurvePublicKey) -> str | None:
    try:
        cas = x509.load_pem_x509_certificates(answer.ca.encode())
    except ValueError as exc:
        return f"a certificate does not parse ({exc})"
    return issued_problem(
        answer.certificate, key, answer.unit_id, answer.serial, cas, "answered with it"
    )


def _config_problem(answer: CenterAnswer) -> str | None:
    config = answer.config
    if config.unit_id != answer.unit_id:
        return (
            f"the configuration is for {config.unit_id!r}, the certificate for {answer.unit_id!r}"
        )
    try:
        brokers = parse_broker_urls(config.mqtt_url)
    except ValueError as exc:
        return f"the broker URL is unusable ({exc})"
    plain = [str(u) for u in brokers if u.scheme != "mqtts"]
    if plain:
        return (
            f"the broker {', '.join(plain)} is plain MQTT; a unit with a client certificate"
            " speaks mqtts:// only (at the center: serve the broker with mutual TLS, or set"
            " RTCC_PROVISION__BROKER_URL=mqtts://...)"
        )
    parts = urlsplit(config.center_url)
    if parts.scheme != "https" or not parts.hostname:
        return f"the center URL given to the agent is not https:// ({config.center_url!r})"
    return None


def _read_center_ca(ca_file: Path) -> bytes:
    try:
        data = ca_file.read_bytes()
        x509.load_pem_x509_certificates(data)
    except OSError as exc:
        raise EnrollFailed(f"--ca-file {ca_file}: {exc.strerror or exc}") from None
    except ValueError:
        raise EnrollFailed(f"--ca-file {ca_file}: not a PEM certificate") from None
    return data


def agent_toml(unit_id: str, config: AnsweredConfig, files: EnrollFiles, center_ca: bool) -> str:
    """What `rtcc agent --config` reads: the unit, the center and broker, and the files."""
    lines = [
        f"unit_id = {_quoted(unit_id)}",
        f"data_dir = {_quoted(str(files.folder))}",
        f"mqtt_url = {_quoted(config.mqtt_url)}",
        f"center_url = {_quoted(config.center_url)}",
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # An enrollment answers where it was asked: a redirect (perhaps to plain HTTP) is refused.
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


def _post(url: str, body: dict[str, str], ca_file: Path | None) -> Any:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    opener = urllib.request.build_opener(
        _NoRedirect(), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with opener.open(request, timeout=TIMEOUT_S) as answer:
            data = answer.read(MAX_ANSWER_BYTES + 1)
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
    if len(data) > MAX_ANSWER_BYTES:
        raise EnrollFailed(f"{url} answered more than an enrollment ({MAX_ANSWER_BYTES} bytes)")
    try:
        return json.loads(data)
    except ValueError:
        raise EnrollFailed(f"{url} did not answer JSON") from None


def _detail(refused: urllib.error.HTTPError) -> str:
    try:
        detail = json.load(refused).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(str(d.get("msg", d)) for d in detail if isinstance(d, dict))
    return f"{detail or refused.reason} (HTTP {refused.code})"

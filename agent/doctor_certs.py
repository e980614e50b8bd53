"""The certificate check of `rtcc doctor`, and the finding every check returns."""

from __future__ import annotations

import datetime as dt
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from agent.config import AgentSettings

Status = Literal["ok", "warn", "fail", "skip"]
CERT_WARN_DAYS = 30
ENROLL = "get a new enrollment code from the center and run `rtcc provision enroll`"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None
    facts: dict[str, float | str | None] = field(default_factory=dict)


# ---- certificates ---------------------------------------------------------------------


def certificates(s: AgentSettings, now: dt.datetime) -> Check:
    tls = s.mqtt.tls
    if tls.cert_file is None:
        return Check("certificates", "skip", "no client certificate configured (mqtt.tls)")
    try:
        cert = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        return Check("certificates", "fail", f"{tls.cert_file}: {exc}", ENROLL)
    days = (cert.not_valid_after_utc - now).total_seconds() / 86400
    facts: dict[str, float | str | None] = {
        "subject": cert.subject.rfc4514_string(),
        "expires": cert.not_valid_after_utc.isoformat(),
        "days_left": round(days, 1),
    }
    problem = _cert_problem(cert, now, tls.key_file, tls.ca_file)
    if problem is not None:
        return Check("certificates", "fail", problem[0], problem[1], facts)
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not cn or cn[0].value != s.unit_id:
        got = cn[0].value if cn else None
        return Check(
            "certificates",
            "fail",
            f"certificate is for {got!r}, not {s.unit_id!r}",
            "enroll this gateway for its own unit: " + ENROLL,
            facts,
        )
    if days < CERT_WARN_DAYS:
        fix = (
            "the agent renews it by itself while it reaches the center over HTTPS: check the "
            "agent runs and its log for certificate_renewal_failed; if it cannot, " + ENROLL
            if s.renewal.enabled
            else "renewal is off (renewal.enabled): " + ENROLL
        )
        return Check("certificates", "warn", f"expires in {days:.0f} days", fix, facts)
    return Check("certificates", "ok", f"valid for {days:.0f} more days, key matches", None, facts)


def _cert_problem(
    cert: x509.Certificate, now: dt.datetime, key_file: Path | None, ca_file: Path | None
) -> tuple[str, str] | None:
    if now < cert.not_valid_before_utc:
        return (
            f"not valid before {cert.not_valid_before_utc.isoformat()}",
            "this gateway's clock is behind: enable NTP (timedatectl set-ntp true)",
        )
    if now >= cert.not_valid_after_utc:
        return f"expired {cert.not_valid_after_utc.isoformat()}", ENROLL
    if key_file is None:
        return "no key_file configured (RTCC_MQTT__TLS__KEY_FILE)", ENROLL
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        return f"{key_file}: {exc}", ENROLL
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, pub) != cert.public_key().public_bytes(der, pub):
        return f"{key_file} is not the key of the certificate", ENROLL
    if stat.S_IMODE(key_file.stat().st_mode) & 0o077:
        return (
            f"{key_file} is readable by others",
            f"chmod 600 {key_file} (and chown it to the agent's user)",
        )
    if ca_file is not None:
        try:
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_file.read_bytes()))
        except (OSError, ValueError, TypeError, InvalidSignature) as exc:
            return f"not issued by the CA in {ca_file}: {exc or 'bad signature'}", ENROLL
    return None

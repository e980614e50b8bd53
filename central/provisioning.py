"""Provisioning gateways: one-time enrollment codes, enrollment (a CSR and an evidence key
for a certificate and the agent's configuration), renewal by the gateway itself (signed
with that evidence key), revocation, the list of certificates, and the certificates of
monitoring tools (read-only broker identities).

Every change commits with its audit record in one transaction; a refused enrollment is
audited too (after its transaction rolled back). The CRL is written again after each
change that revokes, from the database, which stays the one record of what is revoked.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import JsonValue

from central.access.credentials import hash_secret
from central.db.audit import Audit
from central.db.audit_chain import AuditEntry
from central.db.devices import DeviceCert, Devices, DeviceStanding, Revision
from central.db.engine import Database
from central.device_ca import BadRequest, DeviceCa, MonitorFiles, monitor_pair
from central.errors import Invalid, Refused
from central.people import Operator
from central.provision_settings import ProvisionSettings
from central.renewal import RenewRefused, refusal
from protocol.renewal import RenewRequest
from protocol.topics import check_id
from runtime.files import locked

# No 0/O, 1/I/L: a code is read off one screen and typed on another.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_CODE_GROUPS = 4
_CODE_GROUP = 4
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True, slots=True)
class Enrolled:
    unit_id: str
    serial: str
    expires_at: float
    cert_pem: str
    ca_pem: str
    replaced: list[str]


@dataclass(frozen=True, slots=True)
class Renewed:
    unit_id: str
    serial: str
    expires_at: float
    cert_pem: str
    ca_pem: str


class EnrollRefused(Refused):
    """The code does not admit this enrollment: unknown, used or expired."""

    def __init__(self, detail: str, unit_id: str | None = None) -> None:
        super().__init__(detail)
        self.unit_id = unit_id  # audited, never told to the caller


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `24h`, `7d` -> seconds."""
    found = _DURATION.fullmatch(text.strip())
    if found is None or float(found.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (e.g. 30m, 24h, 7d)")
    return float(found.group(1)) * _UNITS[found.group(2)]


def new_code() -> str:
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_GROUPS * _CODE_GROUP))
    return "-".join(chars[i : i + _CODE_GROUP] for i in range(0, len(chars), _CODE_GROUP))


def code_hash(code: str) -> str:
    """Dashes, spaces and case do not matter when a person types a code."""
    return hash_secret("enroll:" + re.sub(r"[\s-]", "", code).upper())


def check_evidence_key(text: str) -> str:
    try:
        raw = base64.b64decode(text, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise Invalid("evidence_key must be an Ed25519 public key (32 bytes, base64)") from None
    return text


class Provisioning:
    def __init__(
        self,
        database: Database,
        data_dir: Path,
        settings: ProvisionSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self.ca = DeviceCa(data_dir / "devices")
        self.settings = settings
        self._clock = clock

    def create_code(self, operator: Operator, unit_id: str, ttl_s: float | None = None) -> str:
        """A one-time code for enrolling `unit_id`; only its hash is kept."""
        check_id(unit_id)
        now = self._clock()
        ttl_s = self.settings.code_ttl_s if ttl_s is None else ttl_s
        code = new_code()
        expires_at = now + ttl_s
        detail: dict[str, JsonValue] = {"expires_at": expires_at}
        with self._database.write() as tx:
            Devices(tx).add_code(code_hash(code), unit_id, operator.actor, now, expires_at)
            Audit(tx).append(_entry(operator, now, "device.code_create", "ok", unit_id, detail))
        return code

    def enroll(self, code: str, csr_pem: str, evidence_key: str, source: str) -> Enrolled:
        """Checks the code, issues the certificate, registers the evidence key, uses the
        code and revokes the unit's earlier certificates, all in one transaction."""
        check_evidence_key(evidence_key)
        now = self._clock()
        gateway = Operator("gateway", None, source)
        try:
            with self._database.write() as tx:
                devices = Devices(tx)
                hashed = code_hash(code)
                unit_id = self._admitted(devices, hashed, now)
                devices.lock_unit(unit_id)
                issued = self.ca.issue_unit(
                    csr_pem.encode(),
                    unit_id,
                    self.settings.cert_days,
                    dt.datetime.fromtimestamp(now, dt.UTC),
                )
                replaced = devices.revoke_unit(unit_id, now, "replaced")
                expires_at = issued.cert.not_valid_after_utc.timestamp()
                devices.add_cert(issued.serial, unit_id, now, expires_at)
                devices.register_key(unit_id, evidence_key, issued.serial, now)
                devices.use_code(hashed, now, source, issued.serial)
                detail: dict[str, JsonValue] = {
                    "serial": issued.serial,
                    "expires_at": expires_at,
                    "evidence_key": evidence_key,
                    "replaced": list(replaced),
                }
                Audit(tx).append(_entry(gateway, now, "device.enroll", "ok", unit_id, detail))
        except EnrollRefused as refused:
            self._audit_refusal(gateway, now, str(refused), refused.unit_id)
            raise
        except BadRequest as exc:
            self._audit_refusal(gateway, now, str(exc), None)
            raise Invalid(str(exc)) from None
        if replaced:
            self.write_crl()
        return Enrolled(
            unit_id,
            issued.serial,
            expires_at,
            issued.pem.decode(),
            self.ca.ca_pem().decode(),
            replaced,
        )

    def renew(self, request: RenewRequest, source: str) -> Renewed:
        """A new certificate, for the request's key and the configured lifetime, to the unit
        that signed `request` (admitted by central/renewal.py), recorded and audited in one
        transaction. The unit's earlier certificates stay valid until they expire: the
        gateway may still be connected with one. Refused: audited, then Refused; a CSR the
        CA will not sign: audited, then Invalid."""
        now = self._clock()
        gateway = Operator("gateway", None, source)
        unit_id = request.unit_id
        try:
            with self._database.write() as tx:
                devices = Devices(tx)
                key = devices.lock_unit(unit_id)
                reason = refusal(request, devices.certs(unit_id), key, now)
                if reason is not None:
                    raise RenewRefused(reason)
                at = dt.datetime.fromtimestamp(now, dt.UTC)
                issued = self.ca.issue_unit(
                    request.csr.encode(), unit_id, self.settings.cert_days, at
                )
                expires_at = issued.cert.not_valid_after_utc.timestamp()
                devices.add_cert(issued.serial, unit_id, now, expires_at)
                detail: dict[str, JsonValue] = {
                    "serial": issued.serial,
                    "previous": request.serial,
                    "expires_at": expires_at,
                }
                Audit(tx).append(_entry(gateway, now, "device.renew", "ok", unit_id, detail))
        except (RenewRefused, BadRequest) as exc:
            refused: dict[str, JsonValue] = {"reason": str(exc), "serial": request.serial}
            with self._database.write() as tx:
                entry = _entry(gateway, now, "device.renew", "refused", unit_id, refused)
                Audit(tx).append(entry)
            if isinstance(exc, BadRequest):
                raise Invalid(str(exc)) from None
            raise Refused(str(exc)) from None
        return Renewed(
            unit_id, issued.serial, expires_at, issued.pem.decode(), self.ca.ca_pem().decode()
        )

    def revoke(self, operator: Operator, unit_id: str) -> list[str]:
        """Revokes every certificate of the unit still valid, and writes the CRL."""
        check_id(unit_id)
        now = self._clock()
        with self._database.write() as tx:
            devices = Devices(tx)
            devices.lock_unit(unit_id)
            serials = devices.revoke_unit(unit_id, now, operator.actor)
            # A code handed out for the unit must not bring it back.
            codes = devices.cancel_codes(unit_id, now)
            outcome = "ok" if serials or codes else "noop"
            detail: dict[str, JsonValue] = {"serials": list(serials), "codes_cancelled": codes}
            Audit(tx).append(_entry(operator, now, "device.revoke", outcome, unit_id, detail))
        self.write_crl()
        return serials

    def issue_monitor(self, operator: Operator, name: str, folder: Path) -> MonitorFiles:
        """A monitor's key and certificate from the device CA, and the CA, in `folder`;
        audited. Its rights come from the broker settings, not from the certificate. A key
        already there is never replaced; files written for a record that could not be kept
        are removed."""
        pair = monitor_pair(folder, name)
        if pair.key_file.exists() or pair.cert_file.exists():
            raise Invalid(f"{folder} holds a certificate for monitor {name} already: move it away")
        now = self._clock()
        try:
            with self._database.write() as tx:
                at = dt.datetime.fromtimestamp(now, dt.UTC)
                made = self.ca.issue_monitor(name, folder, at)
                expires_at = made.issued.cert.not_valid_after_utc.timestamp()
                detail: dict[str, JsonValue] = {
                    "serial": made.issued.serial,
                    "expires_at": expires_at,
                }
                entry = _entry(operator, now, "device.monitor_issue", "ok", made.identity, detail)
                Audit(tx).append(entry)
        except BaseException:
            pair.key_file.unlink(missing_ok=True)
            pair.cert_file.unlink(missing_ok=True)
            raise
        return made

    def certs(self) -> list[DeviceCert]:
        with self._database.read() as tx:
            return Devices(tx).certs()

    def write_crl(self) -> Path:
        """The CRL as the database has it now. Under a lock shared with every process of
        this data directory (the center, `rtcc provision revoke`): a writer that read the
        database earlier can never replace a newer list with its older one."""
        with locked(self.ca.folder / "crl.lock"):
            with self._database.read() as tx:
                revoked = Devices(tx).revoked()
            now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
            return self.ca.write_crl(revoked, now)

    def standing(self) -> DeviceStanding:
        with self._database.read() as tx:
            return Devices(tx).standing(self._clock())

    def revision(self) -> Revision:
        with self._database.read() as tx:
            return Devices(tx).revision()

    def _admitted(self, devices: Devices, hashed: str, now: float) -> str:
        found = devices.code(hashed, for_update=True)
        if found is None:
            raise EnrollRefused("unknown enrollment code: check it, or ask for a new one")
        if found.used_at is not None:
            when = iso_time(found.used_at)
            raise EnrollRefused(
                f"this enrollment code was already used (at {when}): ask for a new one",
                unit_id=found.unit_id,
            )
        if found.expires_at <= now:
            raise EnrollRefused(
                f"this enrollment code expired at {iso_time(found.expires_at)}: ask for a new one",
                unit_id=found.unit_id,
            )
        return found.unit_id

    def _audit_refusal(
        self, gateway: Operator, now: float, reason: str, unit_id: str | None
    ) -> None:
        detail: dict[str, JsonValue] = {"reason": reason}
        entry = _entry(gateway, now, "device.enroll", "refused", unit_id, detail)
        with self._database.write() as tx:
            Audit(tx).append(entry)


def _entry(
    operator: Operator,
    now: float,
    action: str,
    outcome: str,
    unit_id: str | None,
    detail: Mapping[str, JsonValue],
) -> AuditEntry:
    return AuditEntry(
        now, operator.actor, action, outcome, operator.role, operator.source, unit_id, dict(detail)
    )


def iso_time(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

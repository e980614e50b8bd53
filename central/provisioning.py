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
from typing import TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import JsonValue

from central.access.credentials import hash_secret
from central.config import CentralSettings
from central.db.audit import Audit
from central.db.audit_chain import AuditEntry
from central.db.devices import DeviceCert, Devices, DeviceStanding, Revision
from central.db.engine import Database
from central.device_ca import BadRequest, DeviceCa, MonitorFiles
from central.errors import CenterError, Invalid, Refused
from central.people import CommandRefused, Operator, anchor_file, open_center_database
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


@dataclass(frozen=True, slots=True)
class ProvisionCommand:
    """One `rtcc provision` verb at the center, with its arguments."""

    verb: str
    unit: str | None = None
    expires: str | None = None
    monitor: str | None = None
    folder: Path | None = None


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
        audited. Its rights come from the broker settings, not from the certificate."""
        now = self._clock()
        with self._database.write() as tx:
            made = self.ca.issue_monitor(name, folder, dt.datetime.fromtimestamp(now, dt.UTC))
            expires_at = made.issued.cert.not_valid_after_utc.timestamp()
            detail: dict[str, JsonValue] = {"serial": made.issued.serial, "expires_at": expires_at}
            entry = _entry(operator, now, "device.monitor_issue", "ok", made.identity, detail)
            Audit(tx).append(entry)
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
            when = _iso(found.used_at)
            raise EnrollRefused(
                f"this enrollment code was already used (at {when}): ask for a new one",
                unit_id=found.unit_id,
            )
        if found.expires_at <= now:
            raise EnrollRefused(
                f"this enrollment code expired at {_iso(found.expires_at)}: ask for a new one",
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


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def run_provision_command(
    settings: CentralSettings, command: ProvisionCommand, out: TextIO
) -> None:
    """`rtcc provision create-code | revoke | list | monitor` on the center's database and
    data directory, as the OS user running it; CommandRefused for what cannot be done."""
    provision, verb = settings.provision, command.verb
    try:
        ttl = parse_duration(command.expires) if command.expires else None
        unit = check_id(command.unit) if command.unit is not None else None
    except ValueError as exc:
        raise CommandRefused(str(exc)) from None
    if command.monitor is not None and command.monitor not in settings.broker.monitors:
        raise CommandRefused(
            f"{command.monitor[:80]!r} is not one of this center's monitors: add it to "
            "RTCC_BROKER__MONITORS (broker.monitors) and restart the center"
        )
    database = open_center_database(settings.database())
    operator = Operator.at_command_line()
    try:
        provisioning = Provisioning(database, settings.data_dir, provision)
        if verb == "create-code":
            assert unit is not None
            code = provisioning.create_code(operator, unit, ttl)
            until = _iso(time.time() + (ttl or provision.code_ttl_s))
            print(f"Enrollment code for {unit} (one use, until {until}): {code}", file=out)
        elif verb == "revoke":
            assert unit is not None
            serials = provisioning.revoke(operator, unit)
            shown = ", ".join(serials) if serials else "none was valid"
            print(f"{unit}: certificates revoked: {shown}", file=out)
        elif verb == "monitor":
            assert command.monitor is not None and command.folder is not None
            made = provisioning.issue_monitor(operator, command.monitor, command.folder)
            print_monitor(made, settings, out)
        else:
            print_certs(provisioning.certs(), out)
        with database.read() as tx:
            anchor_file(settings.data_dir).record(Audit(tx).head(), time.time())
    except CenterError as exc:
        raise CommandRefused(str(exc)) from None
    finally:
        database.close()


def print_monitor(made: MonitorFiles, settings: CentralSettings, out: TextIO) -> None:
    """The files, and where the monitor reads: the broker gateways are told of, or the
    supervised one."""
    broker = settings.broker
    url = settings.provision.broker_url or (
        f"mqtts://{(broker.names or [broker.host])[0]}:{broker.port or '<port>'}"
    )
    expires = _iso(made.issued.cert.not_valid_after_utc.timestamp())
    print(
        f"{made.identity}: certificate {made.issued.serial}, until {expires}\n"
        f"  key          {made.pair.key_file}\n"
        f"  certificate  {made.pair.cert_file}\n"
        f"  device CA    {made.ca_file}\n"
        f"It may read the units' presence, state, events and results at {url} (mutual TLS, "
        "one connection at a time), and nothing else.",
        file=out,
    )


def print_certs(certs: list[DeviceCert], out: TextIO) -> None:
    """The last seen time is the running center's (its API's list has it)."""
    print(f"{'unit':<16} {'serial':<40} {'issued':<20} {'expires':<20} revoked", file=out)
    for c in certs:
        revoked = f"{_iso(c.revoked_at)} by {c.revoked_by}" if c.revoked_at else "-"
        print(
            f"{c.unit_id:<16} {c.serial:<40} {_iso(c.issued_at):<20} "
            f"{_iso(c.expires_at):<20} {revoked}",
            file=out,
        )

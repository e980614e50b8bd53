"""The center's device CA: the certificates gateways, the broker and the center itself show
each other over MQTT (mutual TLS), and the list of those revoked.

Made at first use in `{data_dir}/devices` (key 0600), apart from the center's HTTPS CA
(`central.tls`): a unit's certificate must never pass for the center's web server, nor the
other way round. A unit's certificate carries its unit id as CN, whatever the request said;
the broker's, the center's and monitoring tools' carry names no unit id can take (ids have
no dots), so that no unit can pass for them. The CRL (PEM) lists every revoked serial and
is replaced atomically, so the broker never reads half of one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central.tls import alt_name, key_pem, load_or_make_ca
from protocol.topics import check_id
from runtime.files import write_atomic

CA_DAYS = 3650
SERVICE_DAYS = 397
# Read by OpenSSL when it checks a CRL: past it, every certificate is refused. The center
# writes the list again at each change and well before this.
CRL_DAYS = 30
BROKER_CN = "rtcc.broker"
CENTER_CN_PREFIX = "rtcc.center."
ADMIN_SUFFIX = ".admin"
MONITOR_CN_PREFIX = "rtcc.monitor."
# A service certificate this close to its end is issued again when the center starts.
RENEW_SERVICE_DAYS = 30
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096


class BadRequest(ValueError):
    """A CSR the CA will not sign (unreadable, badly signed, or a weak key)."""


@dataclass(frozen=True, slots=True)
class Issued:
    cert: x509.Certificate
    pem: bytes

    @property
    def serial(self) -> str:
        return serial_hex(self.cert.serial_number)


@dataclass(frozen=True, slots=True)
class KeyPair:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class MonitorFiles:
    """What a monitoring tool connects with: its key and certificate, and the device CA."""

    identity: str
    pair: KeyPair
    ca_file: Path
    issued: Issued


def _pair(folder: Path, stem: str) -> KeyPair:
    return KeyPair(folder / f"{stem}.pem", folder / f"{stem}.key")


def monitor_pair(folder: Path, name: str) -> KeyPair:
    return _pair(folder, f"monitor-{check_id(name)}")


def serial_hex(serial: int) -> str:
    """How serials are written everywhere (database, CLI, audit): lower-case hex."""
    return format(serial, "x")


def center_identity(center_id: str) -> str:
    """The CN of the fleet service's MQTT certificate: its broker username."""
    return CENTER_CN_PREFIX + check_id(center_id)


def admin_identity(center_id: str) -> str:
    """The CN of the certificate the center administers the broker's rights with."""
    return center_identity(center_id) + ADMIN_SUFFIX


def monitor_identity(name: str) -> str:
    """The CN of a monitoring tool's MQTT certificate: its broker username (read-only)."""
    return MONITOR_CN_PREFIX + check_id(name)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rtcc devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


class DeviceCa:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca_file = folder / "ca.pem"
        self.ca_key_file = folder / "ca.key"
        self.crl_file = folder / "crl.pem"

    def ca_pem(self) -> bytes:
        self._ca()
        return self.ca_file.read_bytes()

    def issue_unit(
        self, csr_pem: bytes, unit_id: str, days: float, now: dt.datetime | None = None
    ) -> Issued:
        """A client certificate for `unit_id` with the CSR's key; the CSR's own subject
        and extensions are ignored."""
        check_id(unit_id)
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
            signed = csr.is_signature_valid
            key = csr.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise BadRequest(f"unreadable certificate request: {exc}") from None
        if not signed:
            raise BadRequest("the certificate request's signature does not verify")
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                raise BadRequest(f"RSA keys of fewer than {MIN_RSA_BITS} bits are refused")
            if key.key_size > MAX_RSA_BITS:
                raise BadRequest(f"RSA keys of more than {MAX_RSA_BITS} bits are refused")
        elif not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1 | ec.SECP384R1
        ):
            raise BadRequest("the key must be EC P-256 or P-384, or RSA: what MQTT brokers take")
        return self._issue(
            unit_id, key, dt.timedelta(days=days), ExtendedKeyUsageOID.CLIENT_AUTH, [], now
        )

    def issue_broker(self, hosts: list[str], now: dt.datetime | None = None) -> KeyPair:
        """The broker's server certificate for the names units reach it by."""
        pair = _pair(self.folder, "broker")
        self._service(pair, BROKER_CN, ExtendedKeyUsageOID.SERVER_AUTH, hosts, now)
        return pair

    def issue_center(
        self, center_id: str, now: dt.datetime | None = None, admin: bool = False
    ) -> KeyPair:
        """The center's own MQTT client certificate (CN: `center_identity(center_id)`), or
        with `admin` the one it administers the broker with (`admin_identity`)."""
        cn = admin_identity(center_id) if admin else center_identity(center_id)
        pair = _pair(self.folder, "center-admin" if admin else "center")
        self._service(pair, cn, ExtendedKeyUsageOID.CLIENT_AUTH, [], now)
        return pair

    def issue_monitor(
        self, name: str, folder: Path, now: dt.datetime | None = None
    ) -> MonitorFiles:
        """A monitoring tool's MQTT client certificate (CN: `monitor_identity(name)`) and
        key, written to `folder` as `monitor-<name>.pem` and `.key`, the device CA beside
        them as `device-ca.pem` (no name can make the two meet)."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        pair = monitor_pair(folder, name)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
        identity = monitor_identity(name)
        issued = self._service(pair, identity, usage, [], now)
        ca_file = folder / "device-ca.pem"
        write_atomic(ca_file, self.ca_pem(), mode=0o644)
        return MonitorFiles(identity, pair, ca_file, issued)

    def broker_files(self, hosts: list[str], now: dt.datetime) -> KeyPair:
        """The broker's certificate as kept, or a new one when it is missing, names other
        hosts, comes from another CA or nears its end."""
        pair = _pair(self.folder, "broker")
        if self._usable(pair, BROKER_CN, hosts, now):
            return pair
        return self.issue_broker(hosts, now)

    def center_files(self, center_id: str, now: dt.datetime, admin: bool = False) -> KeyPair:
        """The center's client certificate (see `issue_center`), kept or made as the
        broker's is."""
        pair = _pair(self.folder, "center-admin" if admin else "center")
        cn = admin_identity(center_id) if admin else center_identity(center_id)
        if self._usable(pair, cn, [], now):
            return pair
        return self.issue_center(center_id, now, admin)

    def _usable(self, pair: KeyPair, common_name: str, hosts: list[str], now: dt.datetime) -> bool:
        ca_cert, _ = self._ca(now)
        try:
            cert = x509.load_pem_x509_certificate(pair.cert_file.read_bytes())
            key = serialization.load_pem_private_key(pair.key_file.read_bytes(), None)
            # Another CA of the same name, or a key and certificate torn apart by a crash
            # (Mosquitto would refuse to start with them).
            cert.verify_directly_issued_by(ca_cert)
        except (OSError, ValueError, TypeError, InvalidSignature):
            return False
        if key.public_key() != cert.public_key():
            return False
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            alt = list(sans)
        except x509.ExtensionNotFound:
            alt = []
        return (
            cert.issuer == ca_cert.subject
            and [n.value for n in names] == [common_name]
            and alt == [alt_name(h) for h in hosts]
            and cert.not_valid_after_utc - now > dt.timedelta(days=RENEW_SERVICE_DAYS)
        )

    def write_crl(
        self, revoked: Iterable[tuple[str, float]], now: dt.datetime | None = None
    ) -> Path:
        """The CRL of `revoked` (serial hex, revoked at epoch seconds), replacing the last."""
        now = now or dt.datetime.now(dt.UTC)
        ca_cert, ca_key = self._ca(now)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=CRL_DAYS))
        )
        for serial, at in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial, 16))
                .revocation_date(dt.datetime.fromtimestamp(at, dt.UTC))
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(ca_key, hashes.SHA256())
        write_atomic(self.crl_file, crl.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return self.crl_file

    def _service(
        self,
        pair: KeyPair,
        common_name: str,
        usage: x509.ObjectIdentifier,
        hosts: list[str],
        now: dt.datetime | None,
    ) -> Issued:
        """A new key and its certificate, written to `pair`."""
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._issue(
            common_name, key.public_key(), dt.timedelta(days=SERVICE_DAYS), usage, hosts, now
        )
        write_atomic(pair.key_file, key_pem(key), mode=0o600)
        write_atomic(pair.cert_file, issued.pem, mode=0o644)
        return issued

    def _issue(
        self,
        common_name: str,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        lifetime: dt.timedelta,
        usage: x509.ObjectIdentifier,
        hosts: list[str],
        now: dt.datetime | None,
    ) -> Issued:
        now = now or dt.datetime.now(dt.UTC)
        ca_cert, ca_key = self._ca(now)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([alt_name(h) for h in hosts]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return Issued(cert, cert.public_bytes(serialization.Encoding.PEM))

    def _ca(
        self, now: dt.datetime | None = None
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = now or dt.datetime.now(dt.UTC)
        return load_or_make_ca(self.ca_file, self.ca_key_file, "rtcc device CA", now)

"""The center's own HTTPS certificate, from its own CA, made at first start: a department
that has its own certificate points `RTCC_HTTP__CERT_FILE`/`__KEY_FILE` at it instead.

The CA (`{data_dir}/tls/ca.pem`, key 0600) is what browsers and gateways are told to trust;
it signs a server certificate for the names the center is reached by (the listen address,
localhost, and the public URL's host). The server certificate is made again when those names
change or it is within `RENEW_BEFORE_S` of expiry; the CA lasts ten years. This CA is not
the device CA that provisioning uses for units.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from runtime.config import ConfigError
from runtime.files import locked, write_atomic

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept for a server certificate
RENEW_BEFORE_S = 30 * 86_400


@dataclass(frozen=True, slots=True)
class ServerFiles:
    cert_file: Path
    key_file: Path
    ca_file: Path | None  # None for a certificate the department brought


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rtcc center"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


class CenterCa:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca_file = folder / "ca.pem"
        self.ca_key_file = folder / "ca.key"
        self.cert_file = folder / "server.pem"
        self.key_file = folder / "server.key"

    def server_files(self, hosts: list[str], now: dt.datetime | None = None) -> ServerFiles:
        """The server certificate for `hosts`, made (with the CA, the first time) when
        missing, for other names, or close to expiry."""
        now = now or dt.datetime.now(dt.UTC)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca_cert, ca_key = self._ca(now)
        if not self._current(hosts, now):
            self._issue(hosts, ca_cert, ca_key, now)
        return ServerFiles(self.cert_file, self.key_file, self.ca_file)

    def _ca(self, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        return load_or_make_ca(self.ca_file, self.ca_key_file, "rtcc center CA", now)

    def _current(self, hosts: list[str], now: dt.datetime) -> bool:
        if not (self.cert_file.exists() and self.key_file.exists()):
            return False
        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        if cert.not_valid_after_utc - now < dt.timedelta(seconds=RENEW_BEFORE_S):
            return False
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return set(names) == {alt_name(h) for h in hosts}

    def _issue(
        self,
        hosts: list[str],
        ca_cert: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        now: dt.datetime,
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([alt_name(h) for h in hosts]), critical=False
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_atomic(self.key_file, key_pem(key), mode=0o600)
        write_atomic(self.cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def server_hosts(listen_host: str, public_host: str | None) -> list[str]:
    """The names a center's certificate must carry, in a stable order."""
    hosts = []
    for host in (public_host, listen_host, "localhost", "127.0.0.1"):
        if host and host not in ("0.0.0.0", "::") and host not in hosts:
            hosts.append(host)
    return hosts


def load_or_make_ca(
    ca_file: Path, ca_key_file: Path, common_name: str, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA kept in these files; made the first time (its key 0600), by one process at
    a time. Never made again over half of one: a new CA would silently invalidate every
    certificate the old one issued."""
    with locked(ca_file.with_name(ca_file.name + ".lock")):
        if ca_file.exists() or ca_key_file.exists():
            return _kept_ca(ca_file, ca_key_file)
        return _new_ca(ca_file, ca_key_file, common_name, now)


def _kept_ca(
    ca_file: Path, ca_key_file: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
        key = serialization.load_pem_private_key(ca_key_file.read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"the CA in {ca_file.parent} is incomplete or unreadable ({exc}): restore "
            f"{ca_file.name} and {ca_key_file.name} from a backup (a new CA would invalidate "
            "every certificate it issued)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ConfigError(f"{ca_key_file} is not the key of {ca_file}")
    return cert, key


def _new_ca(
    ca_file: Path, ca_key_file: Path, common_name: str, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_atomic(ca_key_file, key_pem(key), mode=0o600)
    write_atomic(ca_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert, key

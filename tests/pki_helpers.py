"""A throwaway certificate authority for tests: unit, server and center certificates, CRLs."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from runtime.config import TlsFiles

DAY = dt.timedelta(days=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


@dataclass
class TestCa:
    """A CA in `folder`: `ca.pem`, and one `{name}.pem`/`{name}.key` pair per issued name."""

    folder: Path
    name: str = "rtcc test device CA"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    revoked: dict[int, dt.datetime] = field(default_factory=dict)

    __test__ = False  # not a pytest test class

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(self.name))
            .issuer_name(_name(self.name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + 3650 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def crl_file(self) -> Path:
        return self.folder / "crl.pem"

    def issue(
        self,
        common_name: str,
        *,
        server_ip: str | None = None,
        stem: str | None = None,
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
    ) -> tuple[Path, Path, int]:
        """A client certificate (CN = `common_name`), or a server one for `server_ip`:
        its cert file, key file (named after `stem`, by default the CN) and serial."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        serial = x509.random_serial_number()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_ip else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(valid_from or now - DAY)
            .not_valid_after(valid_until or now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server_ip:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_file = self.folder / f"{stem or common_name}.pem"
        key_file = self.folder / f"{stem or common_name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_file, key)
        return cert_file, key_file, serial

    def client_files(self, common_name: str, **kwargs: Any) -> TlsFiles:
        cert_file, key_file, _ = self.issue(common_name, **kwargs)
        return TlsFiles(ca_file=self.ca_file, cert_file=cert_file, key_file=key_file)

    def write_crl(self) -> Path:
        """The CRL of every serial revoked so far (an empty one at first: Mosquitto needs
        one for the CA, or it refuses every client)."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=1))
            .next_update(now + 7 * DAY)
        )
        for serial, when in self.revoked.items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        tmp = self.crl_file.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        tmp.replace(self.crl_file)
        return self.crl_file

    def revoke(self, serial: int) -> Path:
        self.revoked[serial] = _now()
        return self.write_crl()

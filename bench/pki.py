"""A device CA for benchmarks over mutual TLS: the broker's and the center's certificates and
one certificate per simulated unit, each unit let in by the broker's dynsec plugin with a
role of its own, as enrolled gateways are.

Each unit's key is made here and sent to the CA as a CSR (what `rtcc provision enroll` does on
a gateway), and its certificate and key are written as one PEM file per unit, the file the load
generator (bench/mqtt_load.py) loads for that unit's connection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from central.broker_security import BrokerTls
from central.device_ca import DeviceCa, admin_identity, center_identity

UNIT_DAYS = 30


@dataclass(frozen=True)
class ClientFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class BenchPki:
    tls: BrokerTls  # the broker's listener and its first dynsec configuration
    center: ClientFiles  # the center's own client certificate
    units_dir: Path  # `{unit_id}.pem`: certificate and key of each unit
    issue_s: float  # keys, CSRs and certificates of every unit

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    def center_env(self) -> dict[str, str]:
        """How `rtcc central` is told to connect with its certificate (runtime/config.py)."""
        return {
            "RTCC_MQTT__TLS__CA_FILE": str(self.center.ca_file),
            "RTCC_MQTT__TLS__CERT_FILE": str(self.center.cert_file),
            "RTCC_MQTT__TLS__KEY_FILE": str(self.center.key_file),
        }


def _unit_pem(ca: DeviceCa, unit_id: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    # The CA takes the unit id from its argument, not from the request: an empty subject will do.
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    issued = ca.issue_unit(csr.public_bytes(serialization.Encoding.PEM), unit_id, UNIT_DAYS)
    return issued.pem + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_pki(folder: Path, center_id: str, unit_ids: Sequence[str]) -> BenchPki:
    """A new device CA in `folder`, the broker's certificate for 127.0.0.1, the center's
    for `center_id`, an empty CRL and a certificate for every unit."""
    ca = DeviceCa(folder / "ca")
    broker = ca.issue_broker(["127.0.0.1"])
    center = ca.issue_center(center_id)
    crl = ca.write_crl([])
    units_dir = folder / "units"
    units_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    began = time.perf_counter()
    for unit_id in unit_ids:
        path = units_dir / f"{unit_id}.pem"
        path.write_bytes(_unit_pem(ca, unit_id))
        path.chmod(0o600)
    issue_s = time.perf_counter() - began
    tls = BrokerTls(
        ca_file=ca.ca_file,
        cert_file=broker.cert_file,
        key_file=broker.key_file,
        crl_file=crl,
        center_identity=center_identity(center_id),
        center_id=center_id,
        # Known to the broker, but no certificate: the benchmark enrolls no unit while it runs.
        admin_identity=admin_identity(center_id),
        units=tuple(unit_ids),
    )
    return BenchPki(
        tls, ClientFiles(ca.ca_file, center.cert_file, center.key_file), units_dir, issue_s
    )

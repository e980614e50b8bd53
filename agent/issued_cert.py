"""Whether a certificate the center issued may be put in force on this gateway (pure): at
enrollment and at renewal alike, it must be for the key made here, name the unit, carry the
serial the center said, and come from a device CA the gateway has."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def issued_problem(
    cert_pem: str,
    key: ec.EllipticCurvePublicKey,
    unit_id: str,
    serial: str,
    cas: list[x509.Certificate],
    which_ca: str,
) -> str | None:
    """What is wrong with the certificate, or None. `which_ca` names `cas` in the answer
    ("answered with it", "this gateway trusts")."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        certified = cert.public_key().public_bytes(*_SPKI)
    except (ValueError, UnsupportedAlgorithm) as exc:
        return f"a certificate does not parse ({exc})"
    if certified != key.public_bytes(*_SPKI):
        return "the certificate is not for the key made on this gateway"
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [unit_id]:
        return f"the certificate names {names} but the unit is {unit_id!r}"
    if format(cert.serial_number, "x") != serial.lower():
        return f"the certificate's serial is not {serial}"
    if not any(_issued_by(cert, ca) for ca in cas):
        return f"the certificate is not from the device CA {which_ca}"
    return None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # ValueError, TypeError or InvalidSignature: not this CA
        return False
    return True

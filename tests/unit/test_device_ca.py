"""The device CA on real files: the unit id as CN whatever the request says, the lifetime
asked for, the CRL's serials, the broker's and the center's certificates, 0600 keys."""

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central.broker_security import check_identity, crl_problem
from central.device_ca import BROKER_CN, BadRequest, DeviceCa, center_identity, serial_hex
from central.provisioning import code_hash, new_code, parse_duration
from protocol.topics import is_id
from runtime.config import ConfigError

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def csr(common_name: str = "P-999", key: object = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    request = x509.CertificateSigningRequestBuilder().subject_name(name)
    return request.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_a_unit_certificate_names_the_unit_not_the_request(tmp_path: Path) -> None:
    ca = DeviceCa(tmp_path / "devices")
    issued = ca.issue_unit(csr("rtcc.center"), "P-117", days=365, now=NOW)
    cert = issued.cert
    assert common_name(cert) == "P-117"
    ca_cert = x509.load_pem_x509_certificate(ca.ca_pem())
    cert.verify_directly_issued_by(ca_cert)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=365)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert issued.serial == serial_hex(cert.serial_number)
    assert mode(ca.ca_key_file) == 0o600 and mode(tmp_path / "devices") == 0o700


def test_the_lifetime_is_what_is_configured(tmp_path: Path) -> None:
    cert = DeviceCa(tmp_path).issue_unit(csr(), "P-1", days=2, now=NOW).cert
    assert cert.not_valid_after_utc - NOW == dt.timedelta(days=2)


def test_the_ca_is_made_once_and_kept(tmp_path: Path) -> None:
    first = DeviceCa(tmp_path).ca_pem()
    DeviceCa(tmp_path).issue_unit(csr(), "P-1", days=1)
    assert DeviceCa(tmp_path).ca_pem() == first


@pytest.mark.parametrize("unit_id", ["rtcc.center.rtcc-1", "rtcc.broker", "a/b", "P 1", "", "#"])
def test_no_unit_id_can_be_a_reserved_or_malformed_name(tmp_path: Path, unit_id: str) -> None:
    with pytest.raises(ValueError):
        DeviceCa(tmp_path).issue_unit(csr(), unit_id, days=1)
    assert not is_id(center_identity("rtcc-1")) and not is_id(BROKER_CN)


def test_unusable_requests_are_refused(tmp_path: Path) -> None:
    ca = DeviceCa(tmp_path)
    with pytest.raises(BadRequest, match="unreadable"):
        ca.issue_unit(b"-----BEGIN CERTIFICATE REQUEST-----\nxx\n", "P-1", days=1)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(BadRequest, match="2048"):
        ca.issue_unit(csr(key=weak), "P-1", days=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "P-1")])
    edwards = x509.CertificateSigningRequestBuilder().subject_name(name)
    signed = edwards.sign(ed25519.Ed25519PrivateKey.generate(), None)
    with pytest.raises(BadRequest, match="EC"):
        ca.issue_unit(signed.public_bytes(serialization.Encoding.PEM), "P-1", days=1)
    odd_curve = ec.generate_private_key(ec.SECP521R1())
    with pytest.raises(BadRequest, match="P-256 or P-384"):
        ca.issue_unit(csr(key=odd_curve), "P-1", days=1)
    assert ca.issue_unit(csr(key=ec.generate_private_key(ec.SECP384R1())), "P-1", days=1)


def test_the_crl_lists_the_revoked_serials(tmp_path: Path) -> None:
    ca = DeviceCa(tmp_path)
    serials = [ca.issue_unit(csr(), f"P-{i}", days=1).serial for i in range(3)]
    at = NOW.timestamp()
    ca.write_crl([(serials[0], at), (serials[2], at + 5)], now=NOW)
    crl = x509.load_pem_x509_crl(ca.crl_file.read_bytes())
    ca_cert = x509.load_pem_x509_certificate(ca.ca_pem())
    assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    listed = {serial_hex(r.serial_number): r.revocation_date_utc for r in crl}
    assert listed == {
        serials[0]: NOW,
        serials[2]: NOW + dt.timedelta(seconds=5),
    }
    assert crl.next_update_utc is not None and crl.next_update_utc > NOW
    # What the supervised broker checks before it is given a CRL, and the identity it takes.
    assert check_identity(center_identity("rtcc-1"))
    assert crl_problem(ca.crl_file.read_bytes(), ca.ca_pem(), NOW) is None
    ca.write_crl([], now=NOW)
    assert len(x509.load_pem_x509_crl(ca.crl_file.read_bytes())) == 0
    assert not list(tmp_path.glob("*.tmp*"))


def test_the_broker_and_the_center_get_their_certificates(tmp_path: Path) -> None:
    ca = DeviceCa(tmp_path)
    ca_cert = x509.load_pem_x509_certificate(ca.ca_pem())
    broker = ca.issue_broker(["127.0.0.1", "mqtt.example.org"])
    center = ca.issue_center("rtcc-1")
    for pair, name, usage in (
        (broker, BROKER_CN, ExtendedKeyUsageOID.SERVER_AUTH),
        (center, "rtcc.center.rtcc-1", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        cert = x509.load_pem_x509_certificate(pair.cert_file.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
        assert common_name(cert) == name
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        assert mode(pair.key_file) == 0o600
    names = x509.load_pem_x509_certificate(broker.cert_file.read_bytes()).extensions
    alt = names.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["mqtt.example.org"]


def test_codes_are_long_random_and_typed_loosely() -> None:
    codes = {new_code() for _ in range(100)}
    assert len(codes) == 100
    code = codes.pop()
    assert len(code.replace("-", "")) == 16
    assert code_hash(code) == code_hash(code.lower().replace("-", " "))
    assert code_hash(code) != code_hash(codes.pop())


def test_durations() -> None:
    assert parse_duration("24h") == 86_400
    assert parse_duration("90") == 90
    assert parse_duration("1.5m") == 90
    for bad in ("", "0s", "-1h", "3w", "h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_half_a_ca_is_never_replaced_by_a_new_one(tmp_path: Path) -> None:
    ca = DeviceCa(tmp_path / "devices")
    first = ca.ca_pem()
    ca.ca_key_file.unlink()
    with pytest.raises(ConfigError, match="restore"):
        ca.ca_pem()
    assert ca.ca_file.read_bytes() == first
    other = DeviceCa(tmp_path / "other")
    other.ca_pem()
    ca.ca_key_file.write_bytes(other.ca_key_file.read_bytes())
    with pytest.raises(ConfigError, match="not the key"):
        ca.ca_pem()


def test_the_service_certificates_are_kept_while_good_and_made_again_when_not(
    tmp_path: Path,
) -> None:
    ca = DeviceCa(tmp_path / "devices")
    now = dt.datetime.now(dt.UTC)
    served = ca.broker_files(["127.0.0.1"], now)
    first = served.cert_file.read_bytes()
    assert ca.broker_files(["127.0.0.1"], now).cert_file.read_bytes() == first
    # Another name units reach it by, or its last month: a new one.
    assert ca.broker_files(["127.0.0.1", "broker.pd"], now).cert_file.read_bytes() != first
    kept = ca.broker_files(["127.0.0.1"], now).cert_file.read_bytes()
    assert ca.broker_files(["127.0.0.1"], now + dt.timedelta(days=380)).cert_file.read_bytes() != (
        kept
    )
    fleet = ca.center_files("rtcc-1", now)
    admin = ca.center_files("rtcc-1", now, admin=True)
    cns = [
        x509.load_pem_x509_certificate(p.cert_file.read_bytes())
        .subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
        .value
        for p in (fleet, admin)
    ]
    assert cns == ["rtcc.center.rtcc-1", "rtcc.center.rtcc-1.admin"]
    assert ca.center_files("rtcc-1", now) == fleet
    assert stat.S_IMODE(admin.key_file.stat().st_mode) == 0o600


def test_a_service_pair_torn_apart_or_from_another_ca_is_made_again(tmp_path: Path) -> None:
    ca = DeviceCa(tmp_path / "devices")
    now = dt.datetime.now(dt.UTC)
    served = ca.broker_files(["127.0.0.1"], now)
    first = served.cert_file.read_bytes()
    fleet = ca.center_files("rtcc-1", now)
    served.key_file.write_bytes(fleet.key_file.read_bytes())  # a crash between the two
    assert ca.broker_files(["127.0.0.1"], now).cert_file.read_bytes() != first
    other = DeviceCa(tmp_path / "other")
    kept = ca.broker_files(["127.0.0.1"], now)
    other_pair = other.broker_files(["127.0.0.1"], now)
    kept.cert_file.write_bytes(other_pair.cert_file.read_bytes())
    kept.key_file.write_bytes(other_pair.key_file.read_bytes())
    again = ca.broker_files(["127.0.0.1"], now)
    cert = x509.load_pem_x509_certificate(again.cert_file.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.ca_pem()))

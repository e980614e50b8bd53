"""The center's own CA and server certificate: made once with private keys 0600, for the
names asked, kept while they fit, made again for new names or near expiry, and a client
that trusts another CA is refused."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from central.tls import RENEW_BEFORE_S, SERVER_DAYS, CenterCa, server_hosts

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def names(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in alt}


def test_made_once_with_private_keys_only_for_the_owner(tmp_path: Path) -> None:
    ca = CenterCa(tmp_path / "tls")
    files = ca.server_files(["10.1.2.3", "localhost"], NOW)
    assert names(files.cert_file) == {"10.1.2.3", "localhost"}
    for key in (ca.ca_key_file, files.key_file):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = files.cert_file.read_bytes(), ca.ca_file.read_bytes()
    again = ca.server_files(["10.1.2.3", "localhost"], NOW + dt.timedelta(days=30))
    assert (again.cert_file.read_bytes(), ca.ca_file.read_bytes()) == first


def test_made_again_for_new_names_or_near_expiry_under_the_same_ca(tmp_path: Path) -> None:
    ca = CenterCa(tmp_path / "tls")
    ca.server_files(["localhost"], NOW)
    authority = ca.ca_file.read_bytes()
    ca.server_files(["center.example.org", "localhost"], NOW)
    assert names(ca.cert_file) == {"center.example.org", "localhost"}
    renewed_at = NOW + dt.timedelta(days=SERVER_DAYS, seconds=-RENEW_BEFORE_S + 60)
    before = ca.cert_file.read_bytes()
    ca.server_files(["center.example.org", "localhost"], renewed_at)
    assert ca.cert_file.read_bytes() != before and ca.ca_file.read_bytes() == authority


def test_the_certificate_verifies_against_its_ca_only(tmp_path: Path) -> None:
    files = CenterCa(tmp_path / "a").server_files(["127.0.0.1"], NOW)
    other = CenterCa(tmp_path / "b").server_files(["127.0.0.1"], NOW)
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    own = x509.load_pem_x509_certificate(Path(str(files.ca_file)).read_bytes())
    foreign = x509.load_pem_x509_certificate(Path(str(other.ca_file)).read_bytes())
    cert.verify_directly_issued_by(own)
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(foreign)
    context = ssl.create_default_context(cafile=str(files.ca_file))
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_hosts_name_the_public_host_first_and_never_a_wildcard_address() -> None:
    assert server_hosts("0.0.0.0", "rtcc.city.gov") == ["rtcc.city.gov", "localhost", "127.0.0.1"]
    assert server_hosts("127.0.0.1", None) == ["127.0.0.1", "localhost"]

"""The renewed key and certificate put in force as a pair, on real files: wherever a crash
stops the swap, what start-up recovery leaves is a certificate and its key."""

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.enroll import certificate_request
from agent.renewal_files import Pair, install, matching, recover
from central.device_ca import DeviceCa


def new_pair(ca: DeviceCa) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ca.issue_unit(certificate_request(key), "P-117", 1).pem, key_pem


@pytest.fixture
def ca(tmp_path: Path) -> DeviceCa:
    return DeviceCa(tmp_path / "ca")


@pytest.fixture
def pair(tmp_path: Path, ca: DeviceCa) -> Pair:
    folder = tmp_path / "tls"
    folder.mkdir()
    found = Pair(folder / "unit.pem", folder / "unit.key")
    cert, key = new_pair(ca)
    found.cert_file.write_bytes(cert)
    found.key_file.write_bytes(key)
    return found


def in_force(pair: Pair) -> tuple[bytes, bytes]:
    return pair.cert_file.read_bytes(), pair.key_file.read_bytes()


def test_install_puts_the_new_pair_in_force_0600_and_leaves_nothing(
    pair: Pair, ca: DeviceCa
) -> None:
    cert, key = new_pair(ca)
    install(pair, cert, key)
    assert in_force(pair) == (cert, key)
    assert sorted(p.name for p in pair.cert_file.parent.iterdir()) == ["unit.key", "unit.pem"]
    assert stat.S_IMODE(pair.key_file.stat().st_mode) == 0o600
    assert recover(pair) is None


def test_a_crash_while_writing_the_new_files_keeps_the_old_pair(pair: Pair, ca: DeviceCa) -> None:
    old = in_force(pair)
    cert, key = new_pair(ca)
    pair.key_new.write_bytes(key[: len(key) // 2])  # torn key, no certificate yet
    assert recover(pair) == "discarded"
    assert in_force(pair) == old and not pair.key_new.exists()

    pair.key_new.write_bytes(key)
    pair.cert_new.write_bytes(cert[: len(cert) // 2])  # whole key, torn certificate
    assert recover(pair) == "discarded"
    assert in_force(pair) == old and not pair.key_new.exists() and not pair.cert_new.exists()


def test_a_crash_once_both_new_files_are_whole_finishes_the_swap(pair: Pair, ca: DeviceCa) -> None:
    cert, key = new_pair(ca)
    pair.key_new.write_bytes(key)
    pair.cert_new.write_bytes(cert)
    assert recover(pair) == "finished"
    assert in_force(pair) == (cert, key)


def test_a_crash_between_the_two_renames_finishes_the_swap(pair: Pair, ca: DeviceCa) -> None:
    cert, key = new_pair(ca)
    pair.key_new.write_bytes(key)
    pair.cert_new.write_bytes(cert)
    pair.key_new.replace(pair.key_file)  # step 2 done: the pair on disk does not match
    assert not matching(*in_force(pair))
    assert recover(pair) == "finished"
    assert in_force(pair) == (cert, key) and matching(cert, key)


def test_a_stray_certificate_for_another_key_is_discarded(pair: Pair, ca: DeviceCa) -> None:
    old = in_force(pair)
    cert, _ = new_pair(ca)
    pair.cert_new.write_bytes(cert)
    assert recover(pair) == "discarded"
    assert in_force(pair) == old


def test_leftovers_of_an_earlier_swap_do_not_stop_the_next(pair: Pair, ca: DeviceCa) -> None:
    pair.key_new.write_bytes(b"stale")
    pair.cert_new.write_bytes(b"stale")
    cert, key = new_pair(ca)
    install(pair, cert, key)
    assert in_force(pair) == (cert, key)

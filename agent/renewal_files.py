"""Putting a renewed key and certificate in force as a pair: whenever the agent stops (a
crash, a power cut), the files it connects with next are a certificate and its key.

The swap, in the folder of the files in force (what mqtt.tls names):

1. write `<key>.new` and then `<cert>.new`, each fsynced, and the folder;
2. rename `<key>.new` over the key;
3. rename `<cert>.new` over the certificate, and fsync the folder.

After step 1 the new certificate is whole and names the new key, so at start `recover`
finishes a swap that got that far (the new certificate is readable and matches the new key,
or the key in force once step 2 is done) and discards anything less (the pair in force is
still the old one). Between steps 2 and 3 the pair on disk does not match for the time of
one rename: a connection attempt that reads it then fails and is tried again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from runtime.files import fsync_dir

NEW = ".new"
Recovered = Literal["finished", "discarded"]


@dataclass(frozen=True, slots=True)
class Pair:
    cert_file: Path
    key_file: Path

    @property
    def cert_new(self) -> Path:
        return self.cert_file.with_name(self.cert_file.name + NEW)

    @property
    def key_new(self) -> Path:
        return self.key_file.with_name(self.key_file.name + NEW)


def install(pair: Pair, cert_pem: bytes, key_pem: bytes) -> None:
    """Put the new pair in force (see the module's steps)."""
    _write_new(pair.key_new, key_pem)
    _write_new(pair.cert_new, cert_pem)
    _fsync_folders(pair)
    pair.key_new.replace(pair.key_file)
    pair.cert_new.replace(pair.cert_file)
    _fsync_folders(pair)


def recover(pair: Pair) -> Recovered | None:
    """At start: finish a swap a crash interrupted after its new files were whole, or
    discard one interrupted before. None when there was nothing to do."""
    cert_new, key_new = pair.cert_new, pair.key_new
    if not cert_new.exists() and not key_new.exists():
        return None
    key_file = key_new if key_new.exists() else pair.key_file
    if _matching(cert_new, key_file):
        if key_new.exists():
            key_new.replace(pair.key_file)
        cert_new.replace(pair.cert_file)
        outcome: Recovered = "finished"
    else:
        cert_new.unlink(missing_ok=True)
        key_new.unlink(missing_ok=True)
        outcome = "discarded"
    _fsync_folders(pair)
    return outcome


def matching(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether the certificate is for the private key."""
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        return bool(cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _matching(cert_file: Path, key_file: Path) -> bool:
    try:
        return matching(cert_file.read_bytes(), key_file.read_bytes())
    except OSError:
        return False


def _write_new(path: Path, data: bytes) -> None:
    # A .new file left by an earlier swap that recover() has not seen yet is replaced.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_folders(pair: Pair) -> None:
    for folder in {pair.cert_file.parent, pair.key_file.parent}:
        fsync_dir(folder)

"""One HTTPS certificate for every center the tests start in this process, from a CA made
the way the center makes its own (`central.tls.CenterCa`): clients check it against that CA
(`client_tls()`), Chromium is told to accept exactly its key (`spki_pin()`), never "verify
nothing"."""

from __future__ import annotations

import atexit
import base64
import functools
import hashlib
import shutil
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from central.tls import CenterCa, ServerFiles


@functools.cache
def server_files() -> ServerFiles:
    folder = Path(tempfile.mkdtemp(prefix="rtcc-test-tls-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return CenterCa(folder).server_files(["127.0.0.1", "localhost"])


def ca_file() -> Path:
    found = server_files().ca_file
    assert found is not None
    return found


def client_tls(ca: Path | None = None) -> ssl.SSLContext:
    """Checks a center's certificate against the tests' CA (or `ca`)."""
    return ssl.create_default_context(cafile=str(ca or ca_file()))


def spki_pin() -> str:
    """The base64 SHA-256 of the certificate's public key, as Chromium's
    --ignore-certificate-errors-spki-list takes it."""
    cert = x509.load_pem_x509_certificate(server_files().cert_file.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def https_settings(port: int = 0) -> dict[str, object]:
    """The `http` section of a test center's settings: HTTPS with the tests' certificate."""
    files = server_files()
    return {"port": port, "cert_file": files.cert_file, "key_file": files.key_file}

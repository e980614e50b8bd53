"""Let the relay talk DTLS to peers whose certificate is RSA.

aiortc offers only ECDHE-ECDSA cipher suites, so a peer with an RSA certificate (Debian's
GStreamer 1.22 webrtcbin, for one) fails right after ICE with "no shared cipher". The relay
adds the matching ECDHE-RSA suites (same AEAD/SHA choices) to every DTLS context it makes.
Process-wide, pinned to aiortc 1.16.0, covered by the relay tests.
"""

from __future__ import annotations

from typing import Any

from aiortc.rtcdtlstransport import RTCCertificate

CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)
_original = RTCCertificate._create_ssl_context


def _create_ssl_context(self: RTCCertificate, srtp_profiles: Any) -> Any:
    context = _original(self, srtp_profiles)
    context.set_cipher_list(CIPHERS)
    return context


def install() -> None:
    """Idempotent."""
    setattr(RTCCertificate, "_create_ssl_context", _create_ssl_context)  # noqa: B010

"""How an enrolled unit renews its certificate (pure): the request, the bytes it signs, and
the center's answer.

The unit proves itself with the Ed25519 evidence key it registered at enrollment (the key
the center bound to its certificate then), over a canonical byte string of the unit id, the
serial of a certificate it holds now, the time, and the SHA-256 of a certificate request for
a new TLS key made on the unit. The string starts with its own label, so a renewal
signature can never pass for an evidence signature (those sign JSON) or the reverse. A
request is good for MAX_SKEW_S either side of the center's clock; replaying one within that
time only buys another certificate for a key whose private half stays on the unit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Annotated

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protocol.models import ContractModel
from protocol.topics import check_id

RENEW_ROUTE = "/api/v1/provision/renew"
LABEL = b"rtcc certificate renewal v1"
MAX_SKEW_S = 300
MAX_CSR_CHARS = 16_384
MAX_PEM_CHARS = 65_536

Serial = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{1,64}$"), AfterValidator(str.lower)]


def renewal_bytes(unit_id: str, serial: str, csr: str, ts: int) -> bytes:
    """What the unit signs: one field a line (none can hold a newline: ids and serials are
    checked, the CSR goes in as its hash)."""
    csr_hash = hashlib.sha256(csr.encode()).hexdigest()
    fields = [unit_id, serial.lower(), str(ts), csr_hash]
    return LABEL + b"\n" + "\n".join(fields).encode()


class RenewRequest(ContractModel):
    """POSTed to RENEW_ROUTE; no person's credentials, the signature is the credential."""

    unit_id: Annotated[str, AfterValidator(check_id)]
    serial: Serial = Field(description="A certificate of the unit's, neither revoked nor expired.")
    csr: str = Field(min_length=1, max_length=MAX_CSR_CHARS, description="PEM, for a new key.")
    ts: int = Field(ge=0, le=2**40, description="Unix time (s) the request was signed at.")
    sig: str = Field(
        min_length=1, max_length=128, description="Ed25519 signature (base64) by the evidence key."
    )

    def signed_bytes(self) -> bytes:
        return renewal_bytes(self.unit_id, self.serial, self.csr, self.ts)

    def signed_by(self, evidence_key: str) -> bool:
        """Whether `sig` verifies with `evidence_key` (base64 raw Ed25519 public key)."""
        try:
            public = Ed25519PublicKey.from_public_bytes(base64.b64decode(evidence_key))
            public.verify(base64.b64decode(self.sig, validate=True), self.signed_bytes())
        except (InvalidSignature, ValueError, binascii.Error):
            return False
        return True


def signed_request(
    evidence_key: Ed25519PrivateKey, unit_id: str, serial: str, csr: str, ts: int
) -> RenewRequest:
    signature = evidence_key.sign(renewal_bytes(unit_id, serial, csr, ts))
    return RenewRequest(
        unit_id=unit_id, serial=serial, csr=csr, ts=ts, sig=base64.b64encode(signature).decode()
    )


class RenewAnswer(BaseModel):
    """The new certificate. A later center may say more: unknown fields are ignored, the
    known ones checked strictly."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    unit_id: Annotated[str, AfterValidator(check_id)]
    serial: Serial
    expires_at: float
    certificate: str = Field(min_length=1, max_length=MAX_PEM_CHARS, description="PEM")
    ca: str = Field(min_length=1, max_length=MAX_PEM_CHARS, description="The device CA (PEM).")

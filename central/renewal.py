"""Whether a unit's certificate renewal is admitted (pure: the records and the time come in).

A renewal needs no code and no person: the unit signs it with the evidence key registered
at its enrollment, and names a certificate of its own that is neither revoked nor expired.
So a revoked unit, or one whose every certificate ran out, cannot renew: it enrolls again.
Any valid certificate of the unit will do, not only the newest: a unit that renewed and lost
its new files before putting them in force (a power cut) asks again with its old one.
"""

from __future__ import annotations

from collections.abc import Sequence

from central.db.devices import DeviceCert
from protocol.renewal import MAX_SKEW_S, RenewRequest


class RenewRefused(Exception):
    """Why a renewal is refused (audited, and told to the caller: whoever holds the unit's
    evidence key learns nothing it could not find out otherwise)."""


def refusal(
    request: RenewRequest, certs: Sequence[DeviceCert], evidence_key: str | None, now: float
) -> str | None:
    """The reason `request` is refused, or None. The signature comes first: only the holder
    of the unit's key learns the state of its certificates."""
    if evidence_key is None or not certs:
        return f"unknown unit {request.unit_id}: it never enrolled here"
    if not request.signed_by(evidence_key):
        return "the signature does not verify with the unit's registered evidence key"
    skew = request.ts - now
    if abs(skew) > MAX_SKEW_S:
        side = "ahead of" if skew > 0 else "behind"
        return (
            f"the request's time is {abs(skew):.0f} s {side} the center's clock"
            f" (at most {MAX_SKEW_S} s): set the gateway's clock"
        )
    found = next((c for c in certs if c.serial == request.serial), None)
    if found is None:
        return f"certificate {request.serial} is not one of the unit's"
    if found.revoked_at is not None:
        return f"certificate {request.serial} was revoked: enroll the gateway again"
    if found.expires_at <= now:
        return f"certificate {request.serial} expired: enroll the gateway again"
    return None

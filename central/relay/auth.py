"""Bearer tokens on the media endpoints, for the front and the workers alike."""

from __future__ import annotations

from fastapi import HTTPException

from protocol.tokens import Audience, Claims, TokenError, TokenSigner

CHALLENGE = {"WWW-Authenticate": "Bearer"}


def authorize(
    signer: TokenSigner, aud: Audience, stream_id: str, authorization: str | None, now: float
) -> Claims:
    """The token's claims, or 401 (missing, malformed, forged, expired) / 403 (a valid
    token for another stream or use)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "bearer token required", headers=CHALLENGE)
    try:
        return signer.verify(authorization.removeprefix("Bearer ").strip(), aud, stream_id, now)
    except TokenError as exc:
        status = 403 if exc.reason == "wrong_scope" else 401
        raise HTTPException(status, exc.reason, headers=CHALLENGE) from None

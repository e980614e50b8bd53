"""Bearer tokens on the media endpoints, for the front and the workers alike."""

from __future__ import annotations

from central.errors import Forbidden, NotAuthorized
from protocol.tokens import Audience, Claims, TokenError, TokenSigner


def authorize(
    signer: TokenSigner, aud: Audience, stream_id: str, authorization: str | None, now: float
) -> Claims:
    """The token's claims; NotAuthorized when missing, malformed, forged or expired,
    Forbidden for a valid token for another stream or use."""
    if not authorization or not authorization.startswith("Bearer "):
        raise NotAuthorized("bearer token required")
    try:
        return signer.verify(authorization.removeprefix("Bearer ").strip(), aud, stream_id, now)
    except TokenError as exc:
        refusal = Forbidden if exc.reason == "wrong_scope" else NotAuthorized
        raise refusal(exc.reason) from None

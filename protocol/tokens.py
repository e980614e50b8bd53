"""Short-lived bearer tokens for media sessions (pure; time is passed in).

    v1.<base64url(claims JSON)>.<base64url(HMAC-SHA256(key[kid], "v1." + claims))>

The algorithm is fixed by the version prefix, never read from the token, so no token can
choose a weaker one. Claims: `kid` (which key signed), `aud` ("whip" to publish, "whep" to
watch), `sub` (the one stream it opens), `exp` (expiry, seconds since the epoch), `jti` and
optional `who` (the unit or user it was issued to, for the audit log).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Literal

Audience = Literal["whip", "whep"]
PREFIX = "v1."
MAX_TOKEN_LENGTH = 2048
MIN_KEY_BYTES = 32


class TokenError(Exception):
    """The token does not open this stream. `reason` is a stable metrics label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claims:
    kid: str
    aud: Audience
    sub: str
    exp: int
    jti: str
    who: str = ""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and checks tokens. `keys` maps key ids to secrets; `current` signs, all
    verify, so keys can be rotated without cutting off tokens already issued."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current key id must be one of the keys")
        for kid, key in keys.items():
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"key {kid!r} is shorter than {MIN_KEY_BYTES} bytes")
        self._keys = dict(keys)
        self._current = current

    def issue(
        self,
        aud: Audience,
        stream_id: str,
        now: float,
        ttl_s: float,
        who: str = "",
        jti: str | None = None,
    ) -> str:
        """A token; `jti` names it (for revocation), a random one when not given."""
        claims = {
            "kid": self._current,
            "aud": aud,
            "sub": stream_id,
            "exp": int(now + ttl_s),
            "jti": jti or secrets.token_urlsafe(12),
            "who": who,
        }
        body = PREFIX + _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return body + "." + _b64encode(self._sign(self._keys[self._current], body))

    def verify(self, token: str, aud: Audience, stream_id: str, now: float) -> Claims:
        """The claims of a valid token for exactly this audience and stream, or TokenError."""
        if len(token) > MAX_TOKEN_LENGTH or not token.startswith(PREFIX):
            raise TokenError("malformed", "not an rtcc v1 token")
        body, dot, signature = token.rpartition(".")
        if not dot or body.count(".") != 1:
            raise TokenError("malformed", "wrong number of parts")
        try:
            raw = json.loads(_b64decode(body[len(PREFIX) :]))
            given = _b64decode(signature)
            claims = Claims(
                kid=str(raw["kid"]),
                aud=raw["aud"],
                sub=str(raw["sub"]),
                exp=int(raw["exp"]),
                jti=str(raw["jti"]),
                who=str(raw.get("who", "")),
            )
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise TokenError("malformed", "unreadable claims") from None
        key = self._keys.get(claims.kid)
        if key is None:
            raise TokenError("unknown_key", f"key id {claims.kid[:40]!r}")
        if not hmac.compare_digest(given, self._sign(key, body)):
            raise TokenError("bad_signature", "signature does not match")
        if claims.aud != aud or claims.sub != stream_id:
            raise TokenError("wrong_scope", "token is for another stream or use")
        if claims.exp <= now:
            raise TokenError("expired", "token has expired")
        return claims

    @staticmethod
    def _sign(key: bytes, body: str) -> bytes:
        return hmac.new(key, body.encode(), hashlib.sha256).digest()

"""Opaque session ids and API keys (pure: time comes in as an argument).

Both are 256-bit random secrets shown once; the database keeps only their SHA-256 (a
fast hash is enough for a secret this long: nobody guesses it, and a stolen table yields
nothing usable). API keys read `rtcc_<key id>_<secret>`: the prefix lets secret scanners
recognise a leaked key, and the public key id finds the record and names the client in
the audit log without revealing anything.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from enum import StrEnum

from central.access.policy import Action, Scope, client_allowed

KEY_PREFIX = "rtcc_"
SECRET_BYTES = 32
KEY_ID_BYTES = 6
_KEY_PATTERN = re.compile(r"rtcc_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def hash_secret(secret: str) -> str:
    """The SHA-256 (hex) a database row keeps instead of a session id or key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_hash(stored_hash: str, secret: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(stored_hash, hash_secret(secret))


@dataclass(frozen=True, slots=True)
class IssuedSessionId:
    """`token` goes into the cookie, once; `token_hash` into the database."""

    token: str
    token_hash: str


def new_session_id() -> IssuedSessionId:
    token = secrets.token_urlsafe(SECRET_BYTES)
    return IssuedSessionId(token, hash_secret(token))


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What the database keeps of one API client's key."""

    key_id: str
    key_hash: str
    client: str
    scopes: frozenset[Scope]
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """`key` is shown to the person who made it, once, and kept nowhere."""

    key: str
    record: ApiKey


class KeyCheck(StrEnum):
    VALID = "valid"
    WRONG = "wrong"  # not a key of ours, unknown id, or the secret does not match
    REVOKED = "revoked"
    EXPIRED = "expired"


def issue_api_key(
    client: str, scopes: frozenset[Scope], now: float, expires_at: float | None = None
) -> IssuedApiKey:
    if not scopes:
        raise ValueError("an API key needs at least one scope")
    if expires_at is not None and expires_at <= now:
        raise ValueError("an API key's expiry must lie in the future")
    key_id = secrets.token_hex(KEY_ID_BYTES)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    record = ApiKey(key_id, hash_secret(key), client, scopes, now, expires_at)
    return IssuedApiKey(key, record)


def key_id_of(presented: str) -> str | None:
    """The key id to look the record up by, or None when the text is no rtcc key."""
    match = _KEY_PATTERN.fullmatch(presented)
    return match.group(1) if match else None


def check_api_key(record: ApiKey | None, presented: str, now: float) -> KeyCheck:
    """Whether `presented` is the key `record` was issued for and is still good. Pass the
    record found by `key_id_of(presented)`, or None if there was none."""
    if record is None or key_id_of(presented) != record.key_id:
        return KeyCheck.WRONG
    if not same_hash(record.key_hash, presented):
        return KeyCheck.WRONG
    if record.revoked_at is not None and now >= record.revoked_at:
        return KeyCheck.REVOKED
    if record.expires_at is not None and now >= record.expires_at:
        return KeyCheck.EXPIRED
    return KeyCheck.VALID


def key_allows(record: ApiKey, action: Action) -> bool:
    return client_allowed(record.scopes, action)


def revoke(record: ApiKey, now: float) -> ApiKey:
    if record.revoked_at is not None:
        return record
    return replace(record, revoked_at=now)

"""Password hashing (argon2id, memory-hard, cost from settings) and one-time passwords.

A stored hash carries its own parameters, so raising the cost later leaves old hashes
verifiable; `needs_rehash` tells the sign-in to store a fresh hash after a correct password.
"""

from __future__ import annotations

import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field

# Letters and digits that cannot be mistaken for each other when read aloud or off a screen.
READABLE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
# An upper bound keeps one sign-in attempt from hashing megabytes.
MAX_PASSWORD_CHARS = 1024


class PasswordSettings(BaseModel):
    """argon2id cost; the defaults are RFC 9106's second recommendation (64 MiB, t=3, p=4)."""

    model_config = ConfigDict(extra="forbid")

    time_cost: int = Field(default=3, ge=1, le=20, description="argon2id passes.")
    memory_kib: int = Field(
        default=65_536, ge=8_192, le=4_194_304, description="argon2id memory per hash, KiB."
    )
    parallelism: int = Field(default=4, ge=1, le=64, description="argon2id lanes.")
    min_length: int = Field(
        default=12, ge=8, le=256, description="Shortest password a person may choose."
    )


class PasswordHasher:
    def __init__(self, settings: PasswordSettings) -> None:
        self._settings = settings
        self._argon2 = argon2.PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_kib,
            parallelism=settings.parallelism,
            type=argon2.Type.ID,
        )
        # Verified against when the account does not exist, so that an unknown name takes
        # as long to refuse as a wrong password.
        self._decoy = self._argon2.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        _check_length(password)
        return self._argon2.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        """True only for the right password; a malformed hash or an oversized password is
        refused, never raised."""
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        try:
            return self._argon2.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def verify_unknown_account(self, password: str) -> bool:
        """Spend a verification's time on a name that has no account; always False."""
        self.verify(self._decoy, password)
        return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True


def password_problem(password: str, username: str, settings: PasswordSettings) -> str | None:
    """Why a password a person chose is refused, or None when it is acceptable."""
    if len(password) < settings.min_length:
        return f"a password needs at least {settings.min_length} characters"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"a password has at most {MAX_PASSWORD_CHARS} characters"
    if password.strip().casefold() == username.strip().casefold():
        return "a password must not be the user name"
    return None


def one_time_password(groups: int = 4, group_length: int = 5) -> str:
    """A random password to hand over once (`rtcc users add`), e.g. "k3mfq-7wz2p-...":
    four groups of five from a 31-letter alphabet carry about 99 bits."""
    return "-".join(
        "".join(secrets.choice(READABLE_ALPHABET) for _ in range(group_length))
        for _ in range(groups)
    )


def _check_length(password: str) -> None:
    if not password:
        raise ValueError("empty password")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"a password has at most {MAX_PASSWORD_CHARS} characters")

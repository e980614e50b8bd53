"""One sign-in attempt, decided in order: throttle, password, second factor (no storage: the
caller passes what the database keeps and stores what comes back).

The throttle is asked first, so a locked account is refused even with the right password
and no password is hashed for it. An unknown name takes as long as a wrong password and is
counted against the name typed and the address, like any failure. A role that needs a
second factor, or an account that enrolled one, needs the right code in the same attempt; a
wrong or missing code counts as a failed attempt. A disabled account is refused after the
same work, so the time taken tells nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from central.access import totp
from central.access.passwords import PasswordHasher
from central.access.policy import Role, needs_second_factor
from central.access.throttle import Failures, Refusal, SignInThrottle


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the database keeps of one person's sign-in."""

    username: str
    role: Role
    password_hash: str
    disabled: bool = False
    totp_secret: str | None = None
    last_totp_step: int | None = None


class Outcome(StrEnum):
    SIGNED_IN = "signed_in"
    # Unknown name, wrong password or wrong/missing code: the person is told no more.
    WRONG = "wrong_credentials"
    DISABLED = "disabled"
    LOCKED = "locked"
    TOO_SOON = "too_soon"
    # The role needs a second factor and none is enrolled yet (`rtcc users totp NAME`).
    SECOND_FACTOR_NOT_ENROLLED = "second_factor_not_enrolled"


@dataclass(frozen=True, slots=True)
class SignInResult:
    """The outcome to answer and audit, and what to store: both failure counts always,
    `totp_step` as the account's last accepted step when set, `new_password_hash` when the
    configured cost changed since the password was hashed."""

    outcome: Outcome
    account_failures: Failures
    address_failures: Failures
    retry_after_s: float = 0.0
    totp_step: int | None = None
    new_password_hash: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.outcome is Outcome.SIGNED_IN


@dataclass(frozen=True, slots=True)
class Attempt:
    password: str
    code: str | None
    account_failures: Failures
    address_failures: Failures
    now: float


@dataclass(frozen=True, slots=True)
class SignInDesk:
    hasher: PasswordHasher
    throttle: SignInThrottle

    def sign_in(self, credentials: Credentials | None, attempt: Attempt) -> SignInResult:
        """`credentials` is the account found by the name typed, or None if there is none;
        the failure counts are those of the name typed and of the source address."""
        admission = self.throttle.admit(
            attempt.account_failures, attempt.address_failures, attempt.now
        )
        if admission.refusal is not None:
            outcome = Outcome.LOCKED if admission.refusal is Refusal.LOCKED else Outcome.TOO_SOON
            return SignInResult(
                outcome,
                attempt.account_failures,
                attempt.address_failures,
                admission.retry_after_s,
            )
        if credentials is None:
            self.hasher.verify_unknown_account(attempt.password)
            return self._failed(attempt)
        if not self.hasher.verify(credentials.password_hash, attempt.password):
            return self._failed(attempt)
        if credentials.disabled:
            return self._refused(Outcome.DISABLED, attempt)
        return self._second_factor(credentials, attempt)

    def _second_factor(self, credentials: Credentials, attempt: Attempt) -> SignInResult:
        step: int | None = None
        if credentials.totp_secret is not None:
            if attempt.code is None:
                return self._failed(attempt)
            step = totp.verify_code(
                credentials.totp_secret, attempt.code, attempt.now, credentials.last_totp_step
            )
            if step is None:
                return self._failed(attempt)
        elif needs_second_factor(credentials.role):
            return self._refused(Outcome.SECOND_FACTOR_NOT_ENROLLED, attempt)
        account, address = self.throttle.record(
            attempt.account_failures, attempt.address_failures, True, attempt.now
        )
        rehash = None
        if self.hasher.needs_rehash(credentials.password_hash):
            rehash = self.hasher.hash(attempt.password)
        return SignInResult(Outcome.SIGNED_IN, account, address, 0.0, step, rehash)

    def _failed(self, attempt: Attempt) -> SignInResult:
        account, address = self.throttle.record(
            attempt.account_failures, attempt.address_failures, False, attempt.now
        )
        return SignInResult(Outcome.WRONG, account, address)

    def _refused(self, outcome: Outcome, attempt: Attempt) -> SignInResult:
        """Refused with the right password: no failure is counted, nothing is cleared."""
        return SignInResult(outcome, attempt.account_failures, attempt.address_failures)

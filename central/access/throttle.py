"""Sign-in throttling and lockout (pure: time comes in as an argument). CJIS 5.5.3.

Failed sign-ins are counted per account and per source address. Each further failure makes
the next attempt from that account or address wait longer (doubling, capped); after
`lock_after` failures the account is locked for `lock_s`, and while it is locked even the
right password is refused. A successful sign-in clears the account's count (not the
address's: one right password must not launder a guessing address).

The shell keeps one `Failures` per account and per address (in the database, so that every
center process sees the same counts), asks `admit` before it checks a password at all, and
stores what `record` returns afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ThrottlePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    free_failures: int = Field(
        default=1, ge=0, le=1000, description="Failures before attempts are slowed down."
    )
    base_delay_s: float = Field(default=1.0, ge=0, le=3600, description="First wait.")
    max_delay_s: float = Field(default=30.0, ge=0, le=86_400, description="Longest wait.")
    lock_after: int | None = Field(
        default=5, ge=1, le=10_000, description="Failures that lock; null never locks."
    )
    lock_s: float = Field(default=600.0, ge=0, le=31_536_000, description="How long a lock lasts.")
    forget_after_s: float | None = Field(
        default=None, gt=0, description="A quiet spell this long clears the count; null never."
    )

    def delay_s(self, failures: int) -> float:
        """How long after the last failure the next attempt must wait; grows with failures."""
        excess = failures - self.free_failures
        if excess <= 0:
            return 0.0
        # The exponent is capped so that huge counts cannot overflow the float.
        return min(self.base_delay_s * 2.0 ** min(excess - 1, 64), self.max_delay_s)


class ThrottleSettings(BaseModel):
    """Defaults: an account locks for 10 minutes after 5 failures (CJIS 5.5.3); an address
    is slowed after 10 failures on any accounts and locked out after 100 within an hour."""

    model_config = ConfigDict(extra="forbid")

    account: ThrottlePolicy = ThrottlePolicy()
    address: ThrottlePolicy = ThrottlePolicy(
        free_failures=10, max_delay_s=60.0, lock_after=100, forget_after_s=3600.0
    )


@dataclass(frozen=True, slots=True)
class Failures:
    """Consecutive failed sign-ins of one account or one source address."""

    count: int = 0
    last_at: float | None = None
    locked_until: float | None = None


class Refusal(StrEnum):
    LOCKED = "locked"  # the account or address is locked out for a while
    TOO_SOON = "too_soon"  # the wait after the last failure has not passed yet


@dataclass(frozen=True, slots=True)
class Admission:
    refusal: Refusal | None
    retry_after_s: float = 0.0

    @property
    def admitted(self) -> bool:
        return self.refusal is None


def current(failures: Failures, policy: ThrottlePolicy, now: float) -> Failures:
    """The count as it stands at `now`: an expired lock or a long quiet spell clears it."""
    if failures.locked_until is not None and now >= failures.locked_until:
        return Failures()
    quiet = policy.forget_after_s
    if quiet is not None and failures.last_at is not None and now - failures.last_at >= quiet:
        return Failures()
    return failures


def check(failures: Failures, policy: ThrottlePolicy, now: float) -> Admission:
    """Whether one account's or address's next attempt may be checked at all."""
    state = current(failures, policy, now)
    if state.locked_until is not None:
        return Admission(Refusal.LOCKED, state.locked_until - now)
    if state.last_at is not None:
        ready_at = state.last_at + policy.delay_s(state.count)
        if now < ready_at:
            return Admission(Refusal.TOO_SOON, ready_at - now)
    return Admission(None)


def fail(failures: Failures, policy: ThrottlePolicy, now: float) -> Failures:
    state = current(failures, policy, now)
    count = state.count + 1
    locks = policy.lock_after is not None and count >= policy.lock_after
    return Failures(count, now, now + policy.lock_s if locks else None)


@dataclass(frozen=True, slots=True)
class SignInThrottle:
    """Both counts of one attempt: the account's and the source address's."""

    settings: ThrottleSettings

    def admit(self, account: Failures, address: Failures, now: float) -> Admission:
        """Refuses when either count says so; a lock wins over a wait, the longer wait over
        the shorter."""
        verdicts = [
            check(account, self.settings.account, now),
            check(address, self.settings.address, now),
        ]
        refused = [v for v in verdicts if not v.admitted]
        if not refused:
            return Admission(None)
        locked = [v for v in refused if v.refusal is Refusal.LOCKED]
        return max(locked or refused, key=lambda v: v.retry_after_s)

    def record(
        self, account: Failures, address: Failures, succeeded: bool, now: float
    ) -> tuple[Failures, Failures]:
        """The new (account, address) counts after an admitted attempt was checked."""
        if succeeded:
            return Failures(), current(address, self.settings.address, now)
        return (
            fail(account, self.settings.account, now),
            fail(address, self.settings.address, now),
        )

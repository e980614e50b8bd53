"""When the unit renews its certificate, and whether the center's answer is one to put in
force (pure: the time comes in, nothing is read or sent here).

Due once less than `share` of the certificate's lifetime is left, or fewer than `min_days`,
the latter never more than half the lifetime ahead (a certificate shorter than `min_days`
would otherwise be due as soon as issued, and renewed at every attempt). At most one attempt
per `window_s`; a failed one is tried again after the window plus a jittered backoff that
grows with each failure, so a fleet refused together does not come back together. An
expired certificate is not renewed: the center would refuse it, the gateway enrolls again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from agent.issued_cert import issued_problem
from protocol.renewal import RenewAnswer
from runtime.backoff import Backoff

DAY_S = 86_400.0
Outcome = Literal["ok", "refused", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "refused", "failed")


@dataclass(frozen=True, slots=True)
class CertFacts:
    serial: str
    not_before: float
    not_after: float

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertFacts:
        return cls(
            format(cert.serial_number, "x"),
            cert.not_valid_before_utc.timestamp(),
            cert.not_valid_after_utc.timestamp(),
        )


def due_at(facts: CertFacts, share: float, min_days: float) -> float:
    """When renewing `facts`' certificate becomes due."""
    lifetime = max(0.0, facts.not_after - facts.not_before)
    ahead = max(share * lifetime, min(min_days * DAY_S, lifetime / 2))
    return facts.not_after - ahead


@dataclass(slots=True)
class Schedule:
    share: float
    min_days: float
    window_s: float
    retry_max_s: float
    rand: Callable[[], float] = random.random
    failures: int = 0
    # No attempt before this: the window after the last attempt, or a failure's backoff.
    not_before: float = -math.inf

    def next_attempt(self, facts: CertFacts, now: float) -> float | None:
        """When to try next (at or before `now`: at once); None once it expired."""
        if now >= facts.not_after:
            return None
        return max(due_at(facts, self.share, self.min_days), self.not_before)

    def attempted(self, now: float, ok: bool) -> None:
        if ok:
            self.failures = 0
            self.not_before = now + self.window_s
            return
        backoff = Backoff(self.window_s, max(self.window_s, self.retry_max_s))
        self.not_before = now + self.window_s + backoff.delay(self.failures, self.rand)
        self.failures += 1


@dataclass(slots=True)
class RenewalStatus:
    """What the agent's health tells of its certificate and its renewals."""

    expires_at: float | None = None
    serial: str | None = None
    last_outcome: Outcome | None = None
    last_detail: str | None = None
    last_at: float | None = None
    outcomes: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("ok", "refused", "failed"), 0)
    )

    def record(self, outcome: Outcome, detail: str, now: float) -> None:
        self.last_outcome, self.last_detail, self.last_at = outcome, detail, now
        self.outcomes[outcome] += 1


def answer_problem(
    answer: RenewAnswer, key: ec.EllipticCurvePublicKey, unit_id: str, cas: list[x509.Certificate]
) -> str | None:
    """What makes the center's answer one not to put in force, or None: the certificate must
    be for the key made here, name this unit, and come from one of `cas` (the device CA the
    unit already trusts for its broker)."""
    if answer.unit_id != unit_id:
        return f"the answer names unit {answer.unit_id!r}, this unit is {unit_id!r}"
    return issued_problem(
        answer.certificate, key, unit_id, answer.serial, cas, "this gateway trusts"
    )

"""RFC 7675 consent freshness for aioice, with late answers counted and no false expiry.

Replaces, process-wide, one aioice method: `aioice.ice.Connection.query_consent`, the task
that each connection starts once ICE has completed. aioice's own version (0.13.0) sends
each check as a STUN transaction with no retransmission, gives it up after 0.5 s (the
initial RTO) and closes the connection after 6 checks in a row went unanswered that way.
A healthy path whose round trip is above 0.5 s (a loaded LTE uplink: 400 +- 100 ms each
way) therefore fails every check and is closed after about 30 s (aioice issue #58).

What RFC 7675 section 5.1 asks for instead, and what this does:
- a check every `interval_s` (5 s) randomised to 0.8-1.2 times that, each a new binding
  request with a new transaction id, sent once (no STUN retransmissions: they would front-
  load the probes and change the check rate);
- consent expires `expiry_s` (30 s) after the last *valid response*, whichever check it
  answers: a response that comes after the next check was sent still counts. Checks stay
  open (registered with aioice's protocol, so its receive path hands us their responses)
  until they are answered, are older than `expiry_s`, or are beyond a small count bound;
  all are dropped when consent expires or the task ends. No futures are created;
- valid means: a success response with the request's transaction id, authenticated with
  the remote password (MESSAGE-INTEGRITY), from the address the check was sent to;
- when consent expires the connection is closed as before, now at `expiry_s` after the
  last valid response (not after 6 unanswered checks), so a dead path is still detected.

`Consent` is the pure core (times in, decisions out); `_query_consent` is the shell.
Pinned to aioice 0.13.0 (it uses `Connection._nominated`, `build_request`,
`StunProtocol.transactions` and `send_stun`); covered by tests/unit/test_consent.py and
tests/integration/test_consent_aioice.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import structlog
from aioice import ice, stun

log = structlog.get_logger("rtcc.consent")

# aioice's own coroutine, kept for comparison (the tests show what it does on a slow path).
AIOICE_QUERY_CONSENT = ice.Connection.query_consent


class Consent:
    """Whether consent to send on one candidate pair is still fresh (RFC 7675 section 5.1).

    Pure: it is told when each check was sent (`sent`) and when a valid response came
    (`response`), with times from one monotonic clock that never goes back. Consent is
    fresh from `now` at creation (ICE has just completed) and expires `expiry_s` after the
    last valid response; once expired it stays expired. A check is awaited for `expiry_s`
    after it was sent; at most `max_pending` are held, and `sent` returns those it stops
    holding (older than `expiry_s`, or the oldest beyond the bound)."""

    def __init__(self, now: float, expiry_s: float = 30.0, max_pending: int = 16) -> None:
        if expiry_s <= 0 or max_pending < 1:
            raise ValueError("need expiry_s > 0 and max_pending >= 1")
        self.expiry_s = expiry_s
        self.max_pending = max_pending
        self.last_valid = now
        self.late_responses = 0  # valid answers that came after a later check was sent
        self._pending: OrderedDict[bytes, float] = OrderedDict()  # oldest first
        self._newest: bytes | None = None

    @property
    def deadline(self) -> float:
        return self.last_valid + self.expiry_s

    @property
    def pending(self) -> tuple[bytes, ...]:
        return tuple(self._pending)

    def expired(self, now: float) -> bool:
        return now - self.last_valid >= self.expiry_s

    def sent(self, now: float, transaction_id: bytes) -> list[bytes]:
        """A check went out. Returns the transaction ids no longer awaited (the caller stops
        listening for them): those older than `expiry_s` and the oldest beyond `max_pending`;
        once consent has expired, every one including this (nothing is awaited then)."""
        if self.expired(now):
            return [*self.discard_all(), transaction_id]
        self._newest = transaction_id
        dropped = [t for t, at in self._pending.items() if now - at >= self.expiry_s]
        for transaction in dropped:
            del self._pending[transaction]
        self._pending[transaction_id] = now
        while len(self._pending) > self.max_pending:
            dropped.append(self._pending.popitem(last=False)[0])
        return dropped

    def response(self, now: float, transaction_id: bytes) -> bool:
        """A valid success response came for `transaction_id`; that check is over. True if
        it answers a check still awaited (sent less than `expiry_s` ago) while consent is
        fresh: consent is then fresh from `now`."""
        sent_at = self._pending.pop(transaction_id, None)
        if sent_at is None or now - sent_at >= self.expiry_s or self.expired(now):
            return False
        if transaction_id != self._newest:
            self.late_responses += 1
        self.last_valid = max(self.last_valid, now)
        return True

    def forget(self, transaction_id: bytes) -> None:
        """The check is over without refreshing consent (an error response)."""
        self._pending.pop(transaction_id, None)

    def discard_all(self) -> list[bytes]:
        dropped = list(self._pending)
        self._pending.clear()
        return dropped


@dataclass(frozen=True, slots=True)
class ConsentSettings:
    expiry_s: float = 30.0
    interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < 1.2 * self.interval_s < self.expiry_s:
            raise ValueError("need 0 < 1.2 * interval_s < expiry_s")

    @property
    def max_pending(self) -> int:
        """Checks that can be awaited at once: all those sent within `expiry_s`, plus one."""
        return math.ceil(self.expiry_s / (0.8 * self.interval_s)) + 1

    def next_interval(self, rand: float) -> float:
        return self.interval_s * (0.8 + 0.4 * rand)


_settings = ConsentSettings()


def _host(address: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        return (ipaddress.ip_address(str(address[0]).split("%")[0]), address[1])
    except ValueError:
        return (address[0], address[1])


class _Check:
    """Stands in aioice's `protocol.transactions` for one consent check; the protocol calls
    `response_received` for any response or error response with its transaction id."""

    def __init__(self, pair: _PairConsent, transaction_id: bytes) -> None:
        self.pair = pair
        self.transaction_id = transaction_id

    def response_received(self, message: stun.Message, addr: tuple[str, int]) -> None:
        self.pair.answered(self.transaction_id, message, addr)


class _PairConsent:
    """The consent of one nominated pair: the core, and the checks registered with aioice."""

    def __init__(
        self, pair: ice.CandidatePair, key: bytes, now: float, settings: ConsentSettings
    ) -> None:
        self.pair = pair
        self.key = key
        self.consent = Consent(now, settings.expiry_s, settings.max_pending)
        self._remote = _host(pair.remote_addr)
        self._loop = asyncio.get_running_loop()

    @property
    def _transactions(self) -> dict[bytes, Any]:
        # Typed as holding aioice Transactions; it only ever calls response_received on them.
        return self.pair.protocol.transactions

    def check(self, request: stun.Message) -> None:
        request.add_message_integrity(self.key)
        transaction_id = request.transaction_id
        for dropped in self.consent.sent(self._loop.time(), transaction_id):
            self._transactions.pop(dropped, None)
        if transaction_id in self.consent.pending:
            self._transactions[transaction_id] = _Check(self, transaction_id)
            self.pair.protocol.send_stun(request, self.pair.remote_addr)

    def answered(self, transaction_id: bytes, message: stun.Message, addr: tuple[str, int]) -> None:
        # Unauthenticated or from elsewhere: not an answer (RFC 8489 section 9.1.4, RFC 8445
        # section 7.2.5.2.1); the check stays open for the real one.
        if not message.check_message_integrity(self.key) or _host(addr) != self._remote:
            return
        self._transactions.pop(transaction_id, None)
        if message.message_class == stun.Class.RESPONSE:
            self.consent.response(self._loop.time(), transaction_id)
        else:
            self.consent.forget(transaction_id)

    def close(self) -> None:
        for transaction_id in self.consent.discard_all():
            self._transactions.pop(transaction_id, None)


async def _query_consent(self: ice.Connection) -> None:
    """Replaces `aioice.ice.Connection.query_consent` (see the module docstring)."""
    assert self.remote_password is not None
    settings = _settings
    key = self.remote_password.encode("utf8")
    loop = asyncio.get_running_loop()
    pairs: dict[int, _PairConsent] = {}
    next_check = loop.time() + settings.next_interval(random.random())
    try:
        while True:
            now = loop.time()
            for component, pair in self._nominated.items():
                if component not in pairs or pairs[component].pair is not pair:
                    if component in pairs:
                        pairs[component].close()
                    pairs[component] = _PairConsent(pair, key, now, settings)
            wake = min([next_check, *(p.consent.deadline for p in pairs.values())])
            await asyncio.sleep(max(0.0, wake - now))
            now = loop.time()
            expired = [p for p in pairs.values() if p.consent.expired(now)]
            if expired:
                log.warning(
                    "consent_expired",
                    connection=repr(self),
                    pair=repr(expired[0].pair),
                    silent_s=round(now - expired[0].consent.last_valid, 3),
                )
                for p in pairs.values():
                    p.close()
                # As aioice does: close() must not cancel the task that is calling it.
                self._query_consent_task = None
                await self.close()
                return
            if now >= next_check:
                for p in pairs.values():
                    p.check(self.build_request(p.pair, nominate=False))
                next_check = now + settings.next_interval(random.random())
    finally:
        for p in pairs.values():
            p.close()


def install(expiry_s: float = 30.0, interval_s: float = 5.0) -> None:
    """Switch this process's aioice connections to this consent check. Idempotent; the
    values of the last call apply to connections that complete ICE after it."""
    global _settings  # noqa: PLW0603
    _settings = ConsentSettings(expiry_s=expiry_s, interval_s=interval_s)
    setattr(ice.Connection, "query_consent", _query_consent)  # noqa: B010


def installed() -> bool:
    return getattr(ice.Connection, "query_consent", None) is _query_consent

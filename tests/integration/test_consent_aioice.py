"""Consent freshness on two real aioice connections over 127.0.0.1 (no STUN/TURN server).

One side's STUN answers are held back (its protocols' send path is wrapped), as on a loaded
LTE link: with runtime.consent the connection stays up, late answers counting; aioice's own
check closes it. When answers stop, the connection is closed about expiry_s later. Small
interval/expiry values keep each test to a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aioice.ice
import pytest
from aioice import ice, stun

from runtime import consent
from tests.helpers import wait_for

INTERVAL_S = 0.25  # checks every 0.2-0.3 s
EXPIRY_S = 2.5
DELAY_S = 1.2  # each answer: well past aioice's 0.5 s, and past several check intervals


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Host candidates on 127.0.0.1 only, restricted as runtime.webrtc.apply_ice does."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
def fast_consent(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """runtime.consent installed with small values for this test only (it is process-wide:
    whatever was there before is put back)."""
    monkeypatch.setattr(ice.Connection, "query_consent", ice.Connection.query_consent)
    monkeypatch.setattr(consent, "_settings", consent._settings)
    consent.install(expiry_s=EXPIRY_S, interval_s=INTERVAL_S)
    yield


class Answers:
    """Wraps the send path of a connection's protocols: STUN responses are delayed by
    `delay_s`, or dropped when `drop` is set; everything else goes out as before."""

    def __init__(self, connection: ice.Connection) -> None:
        self.delay_s = 0.0
        self.drop = False
        self.sent = 0
        self._handles: list[asyncio.TimerHandle] = []
        loop = asyncio.get_running_loop()
        for protocol in connection._protocols:
            original = protocol.send_stun

            def send_stun(
                message: stun.Message,
                addr: tuple[str, int],
                original: Callable[[stun.Message, tuple[str, int]], None] = original,
            ) -> None:
                if message.message_class != stun.Class.RESPONSE:
                    original(message, addr)
                elif not self.drop:
                    self.sent += 1
                    self._handles.append(loop.call_later(self.delay_s, original, message, addr))
                    self._handles = [h for h in self._handles if not h.cancelled()][-100:]

            protocol.send_stun = send_stun  # type: ignore[method-assign]

    def cancel(self) -> None:
        for handle in self._handles:
            handle.cancel()


class Closed:
    """Set when the connection emits ConnectionClosed."""

    def __init__(self, connection: ice.Connection) -> None:
        self.at: float | None = None
        self.task = asyncio.create_task(self._watch(connection), name="closed-watch")

    async def _watch(self, connection: ice.Connection) -> None:
        event = await connection.get_event()
        if isinstance(event, ice.ConnectionClosed):
            self.at = time.monotonic()


@contextlib.asynccontextmanager
async def connected_pair() -> AsyncIterator[tuple[ice.Connection, ice.Connection]]:
    a = ice.Connection(ice_controlling=True, use_ipv6=False)
    b = ice.Connection(ice_controlling=False, use_ipv6=False)
    try:
        await asyncio.gather(a.gather_candidates(), b.gather_candidates())
        for local, remote in ((a, b), (b, a)):
            local.remote_username = remote.local_username
            local.remote_password = remote.local_password
            for candidate in remote.local_candidates:
                await local.add_remote_candidate(candidate)
            await local.add_remote_candidate(None)
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 10)
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())


async def exchange(a: ice.Connection, b: ice.Connection) -> None:
    """The nominated path carries data both ways."""
    await a.send(b"ping")
    assert await asyncio.wait_for(b.recv(), 5) == b"ping"
    await b.send(b"pong")
    assert await asyncio.wait_for(a.recv(), 5) == b"pong"


def consent_transactions(connection: ice.Connection) -> int:
    return sum(
        isinstance(t, consent._Check)
        for p in connection._protocols
        for t in p.transactions.values()
    )


async def stays_up(
    a: ice.Connection, closed: Closed, answers: Answers, seconds: float, check: Callable[[], Any]
) -> None:
    """Wait until `seconds` have passed with answers still coming, failing at once if the
    connection closes; `check` runs on every poll."""
    started = time.monotonic()
    sent_before = answers.sent

    def done() -> bool:
        assert closed.at is None, f"closed after {closed.at - started:.1f}s"
        check()
        return time.monotonic() - started >= seconds and answers.sent - sent_before >= 10

    await wait_for(done, timeout=seconds + 10)


@pytest.mark.usefixtures("fast_consent")
async def test_late_answers_keep_a_slow_path_up() -> None:
    async with connected_pair() as (a, b):
        await exchange(a, b)
        closed = Closed(a)
        answers = Answers(b)
        answers.delay_s = DELAY_S
        open_checks: list[int] = []
        late_answers: list[int] = []
        bound = consent.ConsentSettings(EXPIRY_S, INTERVAL_S).max_pending

        def check() -> None:
            # Several checks are open at once, never more than the bound.
            checks = [
                t
                for p in a._protocols
                for t in p.transactions.values()
                if isinstance(t, consent._Check)
            ]
            open_checks.append(len(checks))
            assert len(checks) <= bound
            late_answers.extend(c.pair.consent.late_responses for c in checks[:1])

        # Two whole expiry periods, every answer 1.2 s late (aioice gives up after 0.5 s).
        await stays_up(a, closed, answers, 2 * EXPIRY_S, check)
        assert max(open_checks) >= 3
        assert max(late_answers) >= 10  # answers that came after later checks went out
        await exchange(a, b)
        answers.cancel()
        await a.close()
        assert consent_transactions(a) == 0
        await asyncio.wait_for(closed.task, 5)


@pytest.mark.usefixtures("fast_consent")
async def test_a_dead_path_is_closed_about_expiry_after_the_last_answer() -> None:
    async with connected_pair() as (a, b):
        closed = Closed(a)
        answers = Answers(b)
        await exchange(a, b)
        answers.drop = True
        stopped = time.monotonic()
        await asyncio.wait_for(closed.task, EXPIRY_S + 5)
        assert closed.at is not None
        silent = closed.at - stopped
        # The last answer came at most one check interval (plus its round trip) before.
        assert EXPIRY_S - 1.2 * INTERVAL_S - 0.1 <= silent <= EXPIRY_S + 0.5, silent
        assert consent_transactions(a) == 0


async def test_aioice_own_check_closes_the_same_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why runtime.consent exists (aioice issue #58): on the path the first test keeps up,
    aioice 0.13.0's check gives each answer 0.5 s and closes after 6 misses."""
    monkeypatch.setattr(ice.Connection, "query_consent", consent.AIOICE_QUERY_CONSENT)
    monkeypatch.setattr(ice, "CONSENT_INTERVAL", INTERVAL_S)
    async with connected_pair() as (a, b):
        closed = Closed(a)
        answers = Answers(b)
        answers.delay_s = DELAY_S
        started = time.monotonic()
        # 6 checks, each a pause of 0.2-0.3 s then 0.5 s waiting: about 4.5 s.
        await asyncio.wait_for(closed.task, 15)
        assert closed.at is not None
        assert closed.at - started < 10
        answers.cancel()

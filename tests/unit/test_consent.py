"""RFC 7675 consent freshness: the pure core, the settings, what counts as a valid answer,
and the install hook."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aioice import ice, stun
from aioice.candidate import Candidate
from hypothesis import given
from hypothesis import strategies as st

from runtime import consent
from runtime.consent import Consent, ConsentSettings


def tid(n: int) -> bytes:
    return n.to_bytes(12, "big")


# --- the core -------------------------------------------------------------------------


def test_fresh_at_start_and_expires_exactly_expiry_later() -> None:
    c = Consent(100.0, expiry_s=30.0)
    assert not c.expired(100.0)
    assert not c.expired(129.999)
    assert c.expired(130.0)
    assert c.deadline == 130.0


def test_a_valid_response_refreshes_from_its_arrival() -> None:
    c = Consent(0.0, expiry_s=30.0)
    c.sent(5.0, tid(1))
    assert c.response(5.2, tid(1))
    assert c.deadline == 35.2
    assert not c.expired(35.1)
    assert c.expired(35.2)


def test_a_late_response_counts_after_later_checks_were_sent() -> None:
    """The path of aioice issue #58: every answer takes longer than the 0.5 s aioice waits,
    here even longer than the interval, so each comes after the next check went out."""
    c = Consent(0.0, expiry_s=3.0)
    c.sent(1.0, tid(1))
    c.sent(2.0, tid(2))
    assert list(c.pending) == [tid(1), tid(2)]
    assert c.response(2.4, tid(1))  # 1.4 s round trip, after check 2 was sent
    assert c.late_responses == 1
    assert list(c.pending) == [tid(2)]
    assert c.deadline == 5.4
    assert c.response(3.3, tid(2))
    assert c.late_responses == 1  # the newest check: not late
    assert c.deadline == 6.3


def test_an_answer_to_an_older_check_is_late_even_if_the_newest_was_answered() -> None:
    c = Consent(0.0, expiry_s=10.0)
    c.sent(1.0, tid(1))
    c.sent(2.0, tid(2))
    assert c.response(2.1, tid(2))
    assert c.response(2.5, tid(1))
    assert c.late_responses == 1


def test_no_response_means_expiry_after_expiry_s() -> None:
    c = Consent(0.0, expiry_s=30.0)
    t = 0.0
    for n in range(7):
        t += 5.0
        assert c.sent(t, tid(n)) == [] or t >= 30.0
    assert c.expired(30.0)


def test_unknown_or_repeated_transaction_does_not_refresh() -> None:
    c = Consent(0.0, expiry_s=30.0)
    c.sent(5.0, tid(1))
    assert not c.response(6.0, tid(99))
    assert c.response(6.0, tid(1))
    assert not c.response(20.0, tid(1))  # a duplicate of the same answer
    assert c.deadline == 36.0


def test_once_expired_it_stays_expired() -> None:
    c = Consent(0.0, expiry_s=30.0)
    c.sent(25.0, tid(1))
    c.sent(26.0, tid(2))
    assert c.expired(30.0)
    assert not c.response(30.5, tid(1))  # too late: the check is over, consent stays lost
    assert list(c.pending) == [tid(2)]
    assert c.expired(1000.0)
    assert c.sent(31.0, tid(3)) == [tid(2), tid(3)]  # nothing is awaited any more
    assert list(c.pending) == []


def test_an_error_response_ends_the_check_without_refreshing() -> None:
    c = Consent(0.0, expiry_s=30.0)
    c.sent(5.0, tid(1))
    c.forget(tid(1))
    assert list(c.pending) == []
    assert not c.response(6.0, tid(1))
    assert c.deadline == 30.0
    c.forget(tid(42))  # unknown: nothing happens


def test_checks_older_than_expiry_are_no_longer_awaited() -> None:
    c = Consent(0.0, expiry_s=10.0, max_pending=100)
    c.sent(1.0, tid(1))
    assert c.response(2.0, tid(99)) is False
    c.sent(5.0, tid(2))
    c.sent(8.0, tid(3))
    assert c.response(8.5, tid(3))
    assert c.sent(11.0, tid(4)) == [tid(1)]  # sent 10 s ago
    assert list(c.pending) == [tid(2), tid(4)]


def test_at_most_max_pending_checks_are_awaited_oldest_dropped_first() -> None:
    c = Consent(0.0, expiry_s=1000.0, max_pending=3)
    dropped: list[bytes] = []
    for n in range(6):
        dropped += c.sent(float(n), tid(n))
    assert list(c.pending) == [tid(3), tid(4), tid(5)]
    assert dropped == [tid(0), tid(1), tid(2)]
    assert not c.response(6.0, tid(0))
    assert c.response(6.0, tid(3))


def test_an_answer_to_a_check_older_than_expiry_does_not_count() -> None:
    c = Consent(0.0, expiry_s=10.0)
    c.sent(1.0, tid(1))
    c.sent(2.0, tid(2))
    assert c.response(2.5, tid(2))
    assert not c.response(11.0, tid(1))  # a 10 s round trip: the check was given up
    assert list(c.pending) == []
    assert c.deadline == 12.5


def test_discard_all() -> None:
    c = Consent(0.0)
    c.sent(1.0, tid(1))
    c.sent(2.0, tid(2))
    assert c.discard_all() == [tid(1), tid(2)]
    assert list(c.pending) == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Consent(0.0, expiry_s=0.0)
    with pytest.raises(ValueError):
        Consent(0.0, max_pending=0)


events = st.lists(
    st.tuples(
        st.floats(0.0, 12.0, allow_nan=False),  # time since the previous event
        st.sampled_from(["sent", "response", "forget"]),
        st.integers(0, 40),  # which earlier check a response/forget is for
    ),
    max_size=80,
)


@given(events, st.floats(1.0, 40.0), st.integers(1, 12))
def test_against_a_model(
    script: list[tuple[float, str, int]], expiry_s: float, max_pending: int
) -> None:
    """Consent is fresh exactly while less than expiry_s has passed since the last accepted
    answer; never more than max_pending checks are awaited, none older than expiry_s; and
    every check ends up answered, forgotten, dropped (and returned) or still awaited, so
    the shell can mirror the set exactly (no leaked transactions)."""
    c = Consent(0.0, expiry_s=expiry_s, max_pending=max_pending)
    now, last_valid = 0.0, 0.0
    sent: list[bytes] = []
    sent_at: dict[bytes, float] = {}
    ended: set[bytes] = set()
    for gap, kind, which in script:
        now += gap
        expired = now - last_valid >= expiry_s
        assert c.expired(now) == expired
        if kind == "sent":
            t = tid(len(sent))
            sent.append(t)
            sent_at[t] = now
            dropped = c.sent(now, t)
            assert len(set(dropped)) == len(dropped)
            assert not set(dropped) & ended
            ended |= set(dropped)
            if expired:
                assert t in dropped
        elif sent:
            t = sent[which % len(sent)]
            if kind == "response":
                accepted = c.response(now, t)
                fresh_check = now - sent_at[t] < expiry_s
                assert accepted == (not expired and t not in ended and fresh_check)
                if accepted:
                    last_valid = now
            else:
                c.forget(t)
            ended.add(t)
        pending = set(c.pending)
        assert len(pending) <= max_pending
        if kind == "sent":
            assert all(now - sent_at[t] < expiry_s for t in pending)
        assert pending | ended == set(sent)
        assert not pending & ended
        assert c.deadline == last_valid + expiry_s


# --- settings and install ---------------------------------------------------------------


def test_settings() -> None:
    s = ConsentSettings()
    assert (s.expiry_s, s.interval_s) == (30.0, 5.0)
    assert s.max_pending == 9  # 30 s of checks at the fastest rate (every 4 s), plus one
    assert s.next_interval(0.0) == pytest.approx(4.0)
    assert s.next_interval(1.0) == pytest.approx(6.0)
    for expiry, interval in ((5.0, 5.0), (6.0, 5.0), (30.0, 0.0), (30.0, -1.0)):
        with pytest.raises(ValueError):
            ConsentSettings(expiry_s=expiry, interval_s=interval)


def test_install_is_idempotent_and_replaces_aioice_query_consent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ice.Connection, "query_consent", ice.Connection.query_consent)
    monkeypatch.setattr(consent, "_settings", consent._settings)
    monkeypatch.setattr(ice.Connection, "query_consent", consent.AIOICE_QUERY_CONSENT)
    assert not consent.installed()
    consent.install()
    consent.install(expiry_s=10.0, interval_s=2.0)
    assert consent.installed()
    assert ice.Connection.query_consent is consent._query_consent
    assert consent._settings == ConsentSettings(expiry_s=10.0, interval_s=2.0)
    with pytest.raises(ValueError):
        consent.install(expiry_s=1.0, interval_s=5.0)


def test_aioice_is_the_pinned_version() -> None:
    """The shell relies on aioice internals: a new aioice must be looked at again."""
    from importlib.metadata import version

    assert version("aioice") == "0.13.0"


# --- what the shell counts as an answer --------------------------------------------------

KEY = b"remote-password-remote-pw"
REMOTE = ("192.0.2.7", 40000)


class FakeProtocol:
    def __init__(self) -> None:
        self.transactions: dict[bytes, Any] = {}
        self.sent: list[tuple[stun.Message, tuple[str, int]]] = []
        self.local_candidate = Candidate("1", 1, "udp", 1, "192.0.2.1", 5000, "host")

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        self.sent.append((message, addr))


def answer(
    request: stun.Message, key: bytes = KEY, cls: stun.Class = stun.Class.RESPONSE
) -> stun.Message:
    response = stun.Message(stun.Method.BINDING, cls, transaction_id=request.transaction_id)
    response.attributes["XOR-MAPPED-ADDRESS"] = ("192.0.2.1", 5000)
    response.add_message_integrity(key)
    return stun.parse_message(bytes(response))  # as it arrives: integrity data is kept


async def pair_consent(settings: ConsentSettings) -> tuple[consent._PairConsent, FakeProtocol]:
    protocol = FakeProtocol()
    remote = Candidate("2", 1, "udp", 1, REMOTE[0], REMOTE[1], "host")
    pair = ice.CandidatePair(protocol, remote)  # type: ignore[arg-type]
    now = asyncio.get_running_loop().time()
    return consent._PairConsent(pair, KEY, now, settings), protocol


def request() -> stun.Message:
    return stun.Message(stun.Method.BINDING, stun.Class.REQUEST)


async def test_only_an_authenticated_success_from_the_remote_address_refreshes() -> None:
    pc, protocol = await pair_consent(ConsentSettings(expiry_s=30.0, interval_s=5.0))
    start = pc.consent.last_valid
    req = request()
    pc.check(req)
    assert protocol.sent == [(req, REMOTE)]
    assert req.check_message_integrity(KEY)  # signed with the remote password
    check = protocol.transactions[req.transaction_id]

    check.response_received(answer(req, key=b"wrong-password-wrong-pw"), REMOTE)
    check.response_received(answer(req), ("192.0.2.99", 40000))
    check.response_received(answer(req), (REMOTE[0], 40001))
    assert req.transaction_id in protocol.transactions
    assert pc.consent.last_valid == start

    await asyncio.sleep(0.01)
    check.response_received(answer(req), REMOTE)
    assert req.transaction_id not in protocol.transactions
    assert pc.consent.last_valid > start


async def test_an_error_response_closes_the_check_without_refreshing() -> None:
    pc, protocol = await pair_consent(ConsentSettings())
    start = pc.consent.last_valid
    req = request()
    pc.check(req)
    protocol.transactions[req.transaction_id].response_received(
        answer(req, cls=stun.Class.ERROR), REMOTE
    )
    assert protocol.transactions == {}
    assert pc.consent.pending == ()
    assert pc.consent.last_valid == start


async def test_the_shell_mirrors_the_bound_and_leaves_nothing_behind() -> None:
    settings = ConsentSettings(expiry_s=30.0, interval_s=5.0)
    pc, protocol = await pair_consent(settings)
    protocol.transactions[b"other-check!"] = object()  # an ICE check of aioice's own
    for _ in range(3 * settings.max_pending):
        pc.check(request())
    ours = set(protocol.transactions) - {b"other-check!"}
    assert ours == set(pc.consent.pending)
    assert len(ours) == settings.max_pending
    pc.close()
    assert set(protocol.transactions) == {b"other-check!"}


async def test_an_ipv6_answer_matches_whatever_the_spelling() -> None:
    protocol = FakeProtocol()
    remote = Candidate("2", 1, "udp", 1, "2001:DB8:0::7", 40000, "host")
    pair = ice.CandidatePair(protocol, remote)  # type: ignore[arg-type]
    pc = consent._PairConsent(pair, KEY, asyncio.get_running_loop().time(), ConsentSettings())
    req = request()
    pc.check(req)
    protocol.transactions[req.transaction_id].response_received(answer(req), ("2001:db8::7", 40000))
    assert pc.consent.pending == ()
    assert protocol.transactions == {}

"""The lab link's forwarding core, with a scripted random source and a made-up clock."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.lab.linkd import VNET_HDR_LEN, carries_data
from tests.lab.model import Drop, Faults, LinkDirection

FRAME = 1_000


def scripted(*values: float) -> Iterator[float]:
    yield from values
    while True:
        yield 0.5


def direction(*rand: float, faults: Faults | None = None) -> LinkDirection[int]:
    values = scripted(*rand)
    link: LinkDirection[int] = LinkDirection(lambda: next(values))
    if faults is not None:
        link.set_faults(faults)
    return link


def test_without_faults_a_frame_is_due_at_once() -> None:
    link = direction()
    assert link.offer(1, FRAME, 10.0) == 10.0
    assert link.next_due() == 10.0
    assert link.due(10.0) == [1]
    assert link.stats.delivered == 1 and link.stats.delivered_bytes == FRAME
    assert link.stats.last_delivered_at == 10.0 and link.next_due() is None


def test_delay_and_uniform_jitter() -> None:
    link = direction(0.0, 0.5, 0.999_999, faults=Faults(delay_ms=400, jitter_ms=100))
    assert link.offer(1, FRAME, 0.0) == pytest.approx(0.3)
    assert link.offer(2, FRAME, 1.0) == pytest.approx(1.4)
    assert link.offer(3, FRAME, 2.0) == pytest.approx(2.5, abs=1e-6)
    assert link.due(1.39) == [1]
    assert link.due(3.0) == [2, 3]


def test_jitter_never_reorders() -> None:
    link = direction(0.999_999, 0.0, faults=Faults(delay_ms=400, jitter_ms=100))
    first = link.offer(1, FRAME, 0.0)
    second = link.offer(2, FRAME, 0.01)  # its own draw would be 0.31, before the first
    assert second == first
    assert link.due(1.0) == [1, 2]


def test_jitter_larger_than_delay_clamps_at_zero() -> None:
    link = direction(0.0, faults=Faults(delay_ms=50, jitter_ms=100))
    assert link.offer(1, FRAME, 5.0) == 5.0


def test_loss_draws_once_per_frame() -> None:
    link = direction(0.1, 0.3, faults=Faults(loss=0.2))
    assert link.offer(1, FRAME, 0.0) is Drop.LOSS
    assert link.offer(2, FRAME, 0.0) == 0.0
    assert link.stats.dropped_loss == 1 and link.stats.offered == 2


def test_a_cut_drops_new_frames_and_those_in_flight() -> None:
    link = direction(faults=Faults(delay_ms=400))
    link.offer(1, FRAME, 0.0)
    link.set_cut(True, 0.1)
    assert link.offer(2, FRAME, 0.2) is Drop.CUT
    assert link.due(10.0) == []
    assert link.stats.dropped_cut == 2 and link.stats.in_flight == 0
    link.set_cut(False, 1.0)
    assert link.offer(3, FRAME, 1.0) == pytest.approx(1.4)


def test_rate_limit_lets_the_burst_through_then_paces() -> None:
    # 80 kbit/s = 10 000 bytes/s: a 1 000-byte frame every 0.1 s once the bucket is empty.
    link = direction(faults=Faults(rate_kbit=80, burst_bytes=2_000, queue_ms=1_000))
    times = [link.offer(i, FRAME, 0.0) for i in range(5)]
    assert times == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])


def test_rate_queue_is_bounded_by_its_wait() -> None:
    link = direction(faults=Faults(rate_kbit=80, burst_bytes=2_000, queue_ms=250))
    verdicts = [link.offer(i, FRAME, 0.0) for i in range(6)]
    assert verdicts[4:] == [Drop.QUEUE, Drop.QUEUE]
    assert link.stats.dropped_queue == 2
    # A frame turned away takes no tokens: the next one after a pause is admitted.
    assert link.offer(9, FRAME, 0.3) == pytest.approx(0.3)


def test_rate_limit_refills_only_up_to_the_burst() -> None:
    link = direction(faults=Faults(rate_kbit=80, burst_bytes=2_000, queue_ms=1_000))
    link.offer(0, FRAME, 0.0)
    times = [link.offer(i, FRAME, 100.0) for i in range(1, 4)]
    assert times == pytest.approx([100.0, 100.0, 100.1])


def test_rate_then_delay() -> None:
    link = direction(faults=Faults(rate_kbit=80, burst_bytes=1_514, delay_ms=400))
    assert link.offer(1, FRAME, 0.0) == pytest.approx(0.4)
    # 514 bytes left in the bucket: the second waits for 486 more at 10 000 bytes/s.
    assert link.offer(2, FRAME, 0.0) == pytest.approx(0.4486)


def test_new_faults_keep_frames_in_flight_on_time() -> None:
    link = direction(faults=Faults(delay_ms=400))
    link.offer(1, FRAME, 0.0)
    link.set_faults(Faults())
    assert link.offer(2, FRAME, 0.1) == pytest.approx(0.4)  # in order, behind the first
    assert link.due(0.4) == [1, 2]


def test_long_run_throughput_matches_the_rate() -> None:
    link = direction(faults=Faults(rate_kbit=150, queue_ms=300))
    for i in range(2_000):  # 300 kbit/s offered for 10 s
        link.offer(i, 187, i * 0.005)
    link.due(10.0)
    expected = 150_000 / 8 * 10 + link.faults.burst_bytes
    assert link.stats.delivered_bytes == pytest.approx(expected, rel=0.02)


@given(
    st.lists(st.tuples(st.floats(0, 0.05), st.integers(60, 1_514)), min_size=1, max_size=200),
    st.floats(0, 500),
    st.floats(0, 200),
    st.floats(0, 0.5),
    st.one_of(st.none(), st.floats(8, 10_000)),
    st.integers(0, 2**32),
)
def test_every_frame_is_dropped_or_delivered_in_order(
    gaps: list[tuple[float, int]],
    delay_ms: float,
    jitter_ms: float,
    loss: float,
    rate_kbit: float | None,
    seed: int,
) -> None:
    faults = Faults(delay_ms=delay_ms, jitter_ms=jitter_ms, loss=loss, rate_kbit=rate_kbit)
    link: LinkDirection[int] = LinkDirection(random.Random(seed).random)
    link.set_faults(faults)
    now, admitted, last_due = 0.0, [], 0.0
    for i, (gap, size) in enumerate(gaps):
        now += gap
        verdict = link.offer(i, size, now)
        if isinstance(verdict, Drop):
            continue
        admitted.append(i)
        assert verdict >= now + max(0.0, delay_ms - jitter_ms) / 1000 - 1e-9
        assert verdict >= last_due
        last_due = verdict
    assert link.due(now + 1_000.0) == admitted
    stats = link.stats
    dropped = stats.dropped_cut + stats.dropped_loss + stats.dropped_queue
    assert stats.delivered + dropped == stats.offered == len(gaps)


def frame(ethertype: bytes, ip: bytes) -> bytes:
    return bytes(VNET_HDR_LEN) + bytes(12) + ethertype + ip


def ipv4(proto: int, payload: bytes, tcp_header_words: int = 5) -> bytes:
    l4 = bytes(8) if proto == 17 else bytes(12) + bytes([tcp_header_words << 4]) + bytes(7)
    if proto == 6:
        l4 += bytes(tcp_header_words * 4 - 20)
    body = l4 + payload
    header = bytes([0x45, 0]) + (20 + len(body)).to_bytes(2, "big") + bytes(5) + bytes([proto])
    return header + bytes(10) + body


def test_data_frames_are_told_from_bare_acks_and_arp() -> None:
    assert carries_data(frame(b"\x08\x00", ipv4(6, b"mqtt")))
    assert carries_data(frame(b"\x08\x00", ipv4(17, b"")))
    assert not carries_data(frame(b"\x08\x00", ipv4(6, b"", tcp_header_words=8)))
    assert not carries_data(frame(b"\x08\x06", bytes(28)))
    assert not carries_data(frame(b"\x08\x00", ipv4(1, b"ping")))

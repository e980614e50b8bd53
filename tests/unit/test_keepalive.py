"""The keepalive sent to the broker, against a model of Mosquitto 2.0's keepalive check
(src/keepalive.c): whole-second stamps, `now - last > keepalive * 3 / 2`, a look every 6 s."""

from __future__ import annotations

import math

import pytest

from runtime.keepalive import (
    MIN_WIRE_S,
    broker_allowance_s,
    ping_check_interval_s,
    wire_keepalive_s,
)

LOOP_TICK_S = 0.1  # Mosquitto's epoll timeout: a check runs this long after its second starts
NETWORK_S = 0.5  # one-way delay, and its variation, a ping may meet on its way


def found_gone_at(last_packet: float, wire_s: int, phase: int) -> float:
    """When the modelled broker drops a client silent since `last_packet`, its checks
    falling on the whole seconds s with s % 6 == phase."""
    second = math.ceil(last_packet)
    while second % 6 != phase or second - math.floor(last_packet) <= broker_allowance_s(wire_s):
        second += 1
    return second + LOOP_TICK_S


def dropped_between(sent: float, next_arrival: float, wire_s: int, phase: int) -> bool:
    return found_gone_at(sent, wire_s, phase) < next_arrival


@pytest.mark.parametrize("keepalive_s", [7, 8, 9, 10, 12, 15, 20, 30, 45, 60, 120, 600])
def test_the_will_comes_within_one_and_a_half_keepalives_of_the_last_packet(
    keepalive_s: int,
) -> None:
    wire = wire_keepalive_s(keepalive_s)
    assert wire is not None and MIN_WIRE_S <= wire <= keepalive_s
    worst = max(
        found_gone_at(100 + fraction, wire, phase) - (100 + fraction)
        for phase in range(6)
        for fraction in (0.0, 0.001, 0.25, 0.5, 0.75, 0.999)
    )
    assert worst <= 1.5 * keepalive_s


@pytest.mark.parametrize("keepalive_s", [10, 30])
def test_the_configured_keepalive_itself_would_break_the_promise(keepalive_s: int) -> None:
    worst = max(found_gone_at(100.999, keepalive_s, phase) - 100.999 for phase in range(6))
    assert worst > 1.5 * keepalive_s + 4


def test_the_longest_keepalive_that_fits_is_chosen() -> None:
    assert [wire_keepalive_s(k) for k in (7, 8, 10, 30, 60)] == [3, 3, 5, 25, 55]


@pytest.mark.parametrize("keepalive_s", [2, 3, 4, 5, 6])
def test_below_seven_seconds_nothing_fits(keepalive_s: int) -> None:
    assert wire_keepalive_s(keepalive_s) is None


def test_a_healthy_idle_client_is_never_dropped() -> None:
    """Its pings go out up to one check interval late and meet some network delay."""
    for wire_s in range(MIN_WIRE_S, 200):
        gap = wire_s + ping_check_interval_s(wire_s) + NETWORK_S
        for phase in range(6):
            for fraction in (0.0, 0.3, 0.6, 0.999):
                sent = 100 + fraction
                assert not dropped_between(sent, sent + gap, wire_s, phase), wire_s


def test_checking_only_every_second_would_drop_a_client_with_a_short_keepalive() -> None:
    late_ping = 2 + 1.0 + NETWORK_S
    assert any(dropped_between(100.9, 100.9 + late_ping, 2, phase) for phase in range(6))

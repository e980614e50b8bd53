"""The keepalive an MQTT client asks its broker for, so that a client that vanishes has its
Last Will published within 1.5 x the keepalive it was configured with (pure).

Mosquitto 2.0 (src/keepalive.c) stamps each client's last packet in whole seconds, judges a
client gone once `now - last > keepalive * 3 / 2` (integer division), and looks only when
more than five whole seconds have passed since it last looked, that is every 6 s. A client
that falls silent is therefore found between floor(1.5 k) and floor(1.5 k) + 6 s after its
last packet: up to 21 s instead of 15 s for k = 10. Nothing in Mosquitto's configuration
changes the 6 s. So the client asks for a shorter keepalive w: the longest for which
floor(1.5 w) + 6 s, plus the broker loop's 100 ms tick and the Will's way to subscribers,
still fits in 1.5 k (25 s for the default 30 s, 5 s for 10 s). The cost is a ping a little
more often from a unit that is otherwise silent; one that publishes sends nothing more. A
broker with an exact timer (NATS) only gets quicker.

Below 7 s no w fits, because w cannot go under 2 s: at 1 s, Mosquitto would drop a healthy
client whose ping came a fraction of a second late. There the configured keepalive is used
unchanged, and the promise does not hold.
"""

from __future__ import annotations

# Mosquitto 2.0.x checks keepalives when `last_check + 5 < now`, in whole seconds.
BROKER_SCAN_S = 6.0
# The broker loop's tick (100 ms), the Will's delivery and scheduling noise.
SLACK_S = 0.5
MIN_WIRE_S = 2


def broker_allowance_s(wire_s: int) -> int:
    """Whole seconds of silence Mosquitto tolerates from a client with keepalive `wire_s`."""
    return wire_s * 3 // 2


def worst_will_delay_s(wire_s: int) -> float:
    """The latest the broker publishes a silent client's Will, after its last packet."""
    return broker_allowance_s(wire_s) + BROKER_SCAN_S + SLACK_S


def wire_keepalive_s(keepalive_s: int) -> int | None:
    """The keepalive to send in CONNECT for a configured `keepalive_s`, or None when no
    keepalive the broker can live with keeps the 1.5 x promise."""
    promise = 1.5 * keepalive_s
    fits = [w for w in range(MIN_WIRE_S, keepalive_s + 1) if worst_will_delay_s(w) <= promise]
    return max(fits) if fits else None


def ping_check_interval_s(wire_s: int) -> float:
    """How often to run the client's keepalive check. A ping goes out up to this much late,
    and it must still reach the broker inside the half keepalive the broker allows beyond
    the ping interval (1 s of 3 s at w = 2)."""
    return min(1.0, wire_s / 10)

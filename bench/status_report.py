"""The status-plane benchmark's rows (bench/status_plane.py), its table, and the ratios it
draws from them: the center against the bare subscriber, mutual TLS against plain TCP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.table import Column

PLAIN, MTLS = "plain", "mTLS"


def quantile(buckets: dict[float, float], q: float) -> float:
    """Linear interpolation inside the Prometheus bucket that holds quantile q."""
    edges = sorted(buckets)
    total = buckets[edges[-1]]
    if total <= 0:
        return float("nan")
    target, lower, below = q * total, 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= target:
            if edge == float("inf"):
                return lower
            return lower + (edge - lower) * (target - below) / max(count - below, 1e-9)
        lower, below = edge, count
    return lower


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Row:
    system: str
    units: int
    ingested_per_s: float
    p50_ms: float
    p99_ms: float
    consumer_cpu_pct: float
    consumer_rss_mb: float
    broker_cpu_pct: float
    generator_cpu_pct: float
    mode: str = PLAIN
    broker_rss_mb: float = float("nan")
    connect_s: float = float("nan")  # every unit connected to the broker (TLS: handshakes)
    loadavg_1m: float = float("nan")  # the machine's, just after the window


COLUMNS = (
    Column("system", "system", "<40"),
    Column("units", "units", ">6"),
    Column("msg/s", "ingested_per_s", ">8.0f"),
    Column("p50 ms", "p50_ms", ">7.2f"),
    Column("p99 ms", "p99_ms", ">7.2f"),
    Column("CPU %", "consumer_cpu_pct", ">6.1f"),
    Column("RSS MB", "consumer_rss_mb", ">7.1f"),
    Column("broker%", "broker_cpu_pct", ">8.1f"),
    Column("brk MB", "broker_rss_mb", ">7.1f"),
    Column("gen %", "generator_cpu_pct", ">6.1f"),
    Column("conn s", "connect_s", ">7.1f"),
    Column("load", "loadavg_1m", ">5.1f"),
)


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def ratios(rows: list[Row]) -> list[dict[str, Any]]:
    """Each center's row against the bare subscriber's of the same units and mode."""
    out = []
    for ours in (r for r in rows if r.system.startswith("rtcc")):
        base = next(
            r
            for r in rows
            if r.units == ours.units and r.mode == ours.mode and r.system.startswith("bare")
        )
        out.append(
            {
                "system": ours.system,
                "units": ours.units,
                "p99_ratio": _ratio(ours.p99_ms, base.p99_ms),
                "cpu_ratio": ours.consumer_cpu_pct / max(base.consumer_cpu_pct, 0.1),
            }
        )
    return out


def mtls_ratios(rows: list[Row]) -> list[dict[str, Any]]:
    """Each row over mutual TLS against the same system's over plain TCP."""
    out = []
    for tls in (r for r in rows if r.mode == MTLS):
        system = tls.system.removesuffix(f" ({MTLS})")
        plain = next(
            (r for r in rows if r.mode == PLAIN and r.units == tls.units and r.system == system),
            None,
        )
        if plain is None:
            continue
        out.append(
            {
                "system": system,
                "units": tls.units,
                "p50_ratio": _ratio(tls.p50_ms, plain.p50_ms),
                "p99_ratio": _ratio(tls.p99_ms, plain.p99_ms),
                "consumer_cpu_ratio": _ratio(tls.consumer_cpu_pct, plain.consumer_cpu_pct),
                "broker_cpu_ratio": _ratio(tls.broker_cpu_pct, plain.broker_cpu_pct),
                "consumer_rss_ratio": _ratio(tls.consumer_rss_mb, plain.consumer_rss_mb),
                "broker_rss_ratio": _ratio(tls.broker_rss_mb, plain.broker_rss_mb),
            }
        )
    return out


def print_ratios(rows: list[Row]) -> None:
    for r in ratios(rows):
        print(
            f"  {r['system']}, {r['units']} units: p99 / baseline p99 = {r['p99_ratio']:.2f}, "
            f"CPU rtcc / baseline = {r['cpu_ratio']:.2f}"
        )
    tls = mtls_ratios(rows)
    if tls:
        print("\nmTLS / plain TCP, same system and units (1.00 = no cost):\n")
        print(
            f"{'system':<32} {'units':>6} {'p50':>6} {'p99':>6} {'CPU':>6} "
            f"{'broker CPU':>10} {'RSS':>6} {'broker RSS':>10}"
        )
    for r in tls:
        print(
            f"{r['system']:<32} {r['units']:>6} {r['p50_ratio']:>6.2f} {r['p99_ratio']:>6.2f} "
            f"{r['consumer_cpu_ratio']:>6.2f} {r['broker_cpu_ratio']:>10.2f} "
            f"{r['consumer_rss_ratio']:>6.2f} {r['broker_rss_ratio']:>10.2f}"
        )

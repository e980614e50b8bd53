"""Prometheus metrics of the center (one registry per service instance)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "rtcc_mqtt_messages",
            "Valid MQTT messages ingested, by topic kind",
            ["kind"],
            registry=r,
        )
        self.rejected = Counter(
            "rtcc_mqtt_rejected", "MQTT messages rejected, by reason", ["reason"], registry=r
        )
        self.duplicates = Counter("rtcc_mqtt_duplicates", "Repeated messages dropped", registry=r)
        self.stale = Counter("rtcc_mqtt_stale", "Messages of an older session dropped", registry=r)
        self.seq_gaps = Counter("rtcc_seq_gaps", "Sequence gaps detected", registry=r)
        self.rebirths = Counter("rtcc_rebirths_requested", "Rebirth commands sent", registry=r)
        self.units_online = Gauge("rtcc_units_online", "Units whose presence is online", registry=r)
        self.units_known = Gauge("rtcc_units_known", "Units in the registry", registry=r)
        self.mqtt_connected = Gauge(
            "rtcc_mqtt_connected", "1 when the fleet service is connected to the broker", registry=r
        )
        self.commands = Counter(
            "rtcc_commands", "Commands finished, by final status", ["status"], registry=r
        )
        self.command_rtt = Histogram(
            "rtcc_command_rtt_seconds",
            "Command sent to final result",
            registry=r,
            buckets=(*LATENCY_BUCKETS, 10.0, 30.0),
        )
        self.ingest_latency = Histogram(
            "rtcc_ingest_latency_seconds",
            "Unit timestamp to applied in the registry (live state and events)",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )

    def bind_gauges(
        self,
        online: Callable[[], float],
        known: Callable[[], float],
        connected: Callable[[], float],
    ) -> None:
        self.units_online.set_function(online)
        self.units_known.set_function(known)
        self.mqtt_connected.set_function(connected)

    def render(self) -> bytes:
        return generate_latest(self.registry)

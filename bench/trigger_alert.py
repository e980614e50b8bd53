"""Trigger -> alert at the center: a simulated body-cam (its own process) reports a holster
draw over the link, the agent (its own process) turns it into an alert event, the center
(its own process) receives it. Baseline in the same run: one bare MQTT publish -> subscribe
on the same broker, the floor any design on MQTT pays.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.center import http, running_center, wait_until
from bench.results import ROOT, write_results
from central.broker import free_port


def newest_alert(api: str, key: str, count: int) -> Any:
    """The newest alert once there are `count` of them, else None."""
    alerts = http("GET", f"{api}/api/v1/alerts?limit=500", key)
    return alerts[0] if len(alerts) >= count else None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def mqtt_floor(broker_url: str, count: int) -> list[float]:
    """ms from publish (QoS 1) to delivery, two plain paho clients."""
    port = int(broker_url.rsplit(":", 1)[1])
    got: dict[int, float] = {}
    arrived = threading.Event()

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        got[int(message.payload)] = time.perf_counter()
        arrived.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-floor-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("bench/floor", qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-floor-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    time.sleep(0.5)
    out = []
    for n in range(count):
        arrived.clear()
        sent = time.perf_counter()
        pub.publish("bench/floor", str(n), qos=1)
        arrived.wait(5)
        out.append(1000 * (got[n] - sent))
        time.sleep(0.05)
    for client in (pub, sub):
        client.loop_stop()
        client.disconnect()
    return out


def summarise(path: str, samples: list[float]) -> dict[str, Any]:
    return {
        "path": path,
        "p50_ms": statistics.median(samples),
        "p99_ms": _pct(samples, 0.99),
        "max_ms": max(samples),
        "samples": samples,
    }


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 50
    with (
        tempfile.TemporaryDirectory(prefix="rtcc-trigger-") as tmp,
        running_center(Path(tmp), relay_workers=1) as center,
    ):
        work, api, env = Path(tmp), center.api, center.env
        quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        link, control = free_port(), free_port()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rtcc",
                    "bodycam-sim",
                    "--listen",
                    f"tcp://127.0.0.1:{link}",
                    "--control",
                    f"127.0.0.1:{control}",
                ],
                cwd=ROOT,
                env=env,
                **quiet,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "rtcc", "agent"],
                cwd=ROOT,
                env={
                    **env,
                    "RTCC_UNIT_ID": "bench-unit",
                    "RTCC_DATA_DIR": str(work / "a"),
                    "RTCC_DEVICE__LINK": f"tcp://127.0.0.1:{link}",
                    "RTCC_EVIDENCE__ENABLED": "false",
                    "RTCC_TRIGGERS": json.dumps(
                        [{"event": "trigger.holster_draw", "actions": ["alert"], "cooldown_s": 0}]
                    ),
                },
                **quiet,
            ),
        ]
        try:
            wait_until(
                lambda: (
                    (u := http("GET", f"{api}/api/v1/units/bench-unit", center.key))["online"]
                    and u["state"]["camera"]["connected"]
                ),
                30,
            )
            latencies = []
            with socket.create_connection(("127.0.0.1", control)) as sock:
                replies = sock.makefile("rb")
                for n in range(count):
                    sent = time.time()
                    sock.sendall(b"trigger holster_draw\n")
                    replies.readline()
                    alert = wait_until(partial(newest_alert, api, center.key, n + 1), 10)
                    latencies.append(1000 * (alert["received"] - sent))
                    time.sleep(0.1)
            floor = mqtt_floor(center.broker_url, count)
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(30)
    rows: list[dict[str, Any]] = [
        summarise("holster draw -> alert at the center", latencies),
        summarise("baseline: bare MQTT publish -> subscribe", floor),
    ]
    print("\nTrigger -> alert (ms, loopback, separate processes)\n")
    print(f"{'path':<44} {'p50':>7} {'p99':>7} {'max':>7}")
    for row in rows:
        p50, p99, worst = row["p50_ms"], row["p99_ms"], row["max_ms"]
        print(f"{row['path']:<44} {p50:>7.1f} {p99:>7.1f} {worst:>7.1f}")
    write_results("trigger_alert", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Status plane: N units x 1 msg/s through Mosquitto into the fleet service.

Measures ingested msgs/s, publish-to-registry latency p50/p99, and the CPU and RSS of the
fleet service; in the same run, a bare paho subscriber (parse the timestamp, nothing else)
is the baseline, so the table shows what validation, dedupe and the registry cost. The
center runs twice: alone, and with one dispatcher console following its live feed (every
unit's summary, every second), which is how a crime center runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.center import bench_key
from bench.results import ROOT, write_results
from central.broker import MosquittoOptions, MosquittoProcess, free_port

EXTRA_ENV = dict(e.split("=", 1) for e in os.environ.get("BENCH_ENV", "").split() if e)


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


def _http(url: str, key: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        return str(r.read().decode())


def _metrics(api: str, key: str) -> tuple[float, dict[float, float]]:
    """(state messages ingested, cumulative latency histogram {le: count})."""
    messages, buckets = 0.0, {}
    for line in _http(api + "/metrics", key).splitlines():
        if line.startswith('rtcc_mqtt_messages_total{kind="state"}'):
            messages = float(line.split()[-1])
        elif line.startswith("rtcc_ingest_latency_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.split()[-1])
    return messages, buckets


def _quantile(buckets: dict[float, float], q: float) -> float:
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


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _generator(broker: MosquittoProcess, units: int, seconds: float, prefix: str) -> Any:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.mqtt_load",
            "127.0.0.1",
            str(broker.port),
            str(units),
            str(seconds),
            prefix,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )


class ConsoleFollower(threading.Thread):
    """A dispatcher console's live feed, read and counted, from a thread of the benchmark."""

    def __init__(self, api: str, key: str) -> None:
        super().__init__(daemon=True)
        self.request = urllib.request.Request(
            api + "/api/v1/live", headers={"Authorization": f"Bearer {key}"}
        )
        self.stop = threading.Event()
        self.received = 0
        self.unit_events = 0

    def run(self) -> None:
        with urllib.request.urlopen(self.request, timeout=5) as feed:
            while not self.stop.is_set():
                chunk = feed.read1(1 << 16)
                if not chunk:
                    return
                self.received += len(chunk)
                self.unit_events += chunk.count(b"event: units\n")


def _wait_until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("service did not come up")


def run_ours(
    broker: MosquittoProcess,
    units: int,
    warmup: float,
    seconds: float,
    workdir: Path,
    console: bool = False,
) -> Row:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    data_dir = workdir / f"central-{units}{'-console' if console else ''}"
    data_dir.mkdir(parents=True, exist_ok=True)
    key = bench_key(data_dir)
    central = subprocess.Popen(
        [sys.executable, "-m", "rtcc", "central"],
        cwd=ROOT,
        env={
            **os.environ,
            "RTCC_MQTT_URL": broker.url,
            "RTCC_HTTP__PORT": str(port),
            "RTCC_DATA_DIR": str(data_dir),
            "RTCC_LOG__LEVEL": "warning",
            "RTCC_HTTP__TLS": "false",  # as behind a TLS proxy, comparable with earlier runs
            "RTCC_CENTER_ID": f"bench-{units}{'-console' if console else ''}",
            "RTCC_MQTT__SESSION_EXPIRY_S": "0",
            **EXTRA_ENV,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    follower = ConsoleFollower(api, key) if console else None
    try:
        _wait_until(lambda: json.loads(_http(api + "/healthz"))["mqtt_connected"], 30)
        if follower is not None:
            follower.start()
        generator = _generator(broker, units, warmup + seconds + 2, f"ours{units}")
        procs = {
            name: psutil.Process(pid)
            for name, pid in (
                ("central", central.pid),
                ("broker", broker.pid),
                ("gen", generator.pid),
            )
        }
        time.sleep(warmup)
        m0, h0 = _metrics(api, key)
        c0 = {name: _cpu(p) for name, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        m1, h1 = _metrics(api, key)
        c1 = {name: _cpu(p) for name, p in procs.items()}
        elapsed = time.monotonic() - t0
        rss = procs["central"].memory_info().rss / 2**20
        generator.wait()
        delta = {le: h1[le] - h0.get(le, 0.0) for le in h1}
        cpu = {name: 100 * (c1[name] - c0[name]) / elapsed for name in procs}
        if follower is not None and follower.unit_events == 0:
            raise RuntimeError("the console following the live feed got no unit events")
        return Row(
            "rtcc fleet service" + (" + 1 console" if console else ""),
            units,
            (m1 - m0) / elapsed,
            1000 * _quantile(delta, 0.5),
            1000 * _quantile(delta, 0.99),
            cpu["central"],
            rss,
            cpu["broker"],
            cpu["gen"],
        )
    finally:
        if follower is not None:
            follower.stop.set()
        central.send_signal(signal.SIGTERM)
        central.wait(30)


def run_baseline(broker: MosquittoProcess, units: int, warmup: float, seconds: float) -> Row:
    subscriber = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline_subscriber", "127.0.0.1", str(broker.port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    time.sleep(1.0)
    generator = _generator(broker, units, warmup + seconds + 2, f"base{units}")
    procs = {
        name: psutil.Process(pid)
        for name, pid in (("sub", subscriber.pid), ("broker", broker.pid), ("gen", generator.pid))
    }
    time.sleep(warmup)
    subscriber.send_signal(signal.SIGUSR1)
    c0 = {name: _cpu(p) for name, p in procs.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    c1 = {name: _cpu(p) for name, p in procs.items()}
    elapsed = time.monotonic() - t0
    rss = procs["sub"].memory_info().rss / 2**20
    subscriber.send_signal(signal.SIGTERM)
    out, _ = subscriber.communicate(timeout=60)
    generator.wait()
    latencies = json.loads(out)["latencies"]
    cpu = {name: 100 * (c1[name] - c0[name]) / elapsed for name in procs}
    return Row(
        "bare paho subscriber (baseline)",
        units,
        len(latencies) / elapsed,
        1000 * _percentile(latencies, 0.5),
        1000 * _percentile(latencies, 0.99),
        cpu["sub"],
        rss,
        cpu["broker"],
        cpu["gen"],
    )


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'system':<32} {'units':>6} {'msg/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'CPU %':>6} {'RSS MB':>7} {'broker%':>8} {'gen %':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.system:<32} {r.units:>6} {r.ingested_per_s:>8.0f} {r.p50_ms:>7.2f} "
            f"{r.p99_ms:>7.2f} {r.consumer_cpu_pct:>6.1f} {r.consumer_rss_mb:>7.1f} "
            f"{r.broker_cpu_pct:>8.1f} {r.generator_cpu_pct:>6.1f}"
        )


def ratios(rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for ours in (r for r in rows if r.system.startswith("rtcc")):
        base = next(r for r in rows if r.units == ours.units and r.system.startswith("bare"))
        out.append(
            {
                "system": ours.system,
                "units": ours.units,
                "p99_ratio": ours.p99_ms / base.p99_ms if base.p99_ms else float("nan"),
                "cpu_ratio": ours.consumer_cpu_pct / max(base.consumer_cpu_pct, 0.1),
            }
        )
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.status_plane", description=__doc__)
    parser.add_argument("--units", default="1000,5000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rtcc-bench-") as tmp:
        broker = MosquittoProcess(Path(tmp) / "broker", MosquittoOptions(persistence=False))
        broker.start()
        try:
            for units in (int(u) for u in args.units.split(",")):
                rows.append(run_ours(broker, units, args.warmup, args.seconds, Path(tmp)))
                rows.append(
                    run_ours(broker, units, args.warmup, args.seconds, Path(tmp), console=True)
                )
                rows.append(run_baseline(broker, units, args.warmup, args.seconds))
        finally:
            broker.stop()
    print("\nStatus plane: units x 1 msg/s (QoS 1) -> Mosquitto -> consumer, same run\n")
    print_table(rows)
    for r in ratios(rows):
        print(
            f"  {r['system']}, {r['units']} units: p99 / baseline p99 = {r['p99_ratio']:.2f}, "
            f"CPU rtcc / baseline = {r['cpu_ratio']:.2f}"
        )
    write_results(
        "status_plane",
        {"rows": [asdict(r) for r in rows], "ratios": ratios(rows), "cpus": os.cpu_count()},
    )
    return 0

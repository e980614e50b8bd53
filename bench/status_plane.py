"""Status plane: N units x 1 msg/s through Mosquitto into the fleet service.

Measures ingested msgs/s, publish-to-registry latency p50/p99, and the CPU and RSS of the
fleet service; in the same run, a bare paho subscriber (parse the timestamp, nothing else)
is the baseline, so the table shows what validation, dedupe and the registry cost. The
center runs twice: alone, and with one dispatcher console following its live feed (every
unit's summary, every second), which is how a crime center runs it.

Each of these runs twice too: over plain TCP, and over mutual TLS as enrolled gateways
connect (bench/pki.py: a device CA, a certificate per unit, a broker that lets each unit in
with a role of its own, the center with its own certificate), so that the table and the JSON
give what mutual TLS costs in latency, CPU and memory. Every unit is connected before the
warm-up begins: the window measures the steady state, not the handshakes (whose time is
reported apart, with the time the certificates took to issue).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.center import bench_key
from bench.pki import BenchPki, make_pki
from bench.results import ROOT, write_results
from bench.status_report import (
    COLUMNS,
    MTLS,
    PLAIN,
    Row,
    mtls_ratios,
    percentile,
    print_ratios,
    quantile,
    ratios,
)
from bench.table import print_table
from central.broker import MosquittoOptions, MosquittoProcess, free_port

EXTRA_ENV = dict(e.split("=", 1) for e in os.environ.get("BENCH_ENV", "").split() if e)
MTLS_CENTER = "bench-mtls"
MTLS_PREFIX = "mtls"  # unit ids mtls-00000, ...: the certificates are issued for these


@dataclass(frozen=True)
class Mode:
    """One way to reach the broker: plain TCP, or mutual TLS with the certificates of `pki`."""

    name: str
    broker: MosquittoProcess
    pki: BenchPki | None = None

    def label(self, system: str) -> str:
        return system if self.pki is None else f"{system} ({MTLS})"

    def prefix(self, kind: str, units: int) -> str:
        return f"{kind}{units}" if self.pki is None else MTLS_PREFIX

    def center_id(self, units: int, console: bool) -> str:
        if self.pki is not None:
            return self.pki.tls.center_id
        return f"bench-{units}{'-console' if console else ''}"

    def center_env(self) -> dict[str, str]:
        return self.pki.center_env() if self.pki is not None else {}

    def generator_args(self) -> list[str]:
        if self.pki is None:
            return []
        return ["--ca", str(self.pki.ca_file), "--certs", str(self.pki.units_dir)]

    def subscriber(self) -> list[str]:
        address = ["127.0.0.1", str(self.broker.port)]
        if self.pki is None:
            return ["-m", "bench.baseline_subscriber", *address]
        center = self.pki.center
        files = [str(center.ca_file), str(center.cert_file), str(center.key_file)]
        return ["-m", "bench.baseline_subscriber", *address, *files]


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


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _generator(
    mode: Mode, units: int, seconds: float, kind: str
) -> tuple[subprocess.Popen[bytes], float]:
    """The load generator, back once every unit is connected: (process, seconds that took)."""
    generator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.mqtt_load",
            "127.0.0.1",
            str(mode.broker.port),
            str(units),
            str(seconds),
            mode.prefix(kind, units),
            *mode.generator_args(),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert generator.stdout is not None
    line = generator.stdout.readline()
    if not line:
        generator.wait()
        raise RuntimeError(f"the load generator exited ({generator.returncode}) connecting")
    return generator, float(json.loads(line)["connect_s"])


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
        self.error: Exception | None = None

    def run(self) -> None:
        # The feed is quiet while no unit changes (after the load, before the center stops):
        # a read may wait that long without the feed being broken.
        try:
            with urllib.request.urlopen(self.request, timeout=30) as feed:
                while not self.stop.is_set():
                    chunk = feed.read1(1 << 16)
                    if not chunk:
                        return
                    self.received += len(chunk)
                    self.unit_events += chunk.count(b"event: units\n")
        except (OSError, http.client.HTTPException) as exc:
            # Also how the feed ends when the center stops at the end of a run.
            self.error = exc


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


class Window:
    """A measured window over the consumer of the units' states, the mode's broker and the
    generator: the CPU each used from its opening to `close()`, and at its close the memory
    of the consumer and the broker."""

    def __init__(self, mode: Mode, consumer: int, generator: int) -> None:
        self.mode = mode
        pids = {"consumer": consumer, "broker": mode.broker.pid, "gen": generator}
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.cpu0 = {name: _cpu(p) for name, p in self.procs.items()}
        self.t0 = time.monotonic()
        self.elapsed = 0.0
        self.cpu: dict[str, float] = {}
        self.rss_mb: dict[str, float] = {}

    def close(self) -> None:
        """CPU % of each process over the window; RSS of the consumer and the broker."""
        cpu1 = {name: _cpu(p) for name, p in self.procs.items()}
        self.elapsed = time.monotonic() - self.t0
        self.cpu = {name: 100 * (cpu1[name] - self.cpu0[name]) / self.elapsed for name in cpu1}
        self.rss_mb = {name: _rss_mb(self.procs[name]) for name in ("consumer", "broker")}

    def row(
        self,
        system: str,
        units: int,
        received: float,
        latency_s: tuple[float, float],
        connect_s: float,
    ) -> Row:
        """The table's row: `received` states over the window, arriving after `latency_s`
        (p50, p99); `connect_s` for every unit to connect."""
        p50_s, p99_s = latency_s
        return Row(
            self.mode.label(system),
            units,
            received / self.elapsed,
            1000 * p50_s,
            1000 * p99_s,
            self.cpu["consumer"],
            self.rss_mb["consumer"],
            self.cpu["broker"],
            self.cpu["gen"],
            self.mode.name,
            self.rss_mb["broker"],
            connect_s,
            os.getloadavg()[0],
        )


def _rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / 2**20


def _start_center(mode: Mode, units: int, workdir: Path, console: bool) -> tuple[Any, str, str]:
    """`rtcc central` on the mode's broker: (process, API URL, API key)."""
    port = free_port()
    data_dir = workdir / f"central-{mode.name}-{units}{'-console' if console else ''}"
    data_dir.mkdir(parents=True, exist_ok=True)
    key = bench_key(data_dir)
    central = subprocess.Popen(
        [sys.executable, "-m", "rtcc", "central"],
        cwd=ROOT,
        env={
            **os.environ,
            "RTCC_MQTT_URL": mode.broker.url,
            "RTCC_HTTP__PORT": str(port),
            "RTCC_DATA_DIR": str(data_dir),
            "RTCC_LOG__LEVEL": "warning",
            "RTCC_HTTP__TLS": "false",  # as behind a TLS proxy, comparable with earlier runs
            "RTCC_CENTER_ID": mode.center_id(units, console),
            "RTCC_MQTT__SESSION_EXPIRY_S": "0",
            **mode.center_env(),
            **EXTRA_ENV,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return central, f"http://127.0.0.1:{port}", key


def run_ours(
    mode: Mode,
    units: int,
    warmup: float,
    seconds: float,
    workdir: Path,
    console: bool = False,
) -> Row:
    central, api, key = _start_center(mode, units, workdir, console)
    follower = ConsoleFollower(api, key) if console else None
    try:
        _wait_until(lambda: json.loads(_http(api + "/healthz"))["mqtt_connected"], 30)
        generator, connect_s = _generator(mode, units, warmup + seconds + 2, "ours")
        # The console joins a connected fleet: thousands of TLS handshakes take longer than
        # a feed with no unit changes may stay quiet; the warm-up covers its catching up.
        if follower is not None:
            follower.start()
        time.sleep(warmup)
        m0, h0 = _metrics(api, key)
        window = Window(mode, central.pid, generator.pid)
        time.sleep(seconds)
        m1, h1 = _metrics(api, key)
        window.close()
        generator.communicate(timeout=120)
        delta = {le: h1[le] - h0.get(le, 0.0) for le in h1}
        if m1 <= m0:
            raise RuntimeError(f"the center ingested nothing from the units ({mode.name})")
        if follower is not None and follower.unit_events == 0:
            raise RuntimeError(f"the console's live feed got no unit events ({follower.error})")
        system = "rtcc fleet service" + (" + 1 console" if console else "")
        latency_s = (quantile(delta, 0.5), quantile(delta, 0.99))
        return window.row(system, units, m1 - m0, latency_s, connect_s)
    finally:
        if follower is not None:
            follower.stop.set()
        central.send_signal(signal.SIGTERM)
        central.wait(30)


def run_baseline(mode: Mode, units: int, warmup: float, seconds: float) -> Row:
    subscriber = subprocess.Popen(
        [sys.executable, *mode.subscriber()], cwd=ROOT, stdout=subprocess.PIPE
    )
    time.sleep(1.0)
    generator, connect_s = _generator(mode, units, warmup + seconds + 2, "base")
    time.sleep(warmup)
    subscriber.send_signal(signal.SIGUSR1)
    window = Window(mode, subscriber.pid, generator.pid)
    time.sleep(seconds)
    window.close()
    subscriber.send_signal(signal.SIGTERM)
    out, _ = subscriber.communicate(timeout=60)
    generator.communicate(timeout=120)
    latencies = json.loads(out)["latencies"]
    if not latencies:
        raise RuntimeError(f"the baseline subscriber received nothing ({mode.name})")
    latency_s = (percentile(latencies, 0.5), percentile(latencies, 0.99))
    system = "bare paho subscriber (baseline)"
    return window.row(system, units, len(latencies), latency_s, connect_s)


def start_modes(names: list[str], work: Path, units: int, stack: ExitStack) -> list[Mode]:
    """A broker for each mode; for mutual TLS, first the certificates of `units` units."""
    modes = []
    for name in names:
        if name == PLAIN:
            broker = MosquittoProcess(work / "broker", MosquittoOptions(persistence=False))
            pki = None
        else:
            unit_ids = [f"{MTLS_PREFIX}-{n:05d}" for n in range(units)]
            pki = make_pki(work / "pki", MTLS_CENTER, unit_ids)
            print(f"mTLS: {units} unit certificates (key, CSR, signature) in {pki.issue_s:.1f} s")
            options = MosquittoOptions(persistence=False, tls=pki.tls)
            broker = MosquittoProcess(work / "broker-mtls", options)
        broker.start()
        stack.callback(broker.stop)
        modes.append(Mode(name, broker, pki))
    return modes


def _measure(kind: str, mode: Mode, units: int, args: argparse.Namespace, work: Path) -> Row:
    if kind == "baseline":
        return run_baseline(mode, units, args.warmup, args.seconds)
    return run_ours(mode, units, args.warmup, args.seconds, work, console=kind == "console")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.status_plane", description=__doc__)
    parser.add_argument("--units", default="1000,5000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--modes", default=f"{PLAIN},{MTLS}", help=f"{PLAIN} (TCP), {MTLS}, or both"
    )
    args = parser.parse_args(argv)
    counts = [int(u) for u in args.units.split(",")]
    names = [m.strip() for m in args.modes.split(",")]
    if not names or set(names) - {PLAIN, MTLS}:
        parser.error(f"--modes takes {PLAIN} and/or {MTLS}")
    rows: list[Row] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rtcc-bench-") as tmp, ExitStack() as stack:
        modes = start_modes(names, Path(tmp), max(counts), stack)
        pki = next((m.pki for m in modes if m.pki is not None), None)
        issue = {"units": max(counts), "issue_s": pki.issue_s} if pki is not None else None
        # Each system in both modes one after the other: a machine shared with other work
        # weighs on the two alike. Printed by mode.
        for units in counts:
            for kind in ("fleet", "console", "baseline"):
                rows += [_measure(kind, mode, units, args, Path(tmp)) for mode in modes]
    rows.sort(key=lambda r: (r.units, names.index(r.mode)))
    print("\nStatus plane: units x 1 msg/s (QoS 1) -> Mosquitto -> consumer, same run")
    print("(conn s: every unit connected to the broker, before the warm-up and the window;")
    print(f" load: 1-min load average after the window, ours included; {os.cpu_count()} CPUs)\n")
    print_table(COLUMNS, rows)
    print_ratios(rows)
    write_results(
        "status_plane",
        {
            "rows": [asdict(r) for r in rows],
            "ratios": ratios(rows),
            "mtls_ratios": mtls_ratios(rows),
            "mtls_certificates": issue,
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

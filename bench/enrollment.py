"""Enrollment: from a field tech's `rtcc provision enroll` to the unit online at the center.

The center runs as `rtcc central` with its own supervised Mosquitto (mutual TLS, the
default). For each gateway a one-time code is made, then, timed: `rtcc provision enroll`
(keys made on the gateway, CSR, certificate, files written) and `rtcc agent --config` until
the center lists the unit online over mTLS. The baseline, in the same run, is the same
gateway's agent started again once enrolled: what a reboot costs, so the difference is what
enrollment adds. Both include starting a Python process, as a tech sees it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.center import bench_key, wait_until
from bench.results import ROOT, write_results
from central.broker import free_port
from central.config import CentralSettings
from central.db.schema import open_migrated
from central.people import Operator
from central.provisioning import Provisioning
from runtime.config import load_settings


@dataclass
class Sample:
    unit_id: str
    enroll_s: float  # `rtcc provision enroll` start -> exit
    online_s: float  # `rtcc provision enroll` start -> the unit online at the center
    restart_online_s: float  # baseline: `rtcc agent` start -> online, already enrolled


@dataclass(frozen=True)
class Center:
    api: str
    ca_file: Path
    data_dir: Path
    key: str
    env: dict[str, str]


@contextlib.contextmanager
def running_center(work: Path) -> Iterator[Center]:
    port = free_port()
    data_dir = work / "center"
    data_dir.mkdir(parents=True)
    env = {**os.environ, "RTCC_LOG__LEVEL": "warning"}
    env.pop("RTCC_MQTT_URL", None)
    central_env = {
        **env,
        "RTCC_DATA_DIR": str(data_dir),
        "RTCC_HTTP__PORT": str(port),
        "RTCC_RELAY__WORKERS": "1",
        "RTCC_RELAY__ICE__HOST_ADDRESSES": '["127.0.0.1"]',
    }
    key = bench_key(data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtcc", "central"],
        cwd=ROOT,
        env=central_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    center = Center(f"https://127.0.0.1:{port}", data_dir / "tls" / "ca.pem", data_dir, key, env)
    try:
        wait_until(lambda: _get(center, "/healthz")["mqtt_connected"], timeout=60)
        yield center
    finally:
        proc.terminate()
        proc.wait(30)


def _get(center: Center, path: str) -> dict[str, object]:
    context = ssl.create_default_context(cafile=str(center.ca_file))
    request = urllib.request.Request(
        center.api + path, headers={"Authorization": f"Bearer {center.key}"}
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        found: dict[str, object] = json.load(answer)
        return found


def _online(center: Center, unit: str) -> bool:
    return bool(_get(center, f"/api/v1/units/{unit}")["online"])


def _codes(center: Center, units: list[str]) -> dict[str, str]:
    settings = load_settings(CentralSettings, data_dir=center.data_dir)
    database = open_migrated(settings.database())
    try:
        provisioning = Provisioning(database, center.data_dir, settings.provision)
        return {u: provisioning.create_code(Operator("bench"), u) for u in units}
    finally:
        database.close()


def _agent(center: Center, folder: Path) -> subprocess.Popen[bytes]:
    env = {**center.env, "RTCC_ICE__HOST_ADDRESSES": '["127.0.0.1"]'}
    env["RTCC_EVIDENCE__ENABLED"] = "false"
    env["RTCC_HEALTH__PORT"] = "0"
    return subprocess.Popen(
        [sys.executable, "-m", "rtcc", "agent", "--config", str(folder / "agent.toml")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


def measure(center: Center, unit: str, code: str, work: Path) -> Sample:
    folder = work / unit
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "rtcc", "provision", "enroll", "--center", center.api,
         "--code", code, "--ca-file", str(center.ca_file), "--dir", str(folder)],
        cwd=ROOT, env=center.env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    enrolled = time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(f"enrollment failed: {done.stdout} {done.stderr}")
    online = _run_until_online(center, unit, folder)
    wait_until(lambda: not _online(center, unit), timeout=60)
    restarted = time.monotonic()
    restart_online = _run_until_online(center, unit, folder)
    return Sample(unit, enrolled - started, online - started, restart_online - restarted)


def _run_until_online(center: Center, unit: str, folder: Path) -> float:
    """Starts the gateway's agent; when the center listed it online (then stops it)."""
    agent = _agent(center, folder)
    try:
        wait_until(lambda: _online(center, unit), timeout=60)
        return time.monotonic()
    finally:
        _stop(agent)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[Sample]) -> dict[str, float]:
    online = [s.online_s for s in samples]
    restart = [s.restart_online_s for s in samples]
    enroll = [s.enroll_s for s in samples]
    return {
        "gateways": len(samples),
        "enroll_command_p50_s": statistics.median(enroll),
        "enroll_to_online_p50_s": statistics.median(online),
        "enroll_to_online_p90_s": _p(online, 0.9),
        "restart_to_online_p50_s": statistics.median(restart),
        "ratio_enroll_vs_restart_p50": statistics.median(online) / statistics.median(restart),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.enrollment")
    parser.add_argument("--gateways", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rtcc-bench-enroll-") as tmp:
        work = Path(tmp)
        with running_center(work) as center:
            units = [f"E-{n:03d}" for n in range(args.gateways)]
            codes = _codes(center, units)
            samples = [measure(center, unit, codes[unit], work) for unit in units]
    result = summary(samples)
    print("\nEnrollment (rtcc provision enroll -> unit online over mTLS), seconds")
    print(f"{'':34} {'p50':>7} {'p90':>7}")
    enroll_p90 = _p([s.enroll_s for s in samples], 0.9)
    print(f"{'enroll command':34} {result['enroll_command_p50_s']:7.2f} {enroll_p90:7.2f}")
    print(
        f"{'enroll start -> online':34} {result['enroll_to_online_p50_s']:7.2f} "
        f"{result['enroll_to_online_p90_s']:7.2f}"
    )
    restart_p90 = _p([s.restart_online_s for s in samples], 0.9)
    print(
        f"{'baseline: agent restart -> online':34} {result['restart_to_online_p50_s']:7.2f} "
        f"{restart_p90:7.2f}"
    )
    print(
        f"ratio enroll->online / restart->online (p50): {result['ratio_enroll_vs_restart_p50']:.2f}"
    )
    write_results("enrollment", {"summary": result, "samples": [asdict(s) for s in samples]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

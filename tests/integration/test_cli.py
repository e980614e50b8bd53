"""The `rtcc` command as a user runs it: real processes, real ports, real signals."""

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from central.broker import free_port
from tests.helpers import ROOT, kill_if_running


def get(url: str, ca: Path, key: str | None = None) -> Any:
    """JSON from the center, its certificate checked against its own CA `ca`."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    tls = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=2, context=tls) as r:
        return json.load(r)


def demo_key(data_dir: Path) -> str | None:
    """The API key `rtcc demo` made and kept in its logins file, once it is there."""
    try:
        lines = (data_dir / "demo-logins.txt").read_text().splitlines()
    except FileNotFoundError:
        return None
    return next(line.split()[-1] for line in lines if line.startswith("API key"))


def poll(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


@contextlib.contextmanager
def rtcc(*args: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`rtcc ARGS` running, with `env` on top of this environment; killed at the end if it
    still runs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtcc", *args],
        cwd=ROOT,
        env={**os.environ, "RTCC_LOG__FORMAT": "json", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        kill_if_running(proc)


def output_of(proc: subprocess.Popen[bytes]) -> str:
    return proc.stdout.read().decode() if proc.stdout else ""


def assert_gone(processes: list[psutil.Process], timeout: float) -> None:
    """Every one of `processes` has ended within `timeout`."""
    _gone, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, alive


def test_central_restarts_its_broker(tmp_path: Path) -> None:
    port = free_port()
    api, ca = f"https://127.0.0.1:{port}", tmp_path / "tls" / "ca.pem"
    with rtcc(
        "central",
        RTCC_HTTP__PORT=str(port),
        RTCC_DATA_DIR=str(tmp_path),
        RTCC_MQTT__RECONNECT_MAX_S="1",
    ) as proc:
        poll(lambda: get(api + "/healthz", ca)["mqtt_connected"], 20)
        broker = next(p for p in psutil.Process(proc.pid).children() if "mosquitto" in p.name())
        broker.kill()
        poll(
            lambda: any(
                p.pid != broker.pid and "mosquitto" in p.name()
                for p in psutil.Process(proc.pid).children()
            ),
            15,
        )
        poll(lambda: get(api + "/healthz", ca)["mqtt_connected"], 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not psutil.pid_exists(broker.pid) or broker.status() == psutil.STATUS_ZOMBIE
    output = output_of(proc)
    assert "Traceback" not in output and "was destroyed" not in output


def test_demo_runs_units_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    api = f"https://127.0.0.1:{port}"
    ca = tmp_path / "central" / "tls" / "ca.pem"
    with rtcc(
        "demo", "--units", "2", "--http-port", str(port), "--data-dir", str(tmp_path)
    ) as proc:
        key = poll(lambda: demo_key(tmp_path), 40)
        logins = (tmp_path / "demo-logins.txt").read_text()
        assert all(f"demo-{role} " in logins for role in ("admin", "dispatcher", "patrol"))
        units = poll(
            lambda: (
                [u for u in get(api + "/api/v1/units", ca, key) if u["online"] and u["state"]]
                if len(get(api + "/api/v1/units", ca, key)) == 2
                else None
            ),
            40,
        )
        assert {u["unit_id"] for u in units} == {"unit-01", "unit-02"}
        # Each unit enrolled itself and speaks to the broker with its own certificate.
        for unit in ("unit-01", "unit-02"):
            config = (tmp_path / unit / "agent.toml").read_text()
            assert 'mqtt_url = "mqtts://' in config and "cert_file" in config

        def live_streams() -> list[dict[str, Any]] | None:
            live = [s for s in get(api + "/api/v1/streams", ca, key) if s["live"]]
            return live if len(live) == 2 else None

        streams = poll(live_streams, 40)
        assert {s["unit_id"] for s in streams} == {"unit-01", "unit-02"}
        tls = ssl.create_default_context(cafile=str(ca))
        for page in ("/console", "/patrol"):
            with urllib.request.urlopen(api + page, timeout=5, context=tls) as answer:
                assert answer.status == 200 and b"<html" in answer.read().lower()
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert len(descendants) >= 5  # central, its broker, relay worker(s), two agents
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert_gone(descendants, timeout=5)
    output = output_of(proc)
    assert "rtcc demo is running" in output and api in output and "stopped." in output
    assert f"{api}/view/unit-01-" in output
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert "Traceback" not in logs and "was destroyed" not in logs
    assert '"reason": "shutdown"' in logs


def test_children_die_with_a_killed_center(tmp_path: Path) -> None:
    port = free_port()
    with rtcc(
        "central", RTCC_HTTP__PORT=str(port), RTCC_DATA_DIR=str(tmp_path), RTCC_RELAY__WORKERS="2"
    ) as proc:
        ca = tmp_path / "tls" / "ca.pem"
        poll(lambda: get(f"https://127.0.0.1:{port}/healthz", ca)["mqtt_connected"], 20)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3  # its broker and two relay workers
        proc.kill()
        proc.wait()
        assert_gone(children, timeout=10)

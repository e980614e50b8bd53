"""The agent as a systemd service: the shipped unit file passes `systemd-analyze verify`, and a
real `rtcc agent` process tells its notify socket READY=1, then feeds the watchdog while its
loops complete their rounds and stops feeding it while one is wedged."""

import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, assert_unit_file_verifies, run_rtcc
from tests.integration.agent_process import agent_process

UNIT_FILE = ROOT / "agent" / "systemd" / "rtcc-agent.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_shipped_unit_file_verifies(tmp_path: Path) -> None:
    # The unit names where a gateway installs rtcc; verify checks that it is executable, so
    # point it at this environment's rtcc.
    text = UNIT_FILE.read_text().replace(
        "/opt/rtcc/bin/rtcc", str(Path(sys.executable).parent / "rtcc")
    )
    unit = tmp_path / "rtcc-agent.service"
    unit.write_text(text)
    assert_unit_file_verifies(unit)
    for line in (
        "Type=notify",
        "Restart=always",
        "WatchdogSec=30",
        "User=rtcc-agent",
        "StateDirectory=rtcc-agent",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ):
        assert line in text.splitlines()


class NotifySocket:
    """A datagram socket standing in for systemd's: every message with when it came."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def since(self, start: float, text: str) -> int:
        with self._lock:
            return sum(1 for at, m in self.messages if at >= start and text in m.split("\n"))

    def wait(self, text: str, since: float, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.since(since, text) < count:
            assert time.monotonic() < deadline, f"{text} x{count} not within {timeout}s"
            time.sleep(0.05)

    def close(self) -> None:
        self._closed = True
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def test_agent_notifies_ready_and_feeds_the_watchdog_only_while_healthy(
    tmp_path: Path, broker_url: str, notify: NotifySocket, unique: str
) -> None:
    data_dir = tmp_path / "agent"
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify.path),
        # WatchdogSec=0.6: a WATCHDOG=1 every 0.2 s while healthy.
        "WATCHDOG_USEC": "600000",
        "RTCC_LOG__FORMAT": "json",
        "RTCC_UNIT_ID": f"SVC-{unique[:8]}",
        "RTCC_MQTT_URL": broker_url,
        "RTCC_DATA_DIR": str(data_dir),
        "RTCC_POLL_INTERVAL_S": "0.2",
        # Events all the time, so that every round of the device loop writes the database.
        "RTCC_SIM__EVENT_INTERVAL_S": "0.05",
        "RTCC_EVIDENCE__ENABLED": "false",
        "RTCC_HEALTH__PORT": "0",
        "RTCC_HEALTH__STALL_AFTER_S": "2",
    }
    env.pop("WATCHDOG_PID", None)
    start = time.monotonic()
    with agent_process(env) as agent:
        notify.wait("READY=1", start)
        ready_at = next(at for at, m in notify.messages if "READY=1" in m)
        assert notify.since(start, "WATCHDOG=1") == notify.since(ready_at, "WATCHDOG=1")
        notify.wait("WATCHDOG=1", ready_at, count=5)
        url = agent.health_url()
        assert url is not None
        with urllib.request.urlopen(url, timeout=10) as answer:
            metrics = answer.read().decode()
        assert "rtcc_agent_healthy 1" in metrics
        assert 'rtcc_agent_task_restarts_total{task="device"} 0' in metrics

        # `rtcc doctor` beside the running service reads its view through the endpoint.
        doctor_env = {k: v for k, v in env.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        doctor_env["RTCC_HEALTH__PORT"] = url.rsplit(":", 1)[1].split("/")[0]
        done = run_rtcc("doctor", "--json", env=doctor_env)
        report = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
        assert done.returncode == 0, report
        assert report["agent"]["status"] == "ok", report["agent"]
        assert report["agent"]["facts"] == {"link_mqtt": 1.0}
        assert report["broker"]["status"] == "ok"

        # Wedge the device loop for real: another process holds the agent's database, so
        # each round blocks on its write (the event loop with it) and then fails.
        holder = sqlite3.connect(data_dir / "agent.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        wedged = time.monotonic()
        # Give the stall time to show (2 s) plus one feeding period, then nothing may come.
        time.sleep(3.0)
        quiet_from = time.monotonic()
        # Past sqlite's 10 s busy timeout too: the round then fails and is restarted, and
        # the restarted loop blocks again.
        time.sleep(9.0)
        assert notify.since(quiet_from, "WATCHDOG=1") == 0
        # At most what the stall allowance lets through.
        assert notify.since(wedged, "WATCHDOG=1") <= 15
        holder.execute("ROLLBACK")
        holder.close()

        # Released: the loop completes its rounds again and the watchdog is fed again.
        released = time.monotonic()
        notify.wait("WATCHDOG=1", released, count=3, timeout=30)
        with urllib.request.urlopen(url, timeout=10) as answer:
            metrics = answer.read().decode()
        assert "rtcc_agent_healthy 1" in metrics
        restarts = [m for m in metrics.splitlines() if m.startswith("rtcc_agent_task_restarts")]
        # Whichever of the loops writing the database gave up first was restarted.
        assert any(not m.endswith(" 0") for m in restarts), restarts

        stopping = time.monotonic()
        agent.process.send_signal(signal.SIGTERM)
        assert agent.process.wait(timeout=30) == 0
        assert notify.since(stopping, "STOPPING=1") == 1

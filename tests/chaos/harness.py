"""The whole system in the fault lab, as it is installed: `rtcc central` (its Mosquitto with
mutual TLS, relay worker) and a re-joining WHEP viewer in the core namespace, `rtcc agent`
with a simulated body-cam in the vehicle namespace, enrolled with a one-time code and run
from the enrollment's agent.toml; and what a scenario measures of it, read at the broker
as the center's monitor "lab"."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import signal
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agent.enroll_files import EnrollFiles
from bench.center import bench_key
from protocol import Topic, decode
from runtime.config import TlsFiles
from tests.helpers import wait_until
from tests.lab.lab import FaultLab
from tests.lab.watch import Arrival, Feed, MqttWatch

API_PORT = 8080
BROKER_PORT = 1883
UNIT = "unit-lab-1"
MONITOR = "lab"
CODE = re.compile(r"[A-Z2-9]{4}(?:-[A-Z2-9]{4}){3}")
KEEPALIVE_S = 8
STARTUP_S = 40.0
FREEZE_S = 0.5


@dataclass
class Site:
    """The center and the unit, with their logs under `folder`."""

    lab: FaultLab
    folder: Path
    center: subprocess.Popen[str] | None = None
    agent: subprocess.Popen[str] | None = None
    started: list[subprocess.Popen[str]] = field(default_factory=list)
    key: str | None = None  # an API key with every scope, made before the center's first start
    monitor: MqttWatch | None = None  # one connection to the running center's broker

    @property
    def api(self) -> str:
        return f"https://{self.lab.core_address}:{API_PORT}"

    @property
    def ca_file(self) -> Path:
        """The CA the center made at its first start (its certificate is checked against it)."""
        return self.folder / "center" / "tls" / "ca.pem"

    @property
    def monitor_folder(self) -> Path:
        return self.folder / "monitor"

    @property
    def monitor_files(self) -> TlsFiles:
        """The lab monitor's certificate, issued by `rtcc provision monitor` at the center's
        first start, and the device CA the broker's is checked against."""
        folder = self.monitor_folder
        return TlsFiles(
            ca_file=folder / "device-ca.pem",
            cert_file=folder / f"monitor-{MONITOR}.pem",
            key_file=folder / f"monitor-{MONITOR}.key",
        )

    # ---- processes ----------------------------------------------------------------------

    def start_center(self) -> None:
        if self.key is None:
            (self.folder / "center").mkdir(parents=True, exist_ok=True)
            self.key = bench_key(self.folder / "center")
        self.center = self._spawn("core", "center", ["-m", "rtcc", "central"], self._center_env())
        wait_until(self._healthy, STARTUP_S, "the center answers")
        if not (self.monitor_folder / f"monitor-{MONITOR}.key").exists():
            self.center_command("provision", "monitor", MONITOR, "--out", str(self.monitor_folder))

    def _center_env(self) -> dict[str, str]:
        """The center's settings; its broker (mutual TLS, the default) is named by its
        listener address, which its certificate therefore carries."""
        return {
            "RTCC_CENTER_ID": "lab-center",
            "RTCC_DATA_DIR": str(self.folder / "center"),
            "RTCC_HTTP__HOST": self.lab.core_address,
            "RTCC_HTTP__PORT": str(API_PORT),
            "RTCC_BROKER__HOST": self.lab.core_address,
            "RTCC_BROKER__PORT": str(BROKER_PORT),
            "RTCC_BROKER__MONITORS": json.dumps([MONITOR]),
            "RTCC_RELAY__WORKERS": "1",
            "RTCC_RELAY__ICE__HOST_ADDRESSES": json.dumps([self.lab.core_address]),
            "RTCC_LOG__FORMAT": "json",
        }

    def center_command(self, *args: str) -> str:
        """`rtcc ARGS` at the center (its settings, the core namespace): what it printed."""
        return self._command("core", args, self._center_env())

    def stop_center(self) -> None:
        assert self.center is not None
        if self.monitor is not None:
            self.monitor.close()  # its broker goes with the center
            self.monitor = None
        self.center.send_signal(signal.SIGTERM)
        self.center.wait(30)

    def enroll(self) -> None:
        """The unit enrolls as a tech enrolls a gateway: a one-time code made at the center,
        `rtcc provision enroll` on the gateway (its keys made there, over the link)."""
        made = self.center_command("provision", "create-code", "--unit", UNIT)
        found = CODE.search(made)
        assert found is not None, made
        enroll = [
            *("provision", "enroll", "--center", self.api, "--code", found.group()),
            *("--ca-file", str(self.ca_file), "--dir", str(self.folder / "agent")),
        ]
        self._command("vehicle", enroll, {})

    def start_agent(self) -> None:
        """`rtcc agent` from the enrollment's agent.toml (enrolled once per site), with the
        lab's own settings over it."""
        files = EnrollFiles(self.folder / "agent")
        if not files.config.exists():
            self.enroll()
        env = {
            "RTCC_MQTT__KEEPALIVE_S": str(KEEPALIVE_S),
            "RTCC_POLL_INTERVAL_S": "0.5",
            "RTCC_SIM__EVENT_INTERVAL_S": "1",
            "RTCC_EVIDENCE__ENABLED": "false",
            "RTCC_VIDEO__CODEC": "vp8",
            "RTCC_VIDEO__WIDTH": "320",
            "RTCC_VIDEO__HEIGHT": "240",
            "RTCC_VIDEO__BITRATE": "300000",
            "RTCC_LOG__FORMAT": "json",
        }
        args = ["-m", "rtcc", "agent", "--config", str(files.config)]
        self.agent = self._spawn("vehicle", "agent", args, env)

    def kill_agent(self) -> None:
        assert self.agent is not None
        self.agent.kill()
        self.agent.wait(10)

    def relay_worker_pid(self) -> int:
        assert self.center is not None
        found = subprocess.run(
            ["pgrep", "-P", str(self.center.pid), "-f", "relay-worker"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert len(found) == 1, found
        return int(found[0])

    def _spawn(
        self, where: Any, name: str, args: list[str], env: dict[str, str]
    ) -> subprocess.Popen[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / f"{name}.log").open("a")
        proc = self.lab.spawn_python(where, *args, env=env, stdout=log, stderr=log)
        self.started.append(proc)
        return proc

    def _command(self, where: Any, args: Sequence[str], env: dict[str, str]) -> str:
        """`rtcc ARGS` in a namespace, run to its end (exit 0): what it printed."""
        proc = self.lab.spawn_python(
            where, "-m", "rtcc", *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = proc.communicate(timeout=STARTUP_S)
        assert proc.returncode == 0, f"rtcc {' '.join(args[:2])}: {err}"
        return out

    # ---- the API, from inside the core namespace ------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        def call() -> httpx.Response:
            headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
            try:
                tls = ssl.create_default_context(cafile=str(self.ca_file))
            except FileNotFoundError:
                raise httpx.ConnectError("the center has not made its CA yet") from None
            timeout = kwargs.pop("timeout", 15.0)
            with httpx.Client(timeout=timeout, headers=headers, verify=tls) as http:
                return http.request(method, self.api + path, **kwargs)

        return self.lab.call("core", call)

    def _healthy(self) -> bool:
        try:
            return self.request("GET", "/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def unit_online(self) -> bool:
        try:
            answer = self.request("GET", f"/api/v1/units/{UNIT}", timeout=1.0)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json()["online"] is True

    def remote_start(self) -> dict[str, Any]:
        wait_until(self.unit_online, STARTUP_S, "the unit is online")
        answer = self.request("POST", f"/api/v1/units/{UNIT}/stream", json={"reason": "lab"})
        assert answer.status_code == 200, answer.text
        grant: dict[str, Any] = answer.json()
        return grant

    def streams(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.request("GET", "/api/v1/streams").json()
        return found

    def log_events(self, name: str, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of process `name` whose event is `event`."""
        lines = (self.folder / f"{name}.log").read_text(errors="replace").splitlines()
        found = []
        for line in lines:
            if f'"{event}"' in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def broker_watch(self, topic_filter: str) -> Feed:
        """The unit's reports under `topic_filter`, read at the broker as the lab monitor."""
        if self.monitor is None:
            address = self.lab.core_address
            monitor = MqttWatch(self.lab, "core", address, BROKER_PORT, self.monitor_files)
            self.monitor = monitor.start()
            self.lab.on_close(monitor.close)
        return self.monitor.feed(topic_filter)


@dataclass
class ViewerRun:
    """`bench.media_peers view --rejoin` in the core namespace, for `seconds`."""

    proc: subprocess.Popen[str]
    started: float

    @classmethod
    def start(cls, site: Site, grant: dict[str, Any], seconds: float) -> ViewerRun:
        proc = site.lab.spawn_python(
            "core",
            "-m",
            "bench.media_peers",
            "view",
            grant["whep_url"],
            grant["token"],
            "--codec",
            "vp8",
            "--seconds",
            str(seconds),
            "--warmup",
            "1",
            "--ice-host",
            site.lab.core_address,
            "--ca-file",
            str(site.ca_file),
            "--rejoin",
            stdout=subprocess.PIPE,
            env={"RTCC_LOG__LEVEL": "warning"},
        )
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["ready"]
        return cls(proc, time.time())

    def result(self) -> ViewerResult:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the viewer ended without a result"
        return ViewerResult(json.loads(line), self.started)


@dataclass
class ViewerResult:
    raw: dict[str, Any]
    started: float

    @property
    def decoded(self) -> list[float]:
        """Wall-clock times of decoded frames."""
        return [self.started + t for t in self.raw["decoded_at"]]

    @property
    def joins(self) -> int:
        return int(self.raw.get("joins", 0))

    def back_after(self, t: float, fault: float | None = None) -> float:
        """Seconds from `t` (the fault, or when the network or process came back) until
        video decodes again: to the first frame after the first freeze (> 0.5 s without a
        frame) from `t` on, or to the first frame after `t` if the video never froze.
        Video must have flowed just before the fault (at `t` unless given)."""
        times = self.decoded
        start = t if fault is None else fault
        assert any(start - 2.0 <= d <= start for d in times), "no video before the fault"
        previous = max((d for d in times if d <= t), default=t)
        for d in (d for d in times if d > t):
            if d - previous > FREEZE_S:
                return d - t
            previous = d
            if d - t > FREEZE_S:
                break  # frames kept coming: no freeze
        after = [d for d in times if d > t]
        assert after, "no video after the fault"
        return after[0] - t

    def fps(self, start: float, end: float) -> float:
        return sum(start <= d < end for d in self.decoded) / (end - start)

    def longest_gap(self, start: float, end: float) -> float:
        times = [start, *(d for d in self.decoded if start <= d < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


def events_exactly_once(arrivals: list[Arrival]) -> tuple[int, int, int]:
    """(events, lost, duplicated) among a unit's simulated events seen at the broker: the
    simulator numbers them (`n`); a message repeated under the same id is the broker's
    at-least-once redelivery (the center drops it), the same `n` under two ids a duplicate."""
    ids_by_n: dict[int, set[str]] = {}
    for arrival in arrivals:
        envelope = decode(arrival.topic, arrival.payload).envelope
        n = envelope.body.data.get("n")
        if envelope.body.data.get("source") == "simulator" and isinstance(n, int):
            ids_by_n.setdefault(n, set()).add(str(envelope.id))
    if not ids_by_n:
        return 0, 0, 0
    # The watch subscribes after the unit started: count from the first event it saw.
    expected = max(ids_by_n) - min(ids_by_n) + 1
    lost = expected - len(ids_by_n)
    duplicated = sum(len(ids) - 1 for ids in ids_by_n.values())
    return expected, lost, duplicated


def event_filter() -> str:
    return str(Topic.event(UNIT, "x")).rsplit("/", 1)[0] + "/+"


def outbox_rows(site: Site) -> int:
    path = site.folder / "agent" / "agent.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def collect(watch: Feed, quiet_s: float = 1.0) -> list[Arrival]:
    """Every message the feed has received, until it has been quiet for `quiet_s`."""
    got: list[Arrival] = []

    def keep(arrival: Arrival) -> bool:
        got.append(arrival)
        return False

    with contextlib.suppress(AssertionError):
        watch.next(keep, quiet_s)
    return got

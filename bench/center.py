"""A whole center for benchmarks: a Mosquitto and `rtcc central` as child processes on
loopback, and the small waits and HTTP calls the benchmarks make against it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.results import ROOT
from central.access.policy import Scope
from central.broker import MosquittoProcess, free_port
from central.client_keys import add_client
from central.db.engine import default_url
from central.db.schema import open_migrated
from central.people import Operator

LOOPBACK = '["127.0.0.1"]'
T = TypeVar("T")


@dataclass(frozen=True)
class CenterProcess:
    api: str
    broker_url: str
    env: dict[str, str]  # what every rtcc child of the benchmark starts from
    key: str  # an API key with every scope


def bench_key(data_dir: Path) -> str:
    """An API key with every scope, made in the center's database before it starts (what
    `rtcc clients add` does)."""
    database = open_migrated(default_url(data_dir))
    try:
        scopes = [scope.value for scope in Scope]
        return add_client(database, Operator("bench"), "bench", scopes)
    finally:
        database.close()


@contextlib.contextmanager
def running_center(work: Path, relay_workers: int | None = None) -> Iterator[CenterProcess]:
    broker = MosquittoProcess(work / "broker")
    broker.start()
    port = free_port()
    env = {**os.environ, "RTCC_LOG__LEVEL": "warning", "RTCC_MQTT_URL": broker.url}
    central_env = {
        **env,
        "RTCC_HTTP__PORT": str(port),
        "RTCC_DATA_DIR": str(work / "center"),
        "RTCC_RELAY__ICE__HOST_ADDRESSES": LOOPBACK,
        # Plain HTTP, as behind a TLS proxy: the figures stay comparable with earlier runs.
        "RTCC_HTTP__TLS": "false",
    }
    if relay_workers is not None:
        central_env["RTCC_RELAY__WORKERS"] = str(relay_workers)
    (work / "center").mkdir(parents=True, exist_ok=True)
    key = bench_key(work / "center")
    central = subprocess.Popen(
        [sys.executable, "-m", "rtcc", "central"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=central_env,
    )
    try:
        yield CenterProcess(f"http://127.0.0.1:{port}", broker.url, env, key)
    finally:
        central.terminate()
        central.wait(30)
        broker.stop()


def http(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.load(r)


def wait_until(check: Callable[[], T], timeout: float) -> T:
    """`check()`'s first truthy value; connection errors count as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, KeyError, ValueError):
            if value := check():
                return value
        time.sleep(0.05)
    raise TimeoutError("condition not met")


def unit_online(api: str, unit: str, key: str) -> bool:
    return bool(http("GET", f"{api}/api/v1/units/{unit}", key)["online"])

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
from central.broker import MosquittoProcess, free_port

LOOPBACK = '["127.0.0.1"]'
T = TypeVar("T")


@dataclass(frozen=True)
class CenterProcess:
    api: str
    broker_url: str
    env: dict[str, str]  # what every rtcc child of the benchmark starts from


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
    }
    if relay_workers is not None:
        central_env["RTCC_RELAY__WORKERS"] = str(relay_workers)
    central = subprocess.Popen(
        [sys.executable, "-m", "rtcc", "central"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=central_env,
    )
    try:
        yield CenterProcess(f"http://127.0.0.1:{port}", broker.url, env)
    finally:
        central.terminate()
        central.wait(30)
        broker.stop()


def http(method: str, url: str) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as r:
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


def unit_online(api: str, unit: str) -> bool:
    return bool(http("GET", f"{api}/api/v1/units/{unit}")["online"])

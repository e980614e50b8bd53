"""Real parts wired up for tests: a center (fleet + API over ASGI), in-process agents, and the
processes the tests start (`rtcc`, python modules, systemd's check of a unit file)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from agent.config import AgentSettings
from agent.runner import vehicle_from
from agent.service import Agent
from central.access.policy import Scope
from central.api import create_app
from central.client_keys import add_client
from central.config import CentralSettings
from central.db.engine import Database, default_url
from central.db.schema import open_migrated
from central.fleet import FleetService
from central.gate import Gate
from central.metrics import Metrics
from central.people import Operator
from runtime.config import load_settings
from runtime.mqtt import MqttLink

FAST_MQTT = {"keepalive_s": 4, "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0}


class Deadline:
    """When a wait gives up: `timeout` s from now, naming what it waited for."""

    def __init__(self, timeout: float, what: str) -> None:
        self.at = time.monotonic() + timeout
        self.timeout = timeout
        self.what = what

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise AssertionError(f"{self.what}: not within {self.timeout}s")


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """`predicate()`'s first truthy value, tried every `interval` s."""
    deadline = Deadline(timeout, "condition not met")
    while not (value := predicate()):
        deadline.check()
        await asyncio.sleep(interval)
    return value


def wait_until(
    check: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "condition not met",
    interval: float = 0.1,
) -> Any:
    """The same wait with no event loop (the fault lab's tests): `check()`'s first truthy
    value, tried every `interval` s."""
    deadline = Deadline(timeout, what)
    while not (value := check()):
        deadline.check()
        time.sleep(interval)
    return value


def agent_settings(unit_id: str, broker_url: str, data_dir: Path, **extra: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "unit_id": unit_id,
        "mqtt_url": broker_url,
        "data_dir": data_dir,
        "mqtt": FAST_MQTT,
        "sim": {"event_interval_s": 0},
        "poll_interval_s": 0.2,
        "evidence": {"enabled": False},
    }
    values.update(extra)
    return load_settings(AgentSettings, **values)


@contextlib.asynccontextmanager
async def running_agent(
    unit_id: str, broker_url: str, data_dir: Path, **extra: Any
) -> AsyncIterator[Agent]:
    settings = agent_settings(unit_id, broker_url, data_dir, **extra)
    agent = Agent(settings, vehicle_from(settings))
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


class CenterHandle:
    def __init__(self, fleet: FleetService, http: httpx.AsyncClient) -> None:
        self.fleet = fleet
        self.http = http

    def online(self, unit_id: str) -> bool:
        record = self.fleet.registry.get(unit_id)
        return record is not None and bool(record.online)

    def metric(self, name: str, labels: str = "") -> float:
        """One sample's value, or with no labels given the sum over all label sets."""
        text = self.fleet.metrics.render().decode()
        total = 0.0
        for line in text.splitlines():
            sample, _, value = line.rpartition(" ")
            metric, _, rest = sample.partition("{")
            if metric == name and (not labels or rest == labels + "}"):
                total += float(value)
        return total


@contextlib.asynccontextmanager
async def running_center(
    broker_url: str, center_id: str, **extra: Any
) -> AsyncIterator[CenterHandle]:
    values: dict[str, Any] = {"center_id": center_id, "mqtt_url": broker_url, "mqtt": FAST_MQTT}
    values.update(extra)
    settings = load_settings(CentralSettings, **values)
    fleet = FleetService(settings, Metrics(), broker_url)
    task = asyncio.create_task(fleet.run(), name="center-fleet")
    with tempfile.TemporaryDirectory(prefix="rtcc-center-") as data_dir:
        database = open_migrated(default_url(Path(data_dir)))
        app = create_app(fleet, Gate(database, settings.access))
        try:
            async with _api_client(app, every_scope_key(database)) as http:
                await asyncio.wait_for(fleet.link.connected.wait(), 10)
                yield CenterHandle(fleet, http)
        finally:
            await fleet.link.close(final=[fleet.goodbye()])
            await stop_link_task(fleet.link, task)
            database.close()


@contextlib.asynccontextmanager
async def online_agent(
    center: CenterHandle, unit_id: str, broker_url: str, data_dir: Path, **extra: Any
) -> AsyncIterator[Agent]:
    """A running agent, yielded once `center` has it online."""
    async with running_agent(unit_id, broker_url, data_dir, **extra) as agent:
        await wait_for(lambda: center.online(unit_id))
        yield agent


def every_scope_key(database: Database) -> str:
    """An API key with every scope (a program's key: the tests act as a CAD integration)."""
    return add_client(database, Operator("tests"), "tests", [scope.value for scope in Scope])


def _api_client(app: FastAPI, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://center",
        headers={"Authorization": f"Bearer {key}"},
    )


async def stop_link_task(link: MqttLink, task: asyncio.Task[None]) -> None:
    await link.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


ROOT = Path(__file__).parents[1]


def spawn_agent(unit_id: str, broker_url: str, data_dir: Path, **env: str) -> Any:
    """`rtcc agent` as a real separate process (so it can be killed with SIGKILL)."""
    full_env = {
        **os.environ,
        "RTCC_UNIT_ID": unit_id,
        "RTCC_MQTT_URL": broker_url,
        "RTCC_DATA_DIR": str(data_dir),
        "RTCC_MQTT__KEEPALIVE_S": "4",
        "RTCC_MQTT__RECONNECT_MAX_S": "1",
        "RTCC_POLL_INTERVAL_S": "0.2",
        "RTCC_SIM__EVENT_INTERVAL_S": "0",
        "RTCC_EVIDENCE__ENABLED": "false",
        "RTCC_LOG__FORMAT": "json",
        **env,
    }
    log = (data_dir.parent / f"{unit_id}-{data_dir.name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "rtcc", "agent"],
        env=full_env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )


async def python_module(module: str, *args: str, stderr: int = asyncio.subprocess.PIPE) -> Process:
    """`python -m MODULE ARGS` from the repository's root, its output a pipe that `json_line`
    reads."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=stderr
    )


async def json_line(process: Process, timeout: float = 30) -> Any:
    """The next line `process` prints, read as JSON."""
    assert process.stdout is not None
    return json.loads(await asyncio.wait_for(process.stdout.readline(), timeout))


def run_rtcc(
    *args: str, env: Mapping[str, str] | None = None, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`rtcc ARGS` as a separate process, run to its end: its exit code and text output.
    `env` is its whole environment (None: this process's)."""
    return subprocess.run(
        [sys.executable, "-m", "rtcc", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_unit_file_verifies(unit_file: Path) -> None:
    """systemd's own check of a unit file finds nothing to say."""
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def kill_if_running(process: subprocess.Popen[Any]) -> None:
    """Kills `process` if it still runs, and reaps it."""
    if process.poll() is None:
        process.kill()
        process.wait()

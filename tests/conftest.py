"""Shared fixtures: one real Mosquitto per test session, and hygiene checks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from central.broker import MosquittoProcess
from runtime.logs import configure_logging

pytest_plugins = ["tests.db_fixtures", "tests.center_cli"]

configure_logging("warning", "console")
# CI machines are slower and busier than a laptop: judge properties, not speed.
settings.register_profile("rtcc", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rtcc")


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    broker = MosquittoProcess(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker_url(mosquitto: MosquittoProcess) -> str:
    if not mosquitto.running:
        mosquitto.start()
    return mosquitto.url


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A broker of this test's own, for tests that stop or reconfigure it."""
    broker = MosquittoProcess(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running or an exception unhandled."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
    for task in leaked:
        task.cancel()
    assert not leaked, f"tasks left running: {[t.get_name() for t in leaked]}"
    assert not errors, f"unhandled errors in the event loop: {errors}"

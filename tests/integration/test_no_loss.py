"""Store and forward: nothing is lost across a broker outage or a SIGKILL of the agent."""

import asyncio
import json
import os
import random
import signal
import sqlite3
import time
from functools import partial
from pathlib import Path
from typing import cast

from central.broker import MosquittoProcess
from tests.helpers import (
    CenterHandle,
    running_agent,
    running_center,
    spawn_agent,
    wait_for,
)


def outbox_empty(path: Path) -> bool:
    """True once the outbox is empty."""
    with sqlite3.connect(path) as db:
        return bool(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0)


def received(center: CenterHandle, unit: str) -> list[int]:
    return [cast(int, e.event.data["n"]) for e in center.fleet.recent_events if e.unit_id == unit]


async def test_broker_down_10s_while_100_events(
    own_broker: MosquittoProcess, unique: str, tmp_path: Path
) -> None:
    unit = f"u-{unique}"
    async with (
        running_center(own_broker.url, f"c-{unique}") as center,
        running_agent(unit, own_broker.url, tmp_path / "agent") as agent,
    ):
        await wait_for(lambda: (r := center.fleet.registry.get(unit)) and r.online)
        own_broker.stop()
        for n in range(100):
            agent.record_event("test.tick", {"n": n}, time.time())
            await asyncio.sleep(0.1)
        assert agent.outbox.rows == 100
        own_broker.start()
        await wait_for(lambda: len(received(center, unit)) >= 100, timeout=20)
        await asyncio.sleep(0.5)
        assert received(center, unit) == list(range(100))
        await wait_for(lambda: agent.outbox.rows == 0)


async def test_kill_9_of_the_agent_loses_nothing(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    rng = random.Random(unique)
    async with running_center(broker_url, f"c-{unique}") as center:
        for attempt in range(3):
            unit = f"u-{unique}-{attempt}"
            data_dir = tmp_path / unit
            proc = spawn_agent(unit, broker_url, data_dir, RTCC_SIM__EVENT_INTERVAL_S="0.01")
            await wait_for(partial(lambda u: len(received(center, u)) > 20, unit), timeout=15)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            with sqlite3.connect(data_dir / "agent.db") as db:
                stored = [
                    json.loads(b)["data"]["n"]
                    for (b,) in db.execute("SELECT body FROM outbox WHERE topic LIKE '%/events/%'")
                ]
            arrived = len(received(center, unit))
            expected = max([*stored, arrived - 1]) + 1

            restarted = spawn_agent(unit, broker_url, data_dir)
            try:
                await wait_for(partial(outbox_empty, data_dir / "agent.db"), timeout=15)
                await asyncio.sleep(0.3)
                # Every event stored before the kill arrives exactly once, in order.
                assert received(center, unit) == list(range(expected))
            finally:
                restarted.send_signal(signal.SIGTERM)
                await asyncio.to_thread(restarted.wait)

"""Presence: online after start, offline by Last Will after the agent dies."""

import asyncio
import os
import signal
import time
from pathlib import Path

from tests.helpers import kill_if_running, online_agent, running_center, spawn_agent, wait_for

KEEPALIVE_S = 4


async def test_online_after_start_and_offline_after_clean_stop(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    unit = f"u-{unique}"
    async with running_center(broker_url, f"c-{unique}") as center:
        async with online_agent(center, unit, broker_url, tmp_path):
            response = await center.http.get(f"/api/v1/units/{unit}")
            body = response.json()
            assert response.status_code == 200 and body["online"] is True
            await wait_for(lambda: center.fleet.registry.get(unit).state is not None)  # type: ignore[union-attr]
        await wait_for(lambda: center.fleet.registry.get(unit).online is False)  # type: ignore[union-attr]


async def test_offline_by_last_will_after_kill_9(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    unit = f"u-{unique}"
    async with running_center(broker_url, f"c-{unique}") as center:
        proc = spawn_agent(unit, broker_url, tmp_path / "agent")
        try:
            await wait_for(lambda: center.online(unit), 15)
            killed = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            await wait_for(
                lambda: center.fleet.registry.get(unit).online is False,  # type: ignore[union-attr]
                timeout=1.5 * KEEPALIVE_S,
            )
            assert time.monotonic() - killed <= 1.5 * KEEPALIVE_S
            listing = (await center.http.get("/api/v1/units")).json()
            assert {"unit_id": unit, "online": False}.items() <= next(
                u for u in listing if u["unit_id"] == unit
            ).items()
        finally:
            kill_if_running(proc)


async def test_center_status_is_retained_with_a_will(broker_url: str, unique: str) -> None:
    from protocol import decode
    from runtime.config import BrokerUrl, MqttTuning
    from runtime.mqtt import MqttLink, Subscription
    from tests.helpers import FAST_MQTT, stop_link_task

    seen: list[bool] = []
    center_id = f"c-{unique}"
    async with running_center(broker_url, center_id):
        pass
    watcher = MqttLink(
        client_id=f"w-{unique}",
        urls=[BrokerUrl.parse(broker_url)],
        tuning=MqttTuning(**FAST_MQTT),
        subscriptions=[Subscription(f"rtcc/v1/centers/{center_id}/status")],
        on_message=lambda t, p, r: seen.append(decode(t, p).envelope.body.online),
    )
    task = asyncio.create_task(watcher.run())
    await wait_for(lambda: seen == [False])
    await stop_link_task(watcher, task)

"""Commands: center -> agent -> result, over a real broker."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from protocol import Command, CommandResult, Envelope, Presence, Topic, decode, encode
from runtime.config import BrokerUrl, MqttTuning
from runtime.mqtt import MqttLink, Subscription
from tests.helpers import (
    FAST_MQTT,
    online_agent,
    running_agent,
    running_center,
    stop_link_task,
    wait_for,
)


@contextlib.asynccontextmanager
async def raw_client(
    broker_url: str,
    name: str,
    topics: list[str] | None = None,
    inbox: list[Any] | None = None,
) -> AsyncIterator[MqttLink]:
    def collect(topic: str, payload: bytes, _retained: bool) -> None:
        if inbox is not None:
            inbox.append(decode(topic, payload).envelope.body)

    link = MqttLink(
        client_id=name,
        urls=[BrokerUrl.parse(broker_url)],
        tuning=MqttTuning(**FAST_MQTT),
        subscriptions=[Subscription(t) for t in topics or []],
        on_message=collect,
    )
    task = asyncio.create_task(link.run())
    await asyncio.wait_for(link.connected.wait(), 5)
    try:
        yield link
    finally:
        await stop_link_task(link, task)


def command_payload(unit: str, name: str, cmd_id: str, expires_at: float) -> tuple[str, bytes]:
    topic = Topic.command(unit, name)
    body = Command(
        name=name, cmd_id=cmd_id, reply_to=str(Topic.result(unit)), expires_at=expires_at
    )
    return str(topic), encode(topic, Envelope(sid=1, seq=1, ts=time.time(), body=body))


async def test_ping_round_trip_and_metrics(broker_url: str, unique: str, tmp_path: Path) -> None:
    unit = f"u-{unique}"
    async with (
        running_center(broker_url, f"c-{unique}") as center,
        online_agent(center, unit, broker_url, tmp_path),
    ):
        response = await center.http.post(f"/api/v1/units/{unit}/commands", json={"name": "ping"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "done" and body["data"]["pong"] > 0 and body["rtt_ms"] >= 0
        unknown = await center.http.post(
            f"/api/v1/units/{unit}/commands", json={"name": "self.destruct"}
        )
        assert unknown.json()["status"] == "rejected"
        assert center.metric("rtcc_commands_total", 'status="done"') == 1
        assert center.metric("rtcc_command_rtt_seconds_count") == 2


async def test_config_set_is_reflected_in_state_and_kept(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    unit = f"u-{unique}"
    async with running_center(broker_url, f"c-{unique}") as center:
        async with online_agent(center, unit, broker_url, tmp_path):
            url = f"/api/v1/units/{unit}/commands"
            ok = await center.http.post(
                url, json={"name": "config.set", "args": {"state_heartbeat_s": 7}}
            )
            assert ok.json()["status"] == "done"
            await wait_for(
                lambda: (
                    center.fleet.registry.get(unit).state.config.state_heartbeat_s  # type: ignore[union-attr]
                    == 7
                )
            )
            bad = await center.http.post(
                url, json={"name": "config.set", "args": {"state_heartbeat_s": -1}}
            )
            assert bad.json()["status"] == "failed"
            assert "state_heartbeat_s" in bad.json()["detail"]
        async with running_agent(unit, broker_url, tmp_path) as agent:
            state = agent.current_state()
            assert state is not None and state.config.state_heartbeat_s == 7


async def test_expired_rejected_and_duplicate_runs_once(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    unit = f"u-{unique}"
    results: list[CommandResult] = []
    async with (
        running_agent(unit, broker_url, tmp_path) as agent,
        raw_client(broker_url, f"x-{unique}", [str(Topic.result(unit))], results) as center,
    ):
        await agent.link.connected.wait()
        await center.publish(*command_payload(unit, "ping", "old", time.time() - 1))
        await wait_for(lambda: any(r.cmd_id == "old" for r in results))
        assert [(r.status, r.detail) for r in results if r.cmd_id == "old"] == [
            ("rejected", "expired")
        ]

        for _ in range(3):
            await center.publish(*command_payload(unit, "ping", "twice", time.time() + 30))
        await wait_for(lambda: any(r.cmd_id == "twice" and r.status == "done" for r in results))
        await asyncio.sleep(0.5)
        assert [r.status for r in results if r.cmd_id == "twice"] == ["accepted", "done"]


async def test_http_errors(broker_url: str, unique: str) -> None:
    silent = f"s-{unique}"
    gone = f"g-{unique}"
    async with (
        running_center(broker_url, f"c-{unique}") as center,
        raw_client(broker_url, f"x-{unique}") as fake,
    ):
        for unit, online in ((silent, True), (gone, False)):
            body = Presence(online=online, reason="birth" if online else "lwt")
            topic = Topic.presence(unit)
            await fake.publish(
                str(topic), encode(topic, Envelope(sid=1, seq=1, ts=time.time(), body=body))
            )
        await wait_for(
            lambda: (
                center.fleet.registry.get(gone) is not None
                and center.fleet.registry.get(silent) is not None
            )
        )
        url = "/api/v1/units/{}/commands"
        assert (
            await center.http.post(url.format("nobody"), json={"name": "ping"})
        ).status_code == 404
        assert (await center.http.get("/api/v1/units/nobody")).status_code == 404
        assert (await center.http.post(url.format(gone), json={"name": "ping"})).status_code == 409
        timeout = await center.http.post(
            url.format(silent), json={"name": "ping", "timeout_s": 0.5}
        )
        assert timeout.status_code == 504
        assert uuid.UUID(timeout.json()["cmd_id"])
        for bad in (
            {"name": "Ping!"},
            {"name": "ping", "extra": 1},
            {"name": "ping", "timeout_s": 0},
            {},
        ):
            assert (await center.http.post(url.format(silent), json=bad)).status_code == 422
        assert (await center.http.get("/api/v1/units/bad%2Fid")).status_code in (404, 422)
        assert center.metric("rtcc_commands_total", 'status="timeout"') == 1
        assert len(center.fleet.commands) == 0

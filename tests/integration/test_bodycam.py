"""The body-cam link end to end: a simulated body-cam (TCP and pty) -> the agent -> MQTT ->
the center. A holster draw raises an alert at the center, takes the unit live and tells the
camera to record; the link survives the camera going away and coming back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from firmware_bridge.sim.bodycam import SimulatedBodycam
from firmware_bridge.sim.bodycam_server import BodycamServer
from tests.helpers import running_agent, running_center, wait_for
from tests.integration.bodycam_helpers import bodycam, wait_for_async, wait_for_state
from tests.integration.center_helpers import unit_at_center


async def test_holster_draw_alerts_the_center_takes_the_unit_live_and_records(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    async with (
        bodycam("CAM-1", clock_offset_s=-30) as (camera, address),
        unit_at_center(
            broker_url,
            unique,
            tmp_path,
            video={"width": 320, "height": 240},
            device={"link": address},
        ) as at,
    ):
        central, agent, http, unit = at.central, at.agent, at.http, at.unit_id
        assert agent.bodycam is not None
        await wait_for(lambda: agent.bodycam is not None and agent.bodycam.state.hello)
        # The camera's clock was 30 s off: the gateway set it.
        await wait_for(lambda: abs(camera.camera.clock_offset_s) < 1.0)
        state = await wait_for_state(agent, lambda s: s.camera.model == "rtcc-bodycam-sim")
        assert state.camera.connected and not state.camera.recording

        pressed = time.time()
        assert camera.execute("trigger holster_draw")["ok"]
        alerts: list[dict[str, Any]] = []

        async def alert_seen() -> bool:
            alerts[:] = (await http.get("/api/v1/alerts", params={"unit_id": unit})).json()
            return bool(alerts)

        await wait_for_async(alert_seen, timeout=5)
        alert = alerts[0]
        assert alert["type"] == "alert" and alert["trigger"] == "trigger.holster_draw"
        assert alert["data"]["actions"] == ["alert", "record", "stream"]
        print(f"trigger -> alert at the center: {1000 * (alert['received'] - pressed):.0f} ms")
        # The camera records, and says so; the unit goes live without anyone asking.
        await wait_for(lambda: camera.camera.recording, timeout=5)
        await wait_for_state(agent, lambda s: s.camera.recording and s.camera.streaming)
        # The officer sees the "being watched" light, and felt a buzz.
        await wait_for(lambda: camera.camera.watched and camera.camera.haptics == 1, timeout=5)

        async def live() -> bool:
            streams = (await http.get("/api/v1/streams")).json()
            return any(s["unit_id"] == unit and s["live"] for s in streams)

        await wait_for_async(live, timeout=15)
        # The device event itself reached the center too.
        fleet = central.fleet
        assert fleet is not None
        seen = {e.event.type for e in fleet.recent_events if e.unit_id == unit}
        assert {"bodycam.connected", "trigger.holster_draw", "alert"} <= seen


async def test_watch_me_over_a_pty_and_a_camera_that_comes_back(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    unit = f"u-{unique}"
    server = BodycamServer(SimulatedBodycam("CAM-PTY"))
    path = server.open_pty()
    ticker = asyncio.create_task(server.tick_loop())
    try:
        async with (
            running_center(broker_url, f"c-{unique}") as center,
            running_agent(
                unit, broker_url, tmp_path / "agent", device={"link": path, "stale_after_s": 2}
            ) as agent,
        ):
            assert agent.bodycam is not None
            link = agent.bodycam
            await wait_for(lambda: link.state.hello is not None, timeout=5)
            assert link.state.hello is not None and link.state.hello.serial == "CAM-PTY"
            server.execute("press mark")
            await wait_for(
                lambda: any(
                    e.unit_id == unit and e.event.type == "button.mark"
                    for e in center.fleet.recent_events
                ),
                timeout=5,
            )
            # The camera goes silent (cable pulled): the gateway notices, then finds it again.
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            connects = link.connects
            await wait_for_state(agent, lambda s: not s.camera.connected, timeout=10)
            ticker = asyncio.create_task(server.tick_loop())
            await wait_for(lambda: link.connects > connects, timeout=10)
            await wait_for_state(agent, lambda s: s.camera.connected, timeout=10)
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        server.close()

"""Remote start through the whole center: API -> MQTT command -> agent publishes over WHIP
-> the center's front -> a relay worker process -> WHEP viewer."""

import time
from pathlib import Path
from typing import Any

import httpx

from central.config import CentralSettings
from central.service import Central
from runtime.config import load_settings
from tests.helpers import FAST_MQTT, running_agent, wait_for
from tests.integration.relay_helpers import RelayViewer
from tests.integration.test_commands import raw_client

LOOPBACK_ICE = {"host_addresses": ["127.0.0.1"]}


async def test_remote_start_view_and_stop(broker_url: str, unique: str, tmp_path: Path) -> None:
    settings = load_settings(
        CentralSettings,
        center_id=f"c-{unique}",
        mqtt_url=broker_url,
        mqtt=FAST_MQTT,
        data_dir=tmp_path / "center",
        http={"port": 0},
        relay={"workers": 1, "ice": LOOPBACK_ICE},
    )
    central = Central(settings)
    await central.start()
    unit = f"u-{unique}"
    announced: list[Any] = []
    try:
        await central.wait_connected()
        watcher = raw_client(
            broker_url, f"w-{unique}", [f"rtcc/v1/centers/c-{unique}/events/+"], announced
        )
        async with (
            watcher,
            running_agent(
                unit,
                broker_url,
                tmp_path / "agent",
                center_url=central.api_url,
                ice=LOOPBACK_ICE,
                video={"codec": "vp8", "width": 320, "height": 240},
            ) as agent,
            httpx.AsyncClient(base_url=central.api_url, timeout=20) as http,
        ):
            assert central.fleet is not None
            await wait_for(lambda: (r := central.fleet.registry.get(unit)) and r.online)  # type: ignore[union-attr]
            started = time.monotonic()
            response = await http.post(f"/api/v1/units/{unit}/stream")
            assert response.status_code == 200, response.text
            grant = response.json()
            assert grant["stream_id"].startswith(unit) and time.monotonic() - started < 10
            viewer = RelayViewer("vp8")
            joined = await viewer.join(central.api_url, grant["stream_id"], grant["token"])
            assert joined.status_code == 201, joined.text
            await wait_for(lambda: len(viewer.stamps) > 10, timeout=15)
            assert viewer.sizes == {(320, 240)}
            streams = (await http.get("/api/v1/streams")).json()
            assert streams[0]["live"] and streams[0]["viewers"] == 1
            assert streams[0]["codec"] == "vp8" and streams[0]["unit_id"] == unit
            await wait_for(lambda: (s := agent.current_state()) and s.camera.streaming)
            again = await http.post(f"/api/v1/units/{unit}/stream")
            assert again.json()["stream_id"] == grant["stream_id"]  # idempotent
            page = await http.get(f"/view/{grant['stream_id']}")
            assert page.status_code == 200 and "WHEP" in page.text
            stopped = await http.delete(f"/api/v1/units/{unit}/stream")
            assert stopped.json() == {"stopped": [grant["stream_id"]]}
            await wait_for(lambda: not agent.current_state().camera.streaming)  # type: ignore[union-attr]
            refused = await http.post(
                f"/whip/{grant['stream_id']}",
                content="v=0",
                headers={
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {grant['token']}",
                },
            )
            assert refused.status_code == 403  # a viewer token never publishes
            await viewer.close()
            await wait_for(
                lambda: [e.type for e in announced] == ["stream.started", "stream.stopped"]
            )
            assert announced[0].data == {"stream_id": grant["stream_id"], "unit_id": unit}
    finally:
        await central.stop()

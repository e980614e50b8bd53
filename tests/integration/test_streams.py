"""Remote start through the whole center: API -> MQTT command -> agent publishes over WHIP
-> the center's front -> a relay worker process -> WHEP viewer."""

from pathlib import Path
from typing import Any

from tests.center_tls import client_tls
from tests.helpers import wait_for
from tests.integration.center_helpers import streaming_unit
from tests.integration.relay_helpers import RelayViewer
from tests.integration.test_commands import raw_client


async def test_remote_start_view_and_stop(broker_url: str, unique: str, tmp_path: Path) -> None:
    announced: list[Any] = []
    async with (
        raw_client(broker_url, f"w-{unique}", [f"rtcc/v1/centers/c-{unique}/events/+"], announced),
        streaming_unit(broker_url, unique, tmp_path, codec="vp8") as unit,
    ):
        grant, http, agent = unit.grant, unit.http, unit.agent
        assert grant["stream_id"].startswith(agent.unit_id)
        viewer = RelayViewer("vp8")
        joined = await viewer.join(
            unit.central.api_url, grant["stream_id"], grant["token"], client_tls()
        )
        assert joined.status_code == 201, joined.text
        await wait_for(lambda: len(viewer.stamps) > 10, timeout=15)
        assert viewer.sizes == {(320, 240)}
        streams = (await http.get("/api/v1/streams")).json()
        assert streams[0]["live"] and streams[0]["viewers"] == 1
        assert streams[0]["codec"] == "vp8" and streams[0]["unit_id"] == agent.unit_id
        await wait_for(lambda: (s := agent.current_state()) and s.camera.streaming)
        again = await http.post(f"/api/v1/units/{agent.unit_id}/stream", json={"reason": "test"})
        assert again.json()["stream_id"] == grant["stream_id"]  # idempotent
        page = await http.get(f"/view/{grant['stream_id']}")
        assert page.status_code == 200 and "WHEP" in page.text
        stopped = await http.delete(f"/api/v1/units/{agent.unit_id}/stream")
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
        await wait_for(lambda: [e.type for e in announced] == ["stream.started", "stream.stopped"])
        assert announced[0].data == {"stream_id": grant["stream_id"], "unit_id": agent.unit_id}

"""The console's center side end to end, with real units, broker, relay worker and database:
the live feed (snapshot, updates, catch-up by event id, the patrol's narrow view), a holster
draw that raises a stored alert, takes the unit live and starts group recording near it
(not far from it), a still, a share to a 2 km radius that the patrol inside receives and
watches while the one outside hears nothing, and a revocation that stops the patrol's video
within 5 s. Everything a person did is in the audit log."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.service import Agent
from central.access.policy import Role
from central.broker import MosquittoProcess
from central.service import Central
from firmware_bridge.sim.bodycam_server import BodycamServer
from tests.center_tls import client_tls
from tests.helpers import wait_for
from tests.integration.bodycam_helpers import bodycam, wait_for_state
from tests.integration.center_helpers import agent_of, api_client
from tests.integration.live_helpers import following
from tests.integration.relay_helpers import RelayViewer
from tests.integration.site_helpers import Site, running_site

SCENE = (40.7128, -74.0060)
NEAR = (40.7218, -74.0060)  # 1 km north
FAR = (40.7728, -74.0060)  # 6.7 km north
# A parked unit: the simulator drives a circle of this radius at this speed.
PARKED = {"radius_m": 5.0, "speed_mps": 0.0}


def at(place: tuple[float, float]) -> dict[str, Any]:
    return {"lat": place[0], "lon": place[1], **PARKED, "event_interval_s": 0}


@contextlib.asynccontextmanager
async def console_site(
    broker_url: str, unique: str, tmp_path: Path, **policies: Any
) -> AsyncIterator[Site]:
    console = {"group_recording": {"enabled": True, "radius_m": 3000}, **policies}
    async with running_site(broker_url, unique, tmp_path, idle_lock_s=600, console=console) as site:
        yield site


@contextlib.asynccontextmanager
async def unit_at_the_scene(
    central: Central, broker_url: str, tmp_path: Path
) -> AsyncIterator[tuple[BodycamServer, Agent]]:
    """Unit u-a parked at the scene, its body-cam (CAM-A) linked and its video 320x240."""
    async with (
        bodycam("CAM-A") as (camera, address),
        agent_of(
            central,
            "u-a",
            broker_url,
            tmp_path / "a",
            sim=at(SCENE),
            video={"width": 320, "height": 240},
            device={"link": address},
        ) as unit,
    ):
        yield camera, unit


async def draw_the_weapon(camera: BodycamServer, unit: Agent) -> None:
    """A holster draw at the body-cam, once the unit has heard from it."""
    await wait_for(lambda: unit.bodycam is not None and unit.bodycam.state.hello)
    assert camera.execute("trigger holster_draw")["ok"]


@pytest.fixture
def broker_url(own_broker: MosquittoProcess) -> str:
    """A broker of this test's own: the units here reuse ids, and the session's broker keeps
    the retained presence and state of every test before."""
    return own_broker.url


def online(central: Central, unit: str) -> bool:
    assert central.fleet is not None
    record = central.fleet.registry.get(unit)
    return record is not None and bool(record.online)


@pytest.fixture
async def site(broker_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Site]:
    async with console_site(broker_url, unique, tmp_path) as running:
        yield running


async def test_feed_snapshot_updates_catch_up_and_the_patrol_view(
    site: Site, broker_url: str, tmp_path: Path
) -> None:
    central = site.central
    dana = await site.person("dana", Role.DISPATCHER)
    car = await site.person("car-b", Role.PATROL, unit_id="u-b")
    async with (
        contextlib.aclosing(dana),
        contextlib.aclosing(car),
        agent_of(central, "u-a", broker_url, tmp_path / "a", sim=at(SCENE)),
        agent_of(central, "u-b", broker_url, tmp_path / "b", sim=at(NEAR)) as unit_b,
    ):
        await wait_for(lambda: online(central, "u-a") and online(central, "u-b"), timeout=15)
        async with following(dana.http) as feed:
            assert feed.status == 200
            await feed.wait(
                lambda f: {"u-a", "u-b"} <= {u for u, s in f.units().items() if s["lat"]}
            )
            assert feed.events[0].name == "snapshot"
            shown = feed.units()["u-b"]
            assert shown["officer"] == "car-b" and shown["state_label"] == "available"
            assert abs(shown["lat"] - NEAR[0]) < 0.001
            seen = feed.last_id
        assert seen is not None
        # The page was away while a unit left: back with its last id, it gets what it missed.
        await unit_b.stop()
        await wait_for(lambda: not online(central, "u-b"), timeout=10)
        async with following(dana.http, last_event_id=seen) as feed:
            assert feed.status == 200
            await feed.wait(lambda f: f.units().get("u-b", {}).get("state_label") == "offline")
            assert "snapshot" not in [e.name for e in feed.events]
        # An id this center never gave (another process, a restart): a snapshot.
        async with following(dana.http, last_event_id="ffffffff.3") as feed:
            await feed.wait(lambda f: f.events)
            assert feed.events[0].name == "snapshot"
        # A patrol login follows its own unit only, and none of the console's routes.
        async with following(car.http) as patrol:
            await patrol.wait(lambda f: f.events)
            snapshot = patrol.events[0].data
            assert [u["unit_id"] for u in snapshot["units"]] == ["u-b"]
            assert snapshot["alerts"] == [] and snapshot["streams"] == []
        for path in ("/api/v1/units", "/api/v1/alerts", "/api/v1/shares", "/api/v1/streams"):
            assert (await car.call("GET", path)).status_code == 403, path
        me = await car.call("GET", "/api/v1/patrol/me")
        assert me.status_code == 200 and me.json()["unit_id"] == "u-b"
        # The pages and their libraries come from the center, and nothing outside them.
        page = await dana.call("GET", "/console")
        assert (
            page.status_code == 200
            and "default-src 'self'" in page.headers["content-security-policy"]
        )
        for asset, kind in (
            ("/assets/npm/leaflet/leaflet.js", "text/javascript"),
            ("/assets/npm/leaflet.markercluster/leaflet.markercluster.js", "text/javascript"),
            ("/assets/console/main.js", "text/javascript"),
            ("/assets/lib/api.js", "text/javascript"),
            ("/assets/view/main.js", "text/javascript"),
        ):
            answer = await dana.call("GET", asset)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind), (
                asset
            )
        for outside in (
            "/assets/npm/leaflet/../package.json",
            "/assets/lib/../../config.py",
            "/assets/npm/left-pad/index.js",
            "/assets/static/home.html",
        ):
            assert (await dana.call("GET", outside)).status_code == 404, outside


async def test_holster_draw_alert_group_recording_still_share_and_revoke(
    site: Site, broker_url: str, tmp_path: Path
) -> None:
    central = site.central
    dana = await site.person("dana", Role.DISPATCHER)
    near = await site.person("car-b", Role.PATROL, unit_id="u-b")
    far = await site.person("car-c", Role.PATROL, unit_id="u-c")
    recording = {"enabled": True, "pre_event_s": 1, "segment_s": 2}
    async with (
        contextlib.aclosing(dana),
        contextlib.aclosing(near),
        contextlib.aclosing(far),
        unit_at_the_scene(central, broker_url, tmp_path) as (camera, unit_a),
        agent_of(
            central, "u-b", broker_url, tmp_path / "b", sim=at(NEAR), evidence=recording
        ) as unit_b,
        agent_of(
            central, "u-c", broker_url, tmp_path / "c", sim=at(FAR), evidence=recording
        ) as unit_c,
        following(dana.http) as console,
        following(near.http) as patrol_near,
        following(far.http) as patrol_far,
        api_client(central) as cad,
    ):
        await console.wait(
            lambda f: all(f.units().get(u, {}).get("lat") for u in ("u-a", "u-b", "u-c")), 15
        )
        await draw_the_weapon(camera, unit_a)
        # The console hears of it at once; it is stored, and the unit goes live by itself.
        await console.wait(lambda f: f.named("alert"), timeout=5)
        alert = console.named("alert")[0]
        assert alert["kind"] == "weapon_drawn" and alert["unit_id"] == "u-a"
        await console.wait(lambda f: any(a["stream_id"] for a in f.named("alert")), timeout=15)
        stream_id = next(a["stream_id"] for a in console.named("alert") if a["stream_id"])
        await console.wait(lambda f: f.units()["u-a"]["state_label"] == "alert")
        stored = (await dana.call("GET", "/api/v1/alerts", params={"open": "true"})).json()
        assert [a["id"] for a in stored] == [alert["id"]]
        # Group recording: the unit 1 km away records too; the one 6.7 km away does not.
        await wait_for_state(unit_b, lambda s: s.camera.recording, timeout=10)
        group = site.audit("recording.group_start")
        assert [sorted(r["detail"]["units"]) for r in group] == [["u-b"]]
        assert unit_c.current_state() is not None and not unit_c.current_state().camera.recording  # type: ignore[union-attr]
        await console.wait(
            lambda f: any(s["stream_id"] == stream_id and s["live"] for s in f.named("stream")), 15
        )
        # A still, decoded at the center.
        still = await dana.call(
            "POST", f"/api/v1/streams/{stream_id}/stills", json={"alert_id": alert["id"]}
        )
        assert still.status_code == 200, still.text
        jpeg = await dana.call("GET", still.json()["url"])
        assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
        # Share the stream, the still and a BOLO to 2 km around the scene.
        body = {
            "stream_id": stream_id,
            "still_id": still.json()["still_id"],
            "text": "Suspect: grey hoodie, on foot northbound",
            "scene": {"lat": SCENE[0], "lon": SCENE[1]},
            "radius_m": 2000,
        }
        shared = await dana.call("POST", "/api/v1/shares", json=body)
        assert shared.status_code == 200, shared.text
        share = shared.json()
        assert [r["unit_id"] for r in share["recipients"]] == ["u-b"]
        await patrol_near.wait(lambda f: f.named("share"), timeout=5)
        offered = patrol_near.named("share")[0]
        assert offered["text"].startswith("Suspect") and 900 < offered["distance_m"] < 1100
        assert 170 < offered["bearing_deg"] < 190  # the scene is due south of the unit
        assert (await far.call("GET", "/api/v1/patrol/shares")).json() == []
        assert (await far.call("GET", still.json()["url"])).status_code == 404
        assert (await near.call("GET", still.json()["url"])).status_code == 200
        refused = await far.call("POST", f"/api/v1/patrol/shares/{share['share_id']}/open")
        assert refused.status_code == 404
        assert (
            await far.call("POST", f"/api/v1/streams/{stream_id}/viewer-token")
        ).status_code == 403
        # The patrol inside watches; the console sees it received and opened.
        opened = await near.call("POST", f"/api/v1/patrol/shares/{share['share_id']}/open")
        assert opened.status_code == 200, opened.text
        viewer = RelayViewer("h264")
        joined = await viewer.join(central.api_url, stream_id, opened.json()["token"], client_tls())
        assert joined.status_code == 201, joined.text
        await wait_for(lambda: viewer.frames > 5, timeout=15)
        await console.wait(
            lambda f: any(r["opened_at"] for s in f.named("share") for r in s["recipients"])
        )
        # Revoked: the patrol's video stops within 5 s and the share leaves its page.
        revoked = await dana.call("DELETE", f"/api/v1/shares/{share['share_id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert viewer.task is not None
        await wait_for(viewer.task.done, timeout=5)
        await patrol_near.wait(lambda f: f.named("share_revoked"))
        assert patrol_far.named("share") == []
        await viewer.pc.close()
        # Acknowledged with a note: every console hears of it, once.
        ack = await dana.call(
            "POST", f"/api/v1/alerts/{alert['id']}/ack", json={"note": "units on scene"}
        )
        assert ack.status_code == 200 and ack.json()["acked_by"] == "dana"
        again = await dana.call("POST", f"/api/v1/alerts/{alert['id']}/ack", json={"note": "x"})
        assert again.status_code == 409
        await console.wait(lambda f: any(a["acked_at"] for a in f.named("alert")))
        await cad.get("/healthz")
    assert [r["actor"] for r in site.audit("alerts.acknowledge")] == ["dana"]
    assert [r["object"] for r in site.audit("shares.create")] == [share["share_id"]]
    assert [r["actor"] for r in site.audit("shares.open")] == ["car-b"]
    assert [r["actor"] for r in site.audit("shares.revoke")] == ["dana"]
    assert [r["actor"] for r in site.audit("streams.still")] == ["dana"]
    started = site.audit("streams.alert_start")
    assert [(r["actor"], r["object"], r["outcome"]) for r in started] == [("center", "u-a", "ok")]
    assert ("car-b", "revoked") in {
        (r["actor"], r["outcome"]) for r in site.audit("streams.view_stop")
    }


async def test_a_holster_draw_shares_itself_with_the_patrols_near_it_when_configured(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    auto_share = {"enabled": True, "radius_m": 2000}
    policies = {"auto_share": auto_share, "group_recording": {"enabled": False}}
    async with console_site(broker_url, unique, tmp_path, **policies) as site:
        central = site.central
        near = await site.person("car-b", Role.PATROL, unit_id="u-b")
        far = await site.person("car-c", Role.PATROL, unit_id="u-c")
        async with (
            contextlib.aclosing(near),
            contextlib.aclosing(far),
            unit_at_the_scene(central, broker_url, tmp_path) as (camera, unit_a),
            agent_of(central, "u-b", broker_url, tmp_path / "b", sim=at(NEAR)) as unit_b,
            agent_of(central, "u-c", broker_url, tmp_path / "c", sim=at(FAR)),
            following(near.http) as patrol_near,
            following(far.http) as patrol_far,
        ):
            hub = central.hub
            assert hub is not None
            await wait_for(lambda: all(u in hub.index for u in ("u-a", "u-b", "u-c")), 15)
            await draw_the_weapon(camera, unit_a)
            await patrol_near.wait(lambda f: f.named("share"), timeout=20)
            shared = patrol_near.named("share")[0]
            assert shared["from_user"] == "center:auto-share" and shared["stream_id"]
            assert "weapon drawn" in shared["text"]
            assert patrol_far.named("share") == []
            assert not unit_b.current_state().camera.recording  # type: ignore[union-attr]
        created = site.audit("shares.create")
        assert [(r["actor"], r["detail"]["recipients"]) for r in created] == [
            ("center:auto-share", ["u-b"])
        ]

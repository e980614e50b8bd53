"""The dispatcher console and the patrol page in Debian's headless Chromium, against a whole
center with real units (agents with simulated vehicles and body-cams), broker, relay worker
and database: units appear on the map and move; a holster draw puts up the banner and one
click opens the unit's live tile, whose frames decode, and its last minutes play beside it;
a share to 2 km reaches the patrol inside, whose page plays it, and not the one outside, and
revoking it stops that video; a console that loses its connection catches up from where it
was; a patrol login cannot use the console. Screenshots of both pages at two sizes go to the
test's folder and var/screenshots. The pages' Content-Security-Policy stays on throughout."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from central.access.policy import Role
from central.broker import MosquittoProcess
from tests.chromium import CONSOLE_READY, PATROL_READY
from tests.helpers import wait_for
from tests.integration.bodycam_helpers import bodycam
from tests.integration.browser_helpers import SIZES, keep, shoot
from tests.integration.center_helpers import api_client
from tests.integration.console_helpers import (
    CuttablePath,
    Screen,
    online,
    place,
    screen_of,
    units,
)
from tests.integration.site_helpers import Site, running_site
from tests.integration.test_browser import browser

__all__ = ["browser"]  # the fixture

SCENE = (40.7128, -74.0060)
VIDEO = {"width": 320, "height": 240}
# Where each marker is on the map now, by unit.
POSITIONS = """Object.fromEntries([...rtccConsole.markers.entries].map(
  ([id, e]) => [id, [e.marker.getLatLng().lat, e.marker.getLatLng().lng]]))"""
EVERY_ONE_MOVED = """(before) => Object.entries(before).every(([id, [lat, lon]]) => {
  const now = rtccConsole.markers.entries.get(id).marker.getLatLng();
  return now.lat !== lat || now.lng !== lon; })"""
# n tiles on the wall, every one playing.
TILES_PLAYING = """(n) => rtccConsole.tiles().length === n && rtccConsole.tiles().every(
  (t) => t.state === 'live' && t.framesDecoded > 10)"""


@pytest.fixture
def broker_url(own_broker: MosquittoProcess) -> str:
    """A broker of this test's own: the console shows every unit a broker keeps (retained),
    and the session's broker keeps those of every test before."""
    return own_broker.url


@pytest.fixture
async def site(broker_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Site]:
    async with running_site(broker_url, unique, tmp_path, idle_lock_s=600) as running:
        yield running


@pytest.fixture
def car(unique: str) -> Callable[[str], str]:
    """A unit id of this test's own: the broker keeps other tests' units' retained state."""
    return lambda name: f"{name}-{unique[:4]}"


async def viewers_become(cad: httpx.AsyncClient, stream_id: str, count: int) -> None:
    """Waits until the relay has `count` viewers of the stream."""

    async def viewers() -> int:
        streams = (await cad.get("/api/v1/streams")).json()
        return int(next(s["viewers"] for s in streams if s["stream_id"] == stream_id))

    deadline = asyncio.get_running_loop().time() + 10
    while (now := await viewers()) != count:
        assert asyncio.get_running_loop().time() < deadline, f"{now} viewers, not {count}"
        await asyncio.sleep(0.2)


async def go_live_from_the_roster(desk: Screen, unit_id: str) -> None:
    await desk.page.locator(f'#roster .roster-row[data-unit="{unit_id}"]').click()
    await desk.page.locator("#detail").get_by_role("button", name="Go live").click()
    await expect(desk.page.locator(f'#wall .tile[data-unit="{unit_id}"]')).to_be_visible()
    await desk.page.locator("#detail .back").click()


@contextlib.asynccontextmanager
async def on_the_wall(
    browser: Browser, site: Site, broker_url: str, tmp_path: Path, unit_id: str
) -> AsyncIterator[tuple[Screen, httpx.AsyncClient, str]]:
    """`unit_id` streaming (the CAD started it over the API) and playing in the tile a
    dispatcher opened from the roster: (the dispatcher's screen, the CAD, the stream id)."""
    async with (
        units(site, broker_url, tmp_path, {unit_id: place(*SCENE)}, video=VIDEO),
        api_client(site.central) as cad,
        screen_of(browser, site, "dana", Role.DISPATCHER) as desk,
    ):
        await wait_for(functools.partial(online, site, unit_id), timeout=15)
        started = await cad.post(f"/api/v1/units/{unit_id}/stream", json={"reason": "test"})
        assert started.status_code == 200, started.text
        await desk.open("/console", CONSOLE_READY)
        await go_live_from_the_roster(desk, unit_id)
        await desk.until(TILES_PLAYING, 1, timeout_ms=30_000)
        yield desk, cad, started.json()["stream_id"]


async def test_the_dispatcher_sees_the_units_on_the_map_and_they_move(
    browser: Browser, site: Site, broker_url: str, tmp_path: Path, car: Callable[[str], str]
) -> None:
    lat, lon = SCENE
    places = {
        car(f"car{n}"): place(lat + 0.004 * n, lon, radius_m=120, speed_mps=15) for n in range(3)
    }
    async with (
        units(site, broker_url, tmp_path, places),
        screen_of(browser, site, "dana", Role.DISPATCHER) as desk,
    ):
        await desk.open("/console", CONSOLE_READY)
        await desk.until(f"rtccConsole.markers.count === {len(places)}")
        first = await desk.value(POSITIONS)
        assert sorted(first) == sorted(places)
        # Every unit moves on the map, in place (the same markers), and is drawn.
        await desk.until(EVERY_ONE_MOVED, first)
        await expect(desk.page.locator(".leaflet-marker-icon .um")).to_have_count(len(places))
        await expect(desk.page.locator(".um.moving").first).to_be_visible()
        # The roster lists them; a search narrows it; a click shows a unit's detail.
        rows = desk.page.locator("#roster .roster-row")
        await expect(rows).to_have_count(len(places))
        await desk.page.locator("#search").fill(car("car1"))
        await expect(rows).to_have_count(1)
        await rows.first.click()
        await expect(desk.page.locator("#detail .detail-title")).to_contain_text(car("car1"))
        await expect(desk.page.locator("#detail .facts")).to_contain_text("km/h")


async def test_a_patrol_login_cannot_use_the_console(
    browser: Browser, site: Site, broker_url: str, tmp_path: Path, car: Callable[[str], str]
) -> None:
    unit_id = car("car7")
    async with (
        units(site, broker_url, tmp_path, {unit_id: place(*SCENE)}),
        screen_of(browser, site, "pat", Role.PATROL, unit_id) as patrol,
    ):
        # The console sends a patrol login to its own page.
        await patrol.page.goto(patrol.base + "/console")
        await patrol.page.wait_for_url(patrol.base + "/patrol")
        await patrol.until(PATROL_READY)
        await expect(patrol.page.locator("#unit")).to_have_text(f"Unit {unit_id}")
        # The console's data and actions are refused, and so is any stream not shared with it.
        for method, path in [
            ("GET", "/api/v1/units"),
            ("GET", f"/api/v1/units/{unit_id}/events"),
            ("GET", "/api/v1/streams"),
            ("GET", "/api/v1/alerts?open=true"),
            ("GET", "/api/v1/shares"),
            ("POST", f"/api/v1/units/{unit_id}/stream"),
            ("POST", "/api/v1/streams/s-1/viewer-token"),
            ("POST", "/api/v1/streams/s-1/stills"),
        ]:
            body = '{"reason": "x"}' if method == "POST" else None
            assert await patrol.status_of(method, path, body) == 403, (method, path)
        assert await patrol.status_of("POST", "/api/v1/patrol/shares/not-mine/open") == 404
        assert await patrol.value("rtccPatrol.live.snapshots") == 1


async def test_a_holster_draw_puts_up_the_banner_and_one_click_opens_its_live_tile(
    browser: Browser, site: Site, broker_url: str, tmp_path: Path, car: Callable[[str], str]
) -> None:
    lat, lon = SCENE
    drawn, *others = [car(f"car{n}") for n in range(1, 5)]
    spread = {u: place(lat + 0.003 * n, lon + 0.002 * n, 80, 6) for n, u in enumerate(others, 1)}
    async with (
        bodycam("CAM-1") as (camera, address),
        units(
            site,
            broker_url,
            tmp_path,
            {drawn: place(lat, lon)},
            video=VIDEO,
            device={"link": address},
        ) as agents,
        units(site, broker_url, tmp_path, spread, video=VIDEO),
        api_client(site.central) as cad,
        screen_of(browser, site, "dana", Role.DISPATCHER) as desk,
    ):
        for unit_id in others:  # already live, started by the CAD
            await wait_for(functools.partial(online, site, unit_id), timeout=15)
            started = await cad.post(f"/api/v1/units/{unit_id}/stream", json={"reason": "test"})
            assert started.status_code == 200, started.text
        await desk.open("/console", CONSOLE_READY)
        await desk.until("rtccConsole.markers.count === 4")
        bodycam_link = agents[drawn].bodycam
        await wait_for(lambda: bodycam_link is not None and bodycam_link.state.hello)
        assert camera.execute("trigger holster_draw")["ok"]
        banner = desk.page.locator("#banner")
        await expect(banner).to_contain_text("Weapon drawn", timeout=10_000)
        await expect(banner).to_contain_text(drawn)
        assert (await desk.value("rtccConsole.cues()"))["alert"] == 1
        # One click: the map centres on the unit and its tile plays.
        await banner.get_by_role("button", name="Open video").click()
        await desk.until(TILES_PLAYING, 1, timeout_ms=30_000)
        tile = (await desk.value("rtccConsole.tiles()"))[0]
        assert tile["unit_id"] == drawn and tile["stats"]["codec"].lower() in ("h264", "vp8")
        print(f"click -> first decoded frame in the tile: {tile['firstFrameMs']:.0f} ms")
        # Three more tiles from the roster (live already: no reason asked), a 2x2 wall.
        for unit_id in others:
            await go_live_from_the_roster(desk, unit_id)
        await desk.until(TILES_PLAYING, 4, timeout_ms=30_000)
        assert (
            await desk.value("document.querySelector('#wall').style.getPropertyValue('--side')")
            == "2"
        )
        await expect(desk.page.locator(".tile-stats").first).to_contain_text("fps")
        shots = await shoot(desk.page, tmp_path, "console-alert-4-tiles")
        # Rewind beside the unit's tile: the relay's last minutes play (and can be scrubbed).
        live_tile = desk.page.locator(f'#wall .tile[data-unit="{drawn}"]:not([data-rewind])')
        await live_tile.get_by_role("button", name="The last minutes beside this tile").click()
        rewind = await desk.until(
            "rtccConsole.rewinds()[0]?.readyState >= 2 && rtccConsole.rewinds()[0]",
            timeout_ms=20_000,
        )
        assert rewind["videoWidth"] == VIDEO["width"] and rewind["error"] is None
        assert "/rewind?" in rewind["source"]
        await desk.page.locator("#wall .tile.rewind").get_by_role("button", name="Close").click()
        # Acknowledged with a note: the banner goes.
        await banner.get_by_role("button", name="Acknowledge").click()
        await desk.page.locator("dialog.modal textarea").fill("units on scene")
        await desk.page.locator("dialog.modal").get_by_role("button", name="Acknowledge").click()
        await expect(banner).to_be_hidden()
    assert [p.name for p in shots] == [f"console-alert-4-tiles-{w}x{h}.png" for w, h in SIZES]
    assert [r["actor"] for r in site.audit("streams.rewind")] == ["dana"]
    acks = [(r["actor"], r["detail"]["note"]) for r in site.audit("alerts.acknowledge")]
    assert acks == [("dana", "units on scene")]


async def test_a_share_reaches_the_patrol_inside_plays_there_and_stops_when_revoked(
    browser: Browser, site: Site, broker_url: str, tmp_path: Path, car: Callable[[str], str]
) -> None:
    lat, lon = SCENE
    source, inside, outside = car("src"), car("near"), car("far")
    patrols = {inside: place(lat + 0.009, lon), outside: place(lat + 0.06, lon)}  # 1, 6.7 km
    async with (
        screen_of(browser, site, "pat-near", Role.PATROL, inside) as near,
        screen_of(browser, site, "pat-far", Role.PATROL, outside) as far,
        screen_of(browser, site, "dana", Role.DISPATCHER) as desk,
        units(site, broker_url, tmp_path, {source: place(lat, lon)}, video=VIDEO),
        units(site, broker_url, tmp_path, patrols),
        api_client(site.central) as cad,
    ):
        hub = site.central.hub
        assert hub is not None
        # Shares go to units with a patrol login, which the center reads every 30 s.
        await wait_for(lambda: set(patrols) <= hub.officers.keys(), timeout=40)
        await wait_for(lambda: online(site, source), timeout=15)
        started = await cad.post(f"/api/v1/units/{source}/stream", json={"reason": "test"})
        assert started.status_code == 200, started.text
        stream_id = started.json()["stream_id"]
        for patrol in (near, far):
            await patrol.open("/patrol", PATROL_READY)
        await expect(near.page.locator("#share-list")).to_contain_text("No shares")
        await desk.open("/console", CONSOLE_READY)
        await desk.until("rtccConsole.markers.count === 3")
        await go_live_from_the_roster(desk, source)
        await desk.until(TILES_PLAYING, 1, timeout_ms=30_000)
        tile = desk.page.locator(f'#wall .tile[data-unit="{source}"]')
        # A still (decoded at the center), then share video and still to 2 km around the unit.
        await tile.get_by_role("button", name="Take a still").click()
        await expect(tile.locator(".tile-still img")).to_be_visible(timeout=10_000)
        await tile.get_by_role("button", name="Share to patrols").click()
        panel = desk.page.locator("#share-panel")
        await expect(panel.locator('input[type="number"]')).to_have_value("2000")
        await expect(panel.locator(".reach")).to_contain_text("About 2 online units inside 2.0 km")
        await panel.locator("textarea").fill("Grey hoodie, on foot northbound on Broadway")
        await panel.get_by_label("Still").check()
        await panel.get_by_role("button", name="Send share").click()
        row = panel.locator(f'.recipients tr[data-unit="{inside}"]')
        await expect(panel.locator(".recipients tbody tr")).to_have_count(1)
        await expect(row).to_be_visible()
        # The patrol inside sees it at once, with a sound, and says it received it.
        card = near.page.locator(".share-card")
        await expect(card).to_have_count(1)
        await expect(card).to_contain_text("Grey hoodie")
        await expect(card.locator(".card-direction")).to_contain_text("S · south")
        await expect(card.locator(".still img")).to_be_visible()
        assert (await near.value("rtccPatrol.cues()"))["share"] == 1
        await expect(row.locator(".tick.yes")).to_have_count(1)
        # Play: the stream decodes there, and the console sees it opened.
        await card.get_by_role("button", name="Play live video").click()
        await near.until(
            "rtccPatrol.playing()?.state === 'live' && rtccPatrol.playing().framesDecoded > 10",
            timeout_ms=30_000,
        )
        await expect(row.locator(".tick.yes")).to_have_count(2)
        # The unit outside heard nothing.
        assert await far.value("rtccPatrol.shares()") == []
        await expect(far.page.locator("#share-list")).to_contain_text("No shares")
        patrol_shots = await shoot(near.page, tmp_path, "patrol-share-playing")
        console_shots = await shoot(desk.page, tmp_path, "console-share-sent")
        # Revoked: the card goes and the patrol's video stops within 5 s.
        await panel.get_by_role("button", name="Revoke now").click()
        await near.until(
            "rtccPatrol.playing() === null && rtccPatrol.shares().length === 0", timeout_ms=5_000
        )
        await expect(near.page.locator("#player-banner")).to_contain_text("revoked")

        # At the relay too: only the console's tile still watches.
        await viewers_become(cad, stream_id, 1)
    assert len(patrol_shots + console_shots) == 2 * len(SIZES)
    assert [r["actor"] for r in site.audit("shares.open")] == ["pat-near"]
    assert [r["actor"] for r in site.audit("shares.revoke")] == ["dana"]


async def test_a_console_that_loses_its_connection_catches_up(
    browser: Browser, site: Site, broker_url: str, tmp_path: Path, car: Callable[[str], str]
) -> None:
    lat, lon = SCENE
    driving, parked = car("car1"), car("car2")
    places = {driving: place(lat, lon, 100, 10), parked: place(lat + 0.003, lon)}
    async with (
        units(site, broker_url, tmp_path, places) as agents,
        CuttablePath(int(site.central.api_url.rsplit(":", 1)[1])) as path,
        screen_of(
            browser, site, "dana", Role.DISPATCHER, base=f"https://127.0.0.1:{path.port}"
        ) as desk,
    ):
        await desk.open("/console", CONSOLE_READY)
        await desk.until(f"rtccConsole.store.units.get('{parked}')?.state_label === 'available'")
        await path.cut()
        await desk.until("rtccConsole.live.state === 'reconnecting'")
        await expect(desk.page.locator("#live-status")).to_have_text("reconnecting…")
        # While it is away, a unit goes offline and the other keeps driving.
        await agents[parked].stop()
        await wait_for(lambda: not online(site, parked), timeout=15)
        path.restore()
        # Back, it sends its last event id and gets what it missed, not a new snapshot.
        await desk.until(f"rtccConsole.store.units.get('{parked}').state_label === 'offline'")
        await expect(desk.page.locator("#live-status")).to_have_text("live")
        assert await desk.value("[rtccConsole.live.opens, rtccConsole.live.snapshots]") == [2, 1]
        await expect(desk.page.locator(".um-offline")).to_have_count(1)


async def test_a_tile_whose_stream_drops_says_so_and_comes_back_by_itself(
    browser: Browser, site: Site, broker_url: str, tmp_path: Path, car: Callable[[str], str]
) -> None:
    unit_id = car("car5")
    relay = site.central.relay
    assert relay is not None
    async with on_the_wall(browser, site, broker_url, tmp_path, unit_id) as (desk, _cad, stream_id):
        # The relay worker dies: the tile says its video is away, then plays again by itself.
        worker = relay.pool.workers[0]
        assert worker.proc is not None
        worker.proc.kill()
        await desk.until("['reconnecting', 'waiting'].includes(rtccConsole.tiles()[0].state)")
        banner = desk.page.locator(f'#wall .tile[data-unit="{unit_id}"] .tile-banner')
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("…")
        await desk.until(TILES_PLAYING, 1, timeout_ms=40_000)
        await expect(banner).to_be_hidden()
        tile = (await desk.value("rtccConsole.tiles()"))[0]
        assert tile["stream_id"] == stream_id and tile["joins"] >= 2


# The popped-out window: the /view page, playing.
VIEW_PLAYING = "window.rtccViewer?.state === 'live' && rtccViewer.framesDecoded > 10"


async def test_a_popped_out_tile_plays_the_same_stream_in_a_window_of_its_own(
    browser: Browser, site: Site, broker_url: str, tmp_path: Path, car: Callable[[str], str]
) -> None:
    unit_id = car("car6")
    async with on_the_wall(browser, site, broker_url, tmp_path, unit_id) as (desk, cad, stream_id):
        # Both windows' requests, from the first: the pop-out's page and the player it loads.
        loaded: list[str] = []
        desk.context.on("request", lambda request: loaded.append(request.url))
        pop_out = desk.page.locator(f'#wall .tile[data-unit="{unit_id}"]').get_by_role(
            "button", name="Pop out"
        )
        async with desk.page.expect_popup() as opened:
            await pop_out.click()
        window = await opened.value
        window_errors: list[str] = []
        window.on("pageerror", lambda error: window_errors.append(str(error)))
        await window.wait_for_function(VIEW_PLAYING, timeout=30_000)
        assert window.url.startswith(f"{desk.base}/view/{stream_id}#token=")
        await expect(window.locator("#title")).to_have_text(stream_id)
        await expect(window.locator("#state")).to_have_text("live")
        stats = await window.evaluate("window.__lastStats")
        assert (stats["frameWidth"], stats["frameHeight"]) == (VIDEO["width"], VIDEO["height"])
        assert stats["codec"].lower() in ("video/h264", "video/vp8")
        await window.wait_for_function(
            "__lastStats.latencyMs !== undefined && __lastStats.framesPerSecond > 0"
        )
        await expect(window.locator("#fps")).not_to_have_text("-")
        await window.screenshot(path=str(tmp_path / "popped-out-tile.png"))
        await asyncio.to_thread(keep, tmp_path / "popped-out-tile.png")
        await viewers_become(cad, stream_id, 2)  # the tile and the window, each its own session
        # Popping out again brings up the same window (one per stream), still in its session.
        first_token = await window.evaluate("location.hash")
        await pop_out.click()
        await window.wait_for_function("(first) => location.hash !== first", arg=first_token)
        assert len(desk.context.pages) == 2
        await window.wait_for_function(f"rtccViewer.joins === 1 && {VIEW_PLAYING}")
        # Closing the tile leaves the window playing; closing the window leaves the relay.
        await (
            desk.page.locator(f'#wall .tile[data-unit="{unit_id}"]')
            .get_by_role("button", name="Close")
            .click()
        )
        assert await desk.value("rtccConsole.tiles()") == []
        await viewers_become(cad, stream_id, 1)
        frames = await window.evaluate("rtccViewer.framesDecoded")
        await window.wait_for_function(f"rtccViewer.framesDecoded > {frames + 15}")
        await expect(window.locator("#state")).to_have_text("live")
        await window.close()
        await viewers_become(cad, stream_id, 0)
        await wait_for(lambda: len(site.audit("streams.view_stop")) == 2)
        assert window_errors == []
        elsewhere = [url for url in loaded if not url.startswith(desk.base + "/")]
        assert elsewhere == [], elsewhere
        assert f"{desk.base}/assets/lib/whep.js" in loaded
    window_stop, tile_stop = site.audit("streams.view_stop")  # newest first
    assert (tile_stop["actor"], tile_stop["outcome"]) == ("dana", "left")
    # A window that closes cannot wait for the relay's answer: its connection may end first,
    # the relay drops the session by itself and the center records a viewer gone on its own.
    assert window_stop["actor"] == "dana" and window_stop["outcome"] in ("left", "ended")

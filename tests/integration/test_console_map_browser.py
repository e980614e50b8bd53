"""The console's map in Debian's headless Chromium against a whole center: configured GeoJSON
overlays (beats, districts) are drawn with their names, over the neutral grid and its scale
bar when no tile server is configured (and then not one tile is asked for); with the agency's
tile server configured (here a small one on 127.0.0.1), every tile comes from it and nothing
from anywhere else. Configured through the environment, as a department does. Screenshots go
to the test's folder and var/screenshots."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, expect

from central.access.policy import Role
from central.broker import MosquittoProcess
from tests.chromium import CONSOLE_READY
from tests.integration.browser_helpers import shoot
from tests.integration.console_helpers import Screen, place, screen_of, units
from tests.integration.site_helpers import running_site
from tests.integration.test_browser import browser

__all__ = ["browser"]  # the fixture

SCENE = (40.7128, -74.0060)
ZOOM = 14
TILE_PATH = re.compile(r"/(\d+)/(\d+)/(\d+)\.png")
# Names in the layers control, and whether each is on.
OVERLAY_CONTROL = """[...document.querySelectorAll('.leaflet-control-layers-overlays label')]
  .map((l) => [l.textContent.trim(), l.querySelector('input').checked])"""
# What the map draws for each GeoJSON layer: how many features, and whether they are in view.
GEOJSON_DRAWN = """(() => { const map = rtccConsole.map, found = [];
  map.eachLayer((layer) => { if (layer instanceof L.GeoJSON) found.push(
    [layer.getLayers().length, map.getBounds().intersects(layer.getBounds())]); });
  return found; })()"""


@pytest.fixture
def broker_url(own_broker: MosquittoProcess) -> str:
    """A broker of this test's own: the console shows every unit a broker keeps."""
    return own_broker.url


@pytest.fixture
def car(unique: str) -> Callable[[str], str]:
    return lambda name: f"{name}-{unique[:4]}"


def square(lat: float, lon: float, half: float) -> list[list[list[float]]]:
    """A closed GeoJSON ring (lon, lat) around a point."""
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
    return [[[lon + dx * half, lat + dy * half] for dx, dy in corners]]


def feature(name: str, geometry: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"name": name}, "geometry": geometry}


def write_overlays(folder: Path) -> dict[str, str]:
    """Two beats side by side and the district around them, as a GIS export would be."""
    lat, lon = SCENE
    beats = [
        feature("Beat 11", {"type": "Polygon", "coordinates": square(lat, lon - 0.006, 0.005)}),
        feature("Beat 12", {"type": "Polygon", "coordinates": square(lat, lon + 0.006, 0.005)}),
    ]
    district = [
        feature("First Precinct", {"type": "Polygon", "coordinates": square(lat, lon, 0.014)}),
        feature("Station", {"type": "Point", "coordinates": [lon, lat - 0.008]}),
    ]
    files = {}
    for name, features in [("beats", beats), ("districts", district)]:
        path = folder / f"{name}.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        files[name] = str(path)
    return files


def configure(monkeypatch: pytest.MonkeyPatch, **console: str) -> None:
    """The console's settings, in the environment as a department sets them."""
    lat, lon = SCENE
    values = {"MAP__LAT": str(lat), "MAP__LON": str(lon), "MAP__ZOOM": str(ZOOM), **console}
    for key, value in values.items():
        monkeypatch.setenv(f"RTCC_CONSOLE__{key.upper()}", value)


def png_tile(size: int = 256) -> bytes:
    """A plain tile: a dark blue-grey square with a lighter edge, so tiles show as such."""
    edge, fill = b"\x5a\x6e\x84", b"\x26\x33\x42"
    inner = edge + fill * (size - 2) + edge
    rows = [b"\x00" + (edge * size if y in (0, size - 1) else inner) for y in range(size)]

    def chunk(kind: bytes, data: bytes) -> bytes:
        check = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + check

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


class TileServer:
    """The agency's tile server, on 127.0.0.1: {z}/{x}/{y}.png, and the paths it was asked."""

    def __init__(self) -> None:
        self.tile = png_tile()
        self.paths: list[str] = []
        self.server: asyncio.Server | None = None
        self.origin = ""

    @property
    def url(self) -> str:
        return self.origin + "/{z}/{x}/{y}.png"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode("latin-1").split()
            while (await reader.readline()).strip():
                pass  # headers
            path = request[1] if len(request) == 3 else ""
            self.paths.append(path)
            if TILE_PATH.fullmatch(path):
                head = "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
                body = self.tile
            else:
                head, body = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n", b"no"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass  # the page went away
        finally:
            writer.close()

    async def __aenter__(self) -> TileServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.origin = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


# Opens the console on a site with two units; its keywords are the console's settings.
OpenConsole = Callable[..., contextlib.AbstractAsyncContextManager[Screen]]


@pytest.fixture
def console_of_two_units(
    browser: Browser,
    broker_url: str,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    car: Callable[[str], str],
) -> OpenConsole:
    """A dispatcher's console, open and live, on a center configured with `console` settings
    (see configure) and two units on the map: one parked, one driving."""

    @contextlib.asynccontextmanager
    async def opened(also: tuple[str, ...] = (), **console: str) -> AsyncIterator[Screen]:
        configure(monkeypatch, **console)
        lat, lon = SCENE
        places = {car("car1"): place(lat, lon - 0.006), car("car2"): place(lat, lon + 0.006, 80, 8)}
        async with (
            running_site(broker_url, unique, tmp_path, idle_lock_s=600) as site,
            units(site, broker_url, tmp_path, places),
            screen_of(browser, site, "dana", Role.DISPATCHER, also=also) as desk,
        ):
            await desk.open("/console", CONSOLE_READY)
            await desk.until("rtccConsole.markers.count === 2")
            await expect(desk.page.locator("#roster .roster-row")).to_have_count(2)
            yield desk

    return opened


async def test_overlays_are_drawn_with_their_names_over_the_grid_without_a_tile_server(
    console_of_two_units: OpenConsole, tmp_path: Path, car: Callable[[str], str]
) -> None:
    overlays = json.dumps(write_overlays(tmp_path))
    async with console_of_two_units(overlays=overlays) as desk:
        # A small fleet: every unit's id is written beside its marker.
        names = desk.page.locator(".leaflet-marker-icon .um-label")
        await expect(names).to_have_count(2)
        assert sorted(await names.all_text_contents()) == [car("car1"), car("car2")]
        await desk.until(f"({OVERLAY_CONTROL}).length === 2")
        assert await desk.value(OVERLAY_CONTROL) == [["beats", True], ["districts", True]]
        assert await desk.value(GEOJSON_DRAWN) == [[2, True], [2, True]]
        # Every named feature has its name written on the map, not only on hover.
        labels = desk.page.locator(".overlay-label")
        await expect(labels).to_have_text(["Beat 11", "Beat 12", "First Precinct", "Station"])
        for n in range(4):
            await expect(labels.nth(n)).to_be_visible()
        # The neutral grid (drawn by the page) and a metric scale bar; no attribution.
        await expect(desk.page.locator(".leaflet-tile-container canvas").first).to_be_visible()
        await expect(desk.page.locator(".leaflet-tile-container img")).to_have_count(0)
        await expect(desk.page.locator(".leaflet-control-scale-line")).to_have_text(
            re.compile(r"^\d+ k?m$")
        )
        await expect(desk.page.locator(".leaflet-control-attribution")).to_have_count(0)
        await shoot(desk.page, tmp_path, "console-overlays-grid")
        # A layer switched off takes its names with it.
        await desk.page.locator(".leaflet-control-layers").hover()
        await desk.page.get_by_label("beats").uncheck()
        await expect(labels).to_have_text(["First Precinct", "Station"])
        # Not one tile asked for, from anywhere: the grid is drawn, the overlays are the center's.
        paths = [urlsplit(url).path for url in desk.requests]
        assert not [p for p in paths if TILE_PATH.search(p)], paths
        assert "/api/v1/console/overlays/beats" in paths


async def test_the_agency_tile_server_is_the_only_place_tiles_come_from(
    console_of_two_units: OpenConsole, tmp_path: Path
) -> None:
    async with TileServer() as tiles:
        settings = {"tile_url": tiles.url, "tile_attribution": "City GIS"}
        async with console_of_two_units(also=(tiles.origin,), **settings) as desk:
            loaded = desk.page.locator("img.leaflet-tile-loaded")
            await desk.until("document.querySelectorAll('img.leaflet-tile-loaded').length >= 4")
            await expect(loaded.first).to_be_visible()
            # The agency's tiles instead of the grid, with its attribution and the scale bar.
            await expect(desk.page.locator(".leaflet-tile-container canvas")).to_have_count(0)
            await expect(desk.page.locator(".leaflet-control-attribution")).to_contain_text(
                "City GIS"
            )
            await expect(desk.page.locator(".leaflet-control-scale-line")).to_be_visible()
            await shoot(desk.page, tmp_path, "console-agency-tiles")
            # Zoomed in: the next level's tiles come from the same server.
            await desk.page.locator(".leaflet-control-zoom-in").click()
            await desk.until(
                f"[...document.querySelectorAll('img.leaflet-tile-loaded')]"
                f".some((t) => t.src.includes('/{ZOOM + 1}/'))"
            )
            tile_requests = [url for url in desk.requests if TILE_PATH.search(url)]
            assert tile_requests
            assert all(url.startswith(tiles.origin + "/") for url in tile_requests), tile_requests
            assert {urlsplit(url).hostname for url in desk.requests} == {"127.0.0.1"}
            # The server saw the requests the page made, at the configured zoom and the next.
            asked = [TILE_PATH.fullmatch(p) for p in tiles.paths]
            assert all(asked), tiles.paths
            assert {int(m[1]) for m in asked if m} == {ZOOM, ZOOM + 1}
            csp = [said for said in desk.said if "Content Security Policy" in said]
            assert csp == []

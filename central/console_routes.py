"""HTTP for the console, patrol and devices pages: the pages and the browser libraries they
load (served by the center itself: nothing comes from the internet), the map's
configuration, the live feed (Server-Sent Events), a unit's recent events, and alerts with
their acknowledgement."""

# No `from __future__ import annotations`: the routes' signatures hold the gate's
# dependencies, which FastAPI must evaluate where the routes are defined.

import asyncio
import mimetypes
from enum import Enum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, JsonValue

from central.access.policy import Action
from central.alerts import Acknowledgement, AlertDesk, AlertView
from central.api import UnitIdPath
from central.console_hub import ConsoleHub
from central.console_settings import ConsoleSettings, MapView
from central.errors import CenterError, Forbidden, NotFound, TooLarge, UnknownUnit
from central.gate import Caller, Gate
from central.live_feed import CONSOLE, unit_audience

STATIC = Path(__file__).resolve().parent / "static"
NODE_MODULES = Path(__file__).resolve().parents[1] / "node_modules"
# Browser libraries the pages load, from what `make setup` installs with npm (pinned).
NPM_PACKAGES = {
    "leaflet": "leaflet/dist",
    "leaflet.markercluster": "leaflet.markercluster/dist",
}
MAX_OVERLAY_BYTES = 20_000_000
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Overlay(ApiModel):
    name: str
    url: str


class ConsoleConfig(ApiModel):
    tile_url: str | None
    tile_attribution: str
    overlays: list[Overlay]
    share_radius_m: float
    share_ttl_s: float
    map: MapView | None
    wall_max: int = 16


class UnitEvent(ApiModel):
    id: str
    type: str
    ts: float
    received: float
    data: dict[str, JsonValue]


def served_file(root: Path, name: str) -> Path:
    """`name` inside `root`, if it is a file there (never outside it)."""
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise NotFound("no such file")
    return path


def file_response(path: Path) -> FileResponse:
    media = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    return FileResponse(
        path, media_type=media or "application/octet-stream", headers={"Cache-Control": "no-cache"}
    )


def page_policy(settings: ConsoleSettings) -> str:
    """What a page may load: this center only (and the agency's tile server, if any)."""
    images = "'self' data: blob:"
    if settings.tile_url:
        parts = urlsplit(settings.tile_url.replace("{s}", "a"))
        images += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; "
        f"img-src {images}; "
        "media-src 'self' blob:; "
        "style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; "
        "frame-ancestors 'none'; "
        "base-uri 'none'"
    )


def add_page_routes(app: FastAPI, settings: ConsoleSettings) -> None:
    policy = page_policy(settings)

    def page(name: str) -> FileResponse:
        response = file_response(served_file(STATIC / name, "index.html"))
        response.headers["Content-Security-Policy"] = policy
        return response

    @app.get("/console", include_in_schema=False)
    def console_page() -> FileResponse:
        return page("console")

    @app.get("/patrol", include_in_schema=False)
    def patrol_page() -> FileResponse:
        return page("patrol")

    @app.get("/devices", include_in_schema=False)
    def devices_page() -> FileResponse:
        return page("devices")

    @app.get("/console/", include_in_schema=False)
    def console_slash() -> RedirectResponse:
        return RedirectResponse("/console")

    # Before the pages' own assets: `/assets/{area}/...` would take `npm` as an area.
    @app.get("/assets/npm/{package}/{name:path}", include_in_schema=False)
    def npm_asset(package: str, name: str) -> FileResponse:
        where = NPM_PACKAGES.get(package)
        if where is None:
            raise NotFound("no such package")
        return file_response(served_file(NODE_MODULES / where, name))

    @app.get("/assets/{area}/{name:path}", include_in_schema=False)
    def page_asset(area: str, name: str) -> FileResponse:
        if area not in ("console", "patrol", "devices", "view", "lib"):
            raise NotFound("no such file")
        return file_response(served_file(STATIC / area, name))


def add_console_routes(
    app: FastAPI, hub: ConsoleHub, desk: AlertDesk, gate: Gate, settings: ConsoleSettings
) -> None:
    add_page_routes(app, settings)
    add_feed_routes(app, hub, gate, settings)
    add_alert_routes(app, hub, desk, gate)


def add_feed_routes(app: FastAPI, hub: ConsoleHub, gate: Gate, settings: ConsoleSettings) -> None:
    tags: list[str | Enum] = ["console"]
    a_page = Depends(gate.require(Action.UNITS_LIST, Action.SHARES_RECEIVE))

    @app.get("/api/v1/console/config", tags=tags, dependencies=[a_page])
    def console_config() -> ConsoleConfig:
        overlays = [
            Overlay(name=name, url=f"/api/v1/console/overlays/{name}") for name in settings.overlays
        ]
        return ConsoleConfig(
            tile_url=settings.tile_url,
            tile_attribution=settings.tile_attribution,
            overlays=overlays,
            share_radius_m=settings.share_radius_m,
            share_ttl_s=settings.share_ttl_s,
            map=settings.map,
        )

    @app.get(
        "/api/v1/console/overlays/{name}", tags=tags, dependencies=[a_page], responses={404: {}}
    )
    def overlay(name: str) -> FileResponse:
        path = settings.overlays.get(name)
        if path is None or not path.is_file():
            raise NotFound("no such overlay")
        if path.stat().st_size > MAX_OVERLAY_BYTES:
            raise TooLarge("overlay too large")
        return FileResponse(path, media_type="application/geo+json")

    @app.get(
        "/api/v1/live",
        tags=tags,
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def live(
        request: Request,
        caller: Annotated[Caller, a_page],
        last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    ) -> StreamingResponse:
        """The page's live feed (Server-Sent Events): a snapshot, then units, alerts,
        streams and shares as they change; a reconnecting page sends Last-Event-ID and gets
        what it missed. A patrol login hears only of its own unit and its shares."""
        if caller.principal.may(Action.UNITS_LIST):
            audience = CONSOLE
        elif caller.principal.unit_id is not None:
            audience = unit_audience(caller.principal.unit_id)
        else:
            raise Forbidden("this login has no unit to follow")

        async def still_allowed() -> bool:
            try:
                await asyncio.to_thread(gate.identify, request, False)
            except CenterError:
                return False
            return True

        return StreamingResponse(
            hub.follow(audience, last_event_id, still_allowed),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


def add_alert_routes(app: FastAPI, hub: ConsoleHub, desk: AlertDesk, gate: Gate) -> None:
    tags: list[str | Enum] = ["alerts"]

    @app.get(
        "/api/v1/units/{unit_id}/events",
        tags=tags,
        dependencies=[Depends(gate.require(Action.UNIT_VIEW))],
        responses={404: {}},
    )
    def unit_events(
        unit_id: UnitIdPath, limit: Annotated[int, Query(ge=1, le=100)] = 20
    ) -> list[UnitEvent]:
        """The unit's recent events, newest first."""
        if hub.fleet.registry.get(unit_id) is None:
            raise UnknownUnit(unit_id)
        kept = list(hub.recent_events.get(unit_id, ()))
        return [
            UnitEvent(id=e.id, type=e.event.type, ts=e.ts, received=e.received, data=e.event.data)
            for e in reversed(kept[-limit:])
        ]

    @app.get("/api/v1/alerts", tags=tags, dependencies=[Depends(gate.require(Action.ALERTS_READ))])
    def list_alerts(
        unit_id: UnitIdPath | None = None,
        open: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AlertView]:
        """Newest first; `open`: only those nobody has acknowledged."""
        if open:
            return [a for a in desk.open_alerts(limit) if unit_id is None or a.unit_id == unit_id]
        return desk.recent(limit, unit_id)

    @app.post("/api/v1/alerts/{alert_id}/ack", tags=tags, responses={404: {}, 409: {}})
    async def acknowledge(
        alert_id: str,
        body: Acknowledgement,
        caller: Annotated[Caller, Depends(gate.require(Action.ALERTS_ACKNOWLEDGE))],
    ) -> AlertView:
        """Acknowledges the alert with a note (audited); every console hears of it."""
        alert = await asyncio.to_thread(desk.acknowledge, caller, alert_id[:64], body.note)
        desk.acknowledged(alert)
        return alert

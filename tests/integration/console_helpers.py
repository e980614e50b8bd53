"""The console and patrol pages in Chromium against a whole center: a signed-in browser
window per person, units driving where a test puts them, and a TCP path between browser and
center that a test can cut (a page losing its connection)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, Response

from agent.service import Agent
from central.access.policy import Role
from tests.integration.browser_helpers import SIZES
from tests.integration.center_helpers import agent_of
from tests.integration.site_helpers import PASSWORD, Site
from tests.integration.test_signin_browser import current_code

WAIT_MS = 20_000
POLL_S = 0.05
# Position updates twice a second, so that a test sees units move.
QUICK_POSITIONS = {"position_min_interval_s": 0.5, "position_min_distance_m": 1.0}


def place(lat: float, lon: float, radius_m: float = 5.0, speed_mps: float = 0.0) -> dict[str, Any]:
    """Where a simulated unit drives: circles of `radius_m` around (lat, lon)."""
    return {
        "lat": lat,
        "lon": lon,
        "radius_m": radius_m,
        "speed_mps": speed_mps,
        "event_interval_s": 0,
    }


class Screen:
    """One person's browser window on the center: notes every request the page makes and
    every script error, so that a test can check none went elsewhere and none failed."""

    def __init__(
        self, context: BrowserContext, page: Page, base: str, also: tuple[str, ...] = ()
    ) -> None:
        self.context = context
        self.page = page
        self.base = base
        self.also = also  # origins besides the center's that the page may load from
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.said: list[str] = []  # the page's console, to explain a failure
        page.on("console", lambda message: self.said.append(f"{message.type}: {message.text}"))
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("response", self._answered)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _answered(self, response: Response) -> None:
        if response.status >= 400:
            self.said.append(f"HTTP {response.status} {response.request.method} {response.url}")

    async def sign_in(self, name: str, secret: str | None) -> None:
        """Signs in from the home page, with the page's own fetch (its cookies, its origin)."""
        await self.page.goto(self.base + "/")
        body = {
            "name": name,
            "password": PASSWORD,
            "code": current_code(secret) if secret else None,
        }
        status = await self.page.evaluate(
            """async (body) => (await fetch("/api/v1/session", {method: "POST",
                 headers: {"Content-Type": "application/json"}, body})).status""",
            json.dumps(body),
        )
        assert status == 200, status

    async def open(self, path: str, ready: str) -> None:
        """Goes to `path` and waits until `ready` (a script expression) is true."""
        await self.page.goto(self.base + path)
        await self.until(ready)

    async def until(self, expression: str, arg: Any = None, timeout_ms: float = WAIT_MS) -> Any:
        """Waits until `expression` (or the function it is, called with `arg`) is true.
        Polled with evaluate(): wait_for_function evaluates strings, which the pages'
        Content-Security-Policy (kept on in tests) refuses."""
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        while not (value := await self.page.evaluate(expression, arg)):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"not true within {timeout_ms / 1000} s: {expression}\n"
                    f"errors: {self.errors}\nconsole: {self.said[-20:]}"
                )
            await asyncio.sleep(POLL_S)
        return value

    async def value(self, expression: str) -> Any:
        return await self.page.evaluate(expression)

    async def status_of(self, method: str, path: str, body: str | None = None) -> int:
        """The status of a fetch made by the page itself, with the CSRF header."""
        status = await self.page.evaluate(
            """async ([method, path, body]) => {
                 const csrf = (document.cookie.split("; ").find((c) => c.startsWith("rtcc_csrf="))
                   || "=").split("=")[1];
                 const headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf};
                 return (await fetch(path, {method, headers, body})).status;
               }""",
            [method, path, body],
        )
        assert isinstance(status, int)
        return status

    def check_clean(self) -> None:
        assert self.errors == [], self.errors
        allowed = tuple(f"{origin}/" for origin in (self.base, *self.also))
        elsewhere = [url for url in self.requests if not url.startswith(allowed)]
        assert elsewhere == [], elsewhere


@contextlib.asynccontextmanager
async def screen_of(
    browser: Browser,
    site: Site,
    name: str,
    role: Role,
    unit_id: str | None = None,
    base: str | None = None,
    also: tuple[str, ...] = (),
) -> AsyncIterator[Screen]:
    """A new browser window, signed in as a new user `name` with `role`; its pages load
    from the center and the origins in `also` only."""
    site.add(name, role, unit_id)
    width, height = SIZES[0]
    context = await browser.new_context(viewport={"width": width, "height": height})
    try:
        screen = Screen(context, await context.new_page(), base or site.central.api_url, also)
        await screen.sign_in(name, site.secrets[name])
        yield screen
        screen.check_clean()
    finally:
        await context.close()


@contextlib.asynccontextmanager
async def units(
    site: Site, broker_url: str, tmp_path: Path, places: dict[str, dict[str, Any]], **agent: Any
) -> AsyncIterator[dict[str, Agent]]:
    """A running agent per unit id, each driving where `places` says."""
    async with contextlib.AsyncExitStack() as stack:
        running = {}
        for unit_id, where in places.items():
            running[unit_id] = await stack.enter_async_context(
                agent_of(
                    site.central,
                    unit_id,
                    broker_url,
                    tmp_path / unit_id,
                    sim=where,
                    runtime=QUICK_POSITIONS,
                    **agent,
                )
            )
        yield running


def online(site: Site, unit_id: str) -> bool:
    fleet = site.central.fleet
    assert fleet is not None
    record = fleet.registry.get(unit_id)
    return record is not None and bool(record.online)


class CuttablePath:
    """A TCP relay between the browser and the center that a test can cut: every open
    connection is dropped and new ones are refused until it is restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.open = True
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CuttablePath:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.cut()
        await self.server.wait_closed()

    async def cut(self) -> None:
        """Drops every connection at once (as a dead link would) and waits for the pipes."""
        self.open = False
        for writer in list(self.writers):
            writer.transport.abort()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    def restore(self) -> None:
        self.open = True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self.pipes.add(task)
        self.writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self.writers.add(up_writer)
            try:
                await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
            finally:
                up_writer.transport.abort()
                self.writers.discard(up_writer)
        except OSError:
            pass  # cut, or the other end went away
        finally:
            writer.transport.abort()
            self.writers.discard(writer)
            self.pipes.discard(task)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()

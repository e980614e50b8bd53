"""Viewers that re-join by themselves: the bench's test viewer with `--rejoin` (the viewer
page has its own tests in test_browser.py, on the same `relay_site`). The relay goes away
and comes back at the same address, as a restarted relay worker or center does, and the
stream is published again under the same id; or a session stops sending while its
connection stays up, as one on a crashed worker does until ICE gives up."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from importlib import resources

import httpx
import uvicorn
from fastapi.responses import FileResponse, HTMLResponse

from bench.media_peers import Viewer
from central.broker import free_port
from central.console_routes import STATIC, file_response, served_file
from central.relay import dtls, passthrough
from central.relay.api import create_relay_app
from central.relay.session import Relay
from firmware_bridge.sim.synthetic import SyntheticCamera
from runtime.http import EmbeddedServer
from tests.helpers import json_line, python_module, wait_for
from tests.integration.relay_helpers import CONFIG, SIGNER, publishing, viewer_token

PAGE = resources.files("central.static").joinpath("view.html").read_text()


class RelaySite:
    """A relay worker that also serves the viewer page on its own origin (as the center's
    front does), on a fixed port so that it can go away and come back at the same address."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._running: tuple[Relay, EmbeddedServer, asyncio.Task[None]] | None = None

    @property
    def relay(self) -> Relay:
        assert self._running is not None, "the relay is stopped"
        return self._running[0]

    def page_url(self, stream: str, token: str) -> str:
        return f"{self.base}/view/{stream}#token={token}"

    async def start(self) -> None:
        passthrough.install()
        dtls.install()
        relay = Relay(CONFIG, loopback_only=True)
        app = create_relay_app(relay, SIGNER)

        @app.get("/view/{stream_id}")
        def view(stream_id: str) -> HTMLResponse:
            return HTMLResponse(PAGE)

        @app.get("/assets/{area}/{name}")
        def asset(area: str, name: str) -> FileResponse:  # the page's modules
            return file_response(served_file(STATIC / area, name))

        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = EmbeddedServer(config)
        task = asyncio.create_task(server.serve())
        await wait_for(lambda: server.started or task.done())
        if task.done():
            task.result()
            raise RuntimeError("the relay did not start")
        self._running = (relay, server, task)

    async def stop(self) -> None:
        """Gone at once, as a crashed worker: every session ends and nothing answers."""
        if self._running is None:
            return
        relay, server, task = self._running
        self._running = None
        await relay.close()
        server.should_exit = True
        await task

    def sessions(self, stream: str) -> set[str]:
        found = self.relay.streams.get(stream)
        return set(found.viewers) if found else set()

    def freeze_viewers(self, stream: str) -> set[str]:
        """Stop sending to every viewer of the stream while their connections stay up;
        returns their sessions."""
        found = self.relay.streams[stream]
        for viewer in found.viewers.values():
            found.fanout.remove_viewer(viewer.track.queue)
        return set(found.viewers)


@contextlib.asynccontextmanager
async def relay_site() -> AsyncIterator[RelaySite]:
    site = RelaySite()
    await site.start()
    try:
        yield site
    finally:
        await site.stop()


def camera() -> SyntheticCamera:
    return SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=1)


@contextlib.asynccontextmanager
async def rejoining(viewer: Viewer, url: str, token: str) -> AsyncIterator[asyncio.Task[None]]:
    async with httpx.AsyncClient(timeout=10) as http:
        task = asyncio.create_task(viewer.keep_joined(http, url, token, stall_s=3.0))
        try:
            yield task
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await viewer.pc.close()


async def test_rejoining_viewer_comes_back_after_the_relay_restarts() -> None:
    stream = "restart"
    async with relay_site() as site:
        viewer = Viewer("vp8")
        counting_from = time.time()
        viewer.count_from(counting_from)
        async with rejoining(viewer, f"{site.base}/whep/{stream}", viewer_token(stream)):
            # Not published yet: 404, and the viewer keeps trying.
            async with publishing(site.base, stream, camera()):
                await wait_for(lambda: len(viewer.decoded_at) > 30, timeout=20)
            await site.stop()
            lost_at = time.time()
            await site.start()
            async with publishing(site.base, stream, camera()):
                await wait_for(lambda: sum(t > lost_at for t in viewer.arrivals) > 30, timeout=30)
                assert viewer.joins >= 2
                assert len(site.sessions(stream)) == 1
                assert viewer.pc.connectionState == "connected"
                assert counting_from + viewer.decoded_at[-1] > lost_at  # decoding again
        assert viewer.refused is None


async def test_rejoining_viewer_stops_when_refused() -> None:
    async with relay_site() as site, publishing(site.base, "mine", camera()):
        viewer = Viewer("vp8")
        other = viewer_token("other")
        async with rejoining(viewer, f"{site.base}/whep/mine", other) as task:
            await asyncio.wait_for(task, 10)
        assert (viewer.refused, viewer.joins, site.sessions("mine")) == (403, 0, set())


async def test_rejoining_viewer_process_reports_every_session() -> None:
    """As the benches run it: a session that stops sending is left (DELETE) and joined
    again, and the JSON result counts the joins and keeps the arrivals of both sessions."""
    stream = "frozen"
    async with relay_site() as site, publishing(site.base, stream, camera()):
        proc = await python_module(
            "bench.media_peers", "view", f"{site.base}/whep/{stream}", viewer_token(stream),
            "--rejoin", "--warmup", "0.5", "--seconds", "9",
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert await json_line(proc) == {"ready": True}
            fanout = site.relay.streams[stream].fanout
            measured_from = fanout.frames_in
            await wait_for(lambda: fanout.frames_in > measured_from + 15)  # some before the gap
            frozen = site.freeze_viewers(stream)
            assert len(frozen) == 1
            # The frozen session is DELETEd and a new one joins.
            await wait_for(lambda: (now := site.sessions(stream)) and not now & frozen, timeout=15)
            assert len(site.sessions(stream)) == 1
            result = await json_line(proc)
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()
    assert result["joins"] == 2 and result["refused"] is None
    assert result["state"] == "connected"
    arrivals = result["arrivals"]
    gaps = [(b - a, b) for a, b in itertools.pairwise(arrivals)]
    gap, resumed = max(gaps)
    assert gap > 2.5  # the frozen session, until the stall was noticed
    assert sum(t >= resumed for t in arrivals) > 30
    assert any(t >= resumed for t in result["decoded_at"])

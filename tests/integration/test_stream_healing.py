"""Streams the center wants live come back by themselves, under the same stream id: after
a relay worker is killed, after the agent restarts, after the center restarts."""

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import httpx

from central.broker import free_port
from central.service import Central
from tests.center_tls import ca_file, client_tls
from tests.helpers import running_agent, wait_for
from tests.integration.center_helpers import (
    LOOPBACK_ICE,
    agent_of,
    api_client,
    central_settings,
    running_central,
)
from tests.integration.relay_helpers import RelayViewer

VIDEO = {"width": 320, "height": 240, "codec": "vp8"}


async def live_streams(http: httpx.AsyncClient) -> dict[str, Any]:
    return {s["stream_id"]: s for s in (await http.get("/api/v1/streams")).json() if s["live"]}


async def wait_for_live(http: httpx.AsyncClient, stream_id: str) -> dict[str, Any]:
    """The API's view catches up with the relay within a reconcile pass or two."""
    deadline = time.monotonic() + 10
    while (streams := await live_streams(http)).keys() != {stream_id}:
        assert time.monotonic() < deadline, streams
        await asyncio.sleep(0.1)
    return streams


async def started(http: httpx.AsyncClient, unit: str) -> dict[str, Any]:
    answer = await http.post(f"/api/v1/units/{unit}/stream", json={"reason": "test"})
    assert answer.status_code == 200, answer.text
    grant: dict[str, Any] = answer.json()
    return grant


async def decoding_again(central: Central, stream_id: str, token: str) -> RelayViewer:
    """A viewer joined anew (as a page does after its session died) decodes frames."""
    while True:
        viewer = RelayViewer("vp8")
        joined = await viewer.join(central.api_url, stream_id, token, client_tls())
        if joined.status_code == 201:
            with contextlib.suppress(AssertionError):
                await wait_for(lambda v=viewer: v.frames > 5, timeout=3)  # type: ignore[misc]
                return viewer
        await viewer.close()
        await asyncio.sleep(0.2)


async def test_relay_worker_killed_stream_back_under_the_same_id(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    async with running_central(broker_url, unique, tmp_path) as central:
        assert central.relay is not None and central.fleet is not None
        unit = f"u-{unique}"
        async with (
            agent_of(central, unit, broker_url, tmp_path / "agent", video=VIDEO),
            api_client(central) as http,
        ):
            await wait_for(lambda: (r := central.fleet.registry.get(unit)) and r.online)  # type: ignore[union-attr]
            grant = await started(http, unit)
            worker = central.relay.pool.workers[0]
            assert worker.proc is not None
            worker.proc.kill()
            killed = time.monotonic()
            await wait_for(lambda: worker.restarts == 1, timeout=10)
            viewer = await asyncio.wait_for(
                decoding_again(central, grant["stream_id"], grant["token"]), 20
            )
            back = time.monotonic() - killed
            print(f"relay worker kill -9: video decoding again after {back:.2f} s")
            streams = await wait_for_live(http, grant["stream_id"])
            assert streams[grant["stream_id"]]["restarts"] >= 1
            await viewer.close()


async def test_agent_restart_resumes_its_stream(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    async with running_central(broker_url, unique, tmp_path) as central:
        assert central.fleet is not None
        unit = f"u-{unique}"
        agent_kw: dict[str, Any] = {
            "center_url": central.api_url,
            "center_ca_file": ca_file(),
            "ice": LOOPBACK_ICE,
            "video": VIDEO,
        }
        async with api_client(central) as http:
            async with running_agent(unit, broker_url, tmp_path / "agent", **agent_kw):
                await wait_for(lambda: (r := central.fleet.registry.get(unit)) and r.online)  # type: ignore[union-attr]
                grant = await started(http, unit)
            async with running_agent(unit, broker_url, tmp_path / "agent", **agent_kw) as again:
                await wait_for(lambda: again.streams.live, timeout=10)
                viewer = await asyncio.wait_for(
                    decoding_again(central, grant["stream_id"], grant["token"]), 20
                )
                assert list(await wait_for_live(http, grant["stream_id"])) == [grant["stream_id"]]
                await viewer.close()
                stopped = await http.delete(f"/api/v1/units/{unit}/stream")
                assert stopped.json() == {"stopped": [grant["stream_id"]]}
                await wait_for(lambda: not again.streams.live)
            async with running_agent(unit, broker_url, tmp_path / "agent", **agent_kw) as third:
                assert third.streams.stream_id is None  # a stopped order is not resumed


async def test_a_viewer_joining_before_the_publisher_is_back_is_held_until_it_is(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    """After a center restart its relay knows no stream until the unit publishes again: a
    join for a stream the center wants waits for it, instead of a 404 that sends the
    viewer into its backoff."""
    unit = f"u-{unique}"

    def center() -> Central:
        settings = central_settings(broker_url, unique, tmp_path)
        settings.relay.viewer_hold_s = 30.0  # longer than a loaded machine takes
        return Central(settings)

    central = center()
    await central.start()
    try:
        async with (
            agent_of(central, unit, broker_url, tmp_path / "agent", video=VIDEO),
            api_client(central) as http,
        ):
            await wait_for(lambda: (r := central.fleet.registry.get(unit)) and r.online)  # type: ignore[union-attr]
            grant = await started(http, unit)
            await wait_for_live(http, grant["stream_id"])
        await central.stop()
        central = center()
        await central.start()
        relay = central.relay
        assert relay is not None
        viewer = RelayViewer("vp8")
        joining = asyncio.create_task(
            viewer.join(central.api_url, grant["stream_id"], grant["token"], client_tls(), 40)
        )
        await wait_for(lambda: relay.hold.held == 1 or joining.done())
        assert not joining.done()
        async with agent_of(central, unit, broker_url, tmp_path / "agent", video=VIDEO):
            joined = await asyncio.wait_for(joining, 40)
            assert joined.status_code == 201, joined.text
            await wait_for(lambda: viewer.frames > 5, timeout=10)
            assert relay.hold.held == 0
            await viewer.close()
    finally:
        await central.stop()


async def test_center_restart_keeps_desired_streams_and_tokens(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    unit = f"u-{unique}"
    port = free_port()
    central = Central(central_settings(broker_url, unique, tmp_path, port))
    await central.start()
    try:
        assert central.fleet is not None
        async with agent_of(central, unit, broker_url, tmp_path / "agent", video=VIDEO) as agent:
            async with api_client(central) as http:
                await wait_for(lambda: (r := central.fleet.registry.get(unit)) and r.online)  # type: ignore[union-attr]
                grant = await started(http, unit)
            await central.stop()
            central = Central(central_settings(broker_url, unique, tmp_path, port))
            await central.start()
            stopped = time.monotonic()
            viewer = await asyncio.wait_for(
                decoding_again(central, grant["stream_id"], grant["token"]), 30
            )
            print(f"center restart: video decoding again {time.monotonic() - stopped:.2f} s after")
            assert agent.streams.stream_id == grant["stream_id"]
            await viewer.close()
    finally:
        await central.stop()

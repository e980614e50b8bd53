"""A simulated body-cam served on loopback, and waits on an agent's state and on the API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agent.service import Agent
from firmware_bridge.sim.bodycam import SimulatedBodycam
from firmware_bridge.sim.bodycam_server import BodycamServer
from protocol import UnitState
from tests.helpers import wait_for


@contextlib.asynccontextmanager
async def bodycam(serial: str, **options: Any) -> AsyncIterator[tuple[BodycamServer, str]]:
    server = BodycamServer(SimulatedBodycam(serial, **options))
    link = await server.serve_tcp("127.0.0.1", 0)
    port = link.sockets[0].getsockname()[1]
    ticker = asyncio.create_task(server.tick_loop())
    try:
        yield server, f"tcp://127.0.0.1:{port}"
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        link.close()
        await server.disconnect_all()
        await link.wait_closed()
        server.close()


async def wait_for_state(
    agent: Agent, check: Callable[[UnitState], Any], timeout: float = 10
) -> UnitState:
    await wait_for(lambda: (s := agent.current_state()) is not None and check(s), timeout)
    state = agent.current_state()
    assert state is not None
    return state


async def wait_for_async(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)

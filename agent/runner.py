"""`rtcc agent`: one unit's agent until told to stop."""

from __future__ import annotations

import asyncio
import zlib

from agent.config import AgentSettings
from agent.service import Agent
from firmware_bridge import SimulatedUnit, StatusSource


def simulated_source(settings: AgentSettings) -> StatusSource:
    sim = settings.sim
    seed = sim.seed if sim.seed is not None else zlib.crc32(settings.unit_id.encode())
    return SimulatedUnit(
        seed=seed,
        center_lat=sim.lat,
        center_lon=sim.lon,
        radius_m=sim.radius_m,
        speed_mps=sim.speed_mps,
        event_interval_s=sim.event_interval_s,
    )


async def run_until(stop: asyncio.Event, settings: AgentSettings) -> None:
    agent = Agent(settings, simulated_source(settings))
    await agent.start()
    try:
        await stop.wait()
    finally:
        await agent.stop()

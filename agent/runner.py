"""`rtcc agent`: one unit's agent until told to stop."""

from __future__ import annotations

import asyncio

from agent.config import AgentSettings
from agent.service import Agent
from agent.vehicle import Vehicle
from agent.vehicle.gpsd import GpsdVehicle
from agent.vehicle.simulator import simulated_vehicle


def vehicle_from(settings: AgentSettings) -> Vehicle:
    """The position source the configuration names (vehicle.source)."""
    vehicle = settings.vehicle
    if vehicle.source == "gpsd":
        return GpsdVehicle(vehicle.gpsd_host, vehicle.gpsd_port, vehicle.fix_stale_s)
    sim = settings.sim
    return simulated_vehicle(
        settings.unit_id,
        sim.lat,
        sim.lon,
        sim.radius_m,
        sim.speed_mps,
        sim.event_interval_s,
        sim.seed,
    )


async def run_until(stop: asyncio.Event, settings: AgentSettings) -> None:
    agent = Agent(settings, vehicle_from(settings))
    await agent.start()
    try:
        await stop.wait()
    finally:
        await agent.stop()

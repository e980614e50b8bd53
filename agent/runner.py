"""`rtcc agent`: one unit's agent until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import time

from agent.config import AgentSettings
from agent.health_server import HealthServer, collect
from agent.sd_notify import Notifier, keep_watchdog, watchdog_interval
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
    """Runs the agent; tells systemd when it is up (READY=1) and, under WatchdogSec=, feeds
    its watchdog while the loops are healthy; serves its health when health.port is set."""
    agent = Agent(settings, vehicle_from(settings))
    notifier = Notifier()
    await agent.start()
    server = None
    watchdog = None
    try:
        if settings.health.port is not None:
            server = HealthServer(
                settings.health.host, settings.health.port, lambda: collect(agent, time.time())
            )
            await server.start()
        interval = watchdog_interval()
        if interval is not None:
            watchdog = asyncio.create_task(
                keep_watchdog(notifier, interval, lambda: agent.health.beats.stalled(time.time()))
            )
        notifier.send("READY=1")
        await stop.wait()
    finally:
        notifier.send("STOPPING=1")
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if server is not None:
            await server.close()
        await agent.stop()
        notifier.close()

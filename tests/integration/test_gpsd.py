"""The vehicle source `gpsd`: gpsd's own gpsfake replays an NMEA log of a patrol car; the
unit's state carries its fix, and says so when gpsd goes away (the agent keeps running)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.vehicle.gpsd import GpsdVehicle
from protocol.models import FixKind
from tests.helpers import running_agent, running_center, wait_for

LOG = Path(__file__).parents[1] / "data" / "patrol.nmea"
pytestmark = pytest.mark.skipif(
    shutil.which("gpsfake") is None, reason="gpsfake not installed (Debian: gpsd-clients)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


@contextlib.asynccontextmanager
async def gpsfake(port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """gpsd fed from the log, a sentence every 50 ms, over and over."""
    process = await asyncio.create_subprocess_exec(
        "gpsfake", "-q", "-c", "0.05", "-P", str(port), str(LOG),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            if await accepts(port):
                break
            if process.returncode is not None:
                pytest.fail("gpsfake exited before gpsd listened")
            await asyncio.sleep(0.05)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def test_the_vehicle_follows_gpsd_and_says_when_it_goes_away() -> None:
    port = free_port()
    vehicle = GpsdVehicle(port=port, fix_stale_s=2.0)
    task = asyncio.create_task(vehicle.run())
    try:
        assert vehicle.fix_kind(0) is FixKind.NO_GPS
        async with gpsfake(port):
            await wait_for(lambda: vehicle.fix_kind(time.time()) is FixKind.FIX_3D, 20)
            status, events = vehicle.poll(time.time())
            assert events == [] and status.fix is not None
            assert 40.712 < status.fix.lat < 40.717 and status.fix.lon == pytest.approx(-74.006)
            assert status.fix.ts >= 1714564805.0  # the log's own time, 2024-05-01 12:00:05
        await wait_for(lambda: vehicle.fix_kind(time.time()) is FixKind.NO_GPS, 10)
        assert vehicle.poll(time.time())[0].fix is None
        assert not task.done()  # gpsd gone: the source waits for it to come back
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_units_state_carries_the_gpsd_fix_or_says_there_is_none(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    port, unit = free_port(), f"u-{unique}"
    vehicle = {"source": "gpsd", "gpsd_port": port}
    async with (
        running_center(broker_url, f"c-{unique}") as center,
        running_agent(unit, broker_url, tmp_path, vehicle=vehicle),
    ):

        def state_fix() -> FixKind | None:
            record = center.fleet.registry.get(unit)
            state = record.state if record is not None else None
            return state.fix if state is not None else None

        await wait_for(lambda: state_fix() is FixKind.NO_GPS, 15)
        async with gpsfake(port):
            await wait_for(lambda: state_fix() is FixKind.FIX_3D, 30)
            record = center.fleet.registry.get(unit)
            assert record is not None and record.state is not None
            position = record.state.position
            assert position is not None and 40.712 < position.lat < 40.717
        await wait_for(lambda: state_fix() is FixKind.NO_GPS, 15)
        record = center.fleet.registry.get(unit)
        assert record is not None and record.state is not None
        assert record.state.position is None

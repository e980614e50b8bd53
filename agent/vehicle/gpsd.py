"""The vehicle as a real gateway knows it: its position from gpsd (Debian's `gpsd`, JSON
over TCP 2947). Reconnects with jittered backoff; while gpsd is away or has no receiver the
unit reports `no_gps`, without a fix `no_fix`, and never stops for it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from agent.vehicle.gpsd_reports import WATCH, Devices, Report, parse_line
from firmware_bridge.device import DeviceEvent, DeviceStatus, GpsFix
from protocol.models import FixKind
from runtime.backoff import Backoff, Retry

log = structlog.get_logger("rtcc.agent.gpsd")

FIXED = frozenset({FixKind.FIX_2D, FixKind.FIX_3D})
CONNECT_TIMEOUT_S = 5.0
MAX_LINE = 64 * 1024


class GpsdVehicle:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2947,
        fix_stale_s: float = 5.0,
        backoff: Backoff = Backoff(initial_s=0.5, max_s=10.0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host, self.port = host, port
        self.fix_stale_s = fix_stale_s
        self.connected = False
        self._retry = Retry(backoff)
        self._clock = clock
        self._kind = FixKind.NO_GPS
        self._fix: GpsFix | None = None
        self._fix_at = float("-inf")

    def fix_kind(self, now: float) -> FixKind:
        """A fix older than `fix_stale_s` is no fix: the receiver stopped reporting one."""
        if not self.connected:
            return FixKind.NO_GPS
        if self._kind in FIXED and now - self._fix_at > self.fix_stale_s:
            return FixKind.NO_FIX
        return self._kind

    def poll(self, now: float) -> tuple[DeviceStatus, list[DeviceEvent]]:
        """The gateway knows only its position: camera, battery and storage come from the
        body-cam's link when one is attached."""
        fixed = self.fix_kind(now) in FIXED
        status = DeviceStatus(
            model="",
            firmware="",
            camera_connected=False,
            recording=False,
            battery_pct=float("nan"),
            storage_free_bytes=0,
            storage_total_bytes=0,
            fix=self._fix if fixed else None,
            link_type="unknown",
            signal_dbm=None,
        )
        return status, []

    async def run(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, limit=MAX_LINE),
                    CONNECT_TIMEOUT_S,
                )
            except (OSError, TimeoutError) as exc:
                await self._back_off("gpsd_unreachable", error=str(exc))
                continue
            try:
                await self._follow(reader, writer)
            except OSError as exc:
                log.warning("gpsd_failed", error=str(exc)[:200])
            finally:
                self.connected, self._kind = False, FixKind.NO_GPS
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            await self._back_off("gpsd_lost")

    async def _back_off(self, why: str, **facts: str) -> None:
        delay = self._retry.delay()
        self._retry.failed()
        log.warning(why, retry_in_s=round(delay, 2), **facts)
        await asyncio.sleep(delay)

    async def _follow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(WATCH)
        await writer.drain()
        self.connected, self._kind = True, FixKind.NO_GPS
        log.info("gpsd_connected", host=self.host, port=self.port)
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line past MAX_LINE: not gpsd speaking
                log.warning("gpsd_line_too_long")
                return
            if not line:
                return
            self._retry.reset()
            now = self._clock()
            self._apply(parse_line(line, now), now)

    def _apply(self, report: Report | Devices | None, now: float) -> None:
        match report:
            case Devices(count):
                if count == 0:
                    self._kind = FixKind.NO_GPS
                elif self._kind is FixKind.NO_GPS:
                    self._kind = FixKind.NO_FIX
            case Report(kind, fix):
                self._kind = kind
                self._fix, self._fix_at = fix, now

"""The agent's connection to its body-cam over the link (TCP, serial, USB CDC or pty):
reconnects with jittered backoff, treats a silent link as lost, sets the camera's clock when
it drifts, and hands every device event to the agent the moment it arrives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from firmware_bridge.device import DeviceEvent
from firmware_bridge.link.bodycam import BodycamState
from firmware_bridge.link.messages import Haptic, HelloRequest, LinkMessage, Record, Watched
from firmware_bridge.link.session import LinkSession
from firmware_bridge.link.transport import open_link
from runtime.backoff import Backoff, Retry

log = structlog.get_logger("rtcc.agent.bodycam")

READ_SIZE = 4096
WRITE_TICK_S = 0.25


class BodycamConnection:
    def __init__(
        self,
        address: str,
        on_events: Callable[[list[DeviceEvent]], None],
        baud: int = 115200,
        stale_after_s: float = 15.0,
        backoff: Backoff = Backoff(initial_s=0.5, max_s=10.0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self.baud = baud
        self.state = BodycamState(stale_after_s)
        self.session: LinkSession | None = None
        self.connects = 0
        self._on_events = on_events
        self._retry = Retry(backoff)
        self._clock = clock
        self._wake = asyncio.Event()

    def send(self, message: LinkMessage) -> bool:
        """Queue a message for the camera; False when no camera is connected."""
        if self.session is None:
            return False
        self.session.send(message, self._clock())
        self._wake.set()
        return True

    def record(self, on: bool) -> bool:
        """Ask the camera to record (or stop); False when no camera is connected."""
        return self.send(Record(on=on))

    def watched(self, on: bool) -> None:
        """The "being watched" light, and a short buzz when the center joins."""
        self.send(Watched(on=on))
        if on:
            self.send(Haptic(pattern=1, duration_ms=300))

    async def run(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    open_link(self.address, self.baud), timeout=10
                )
            except (OSError, TimeoutError) as exc:
                delay = self._retry.delay()
                self._retry.failed()
                log.warning("bodycam_connect_failed", error=str(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            self._retry.reset()
            self.connects += 1
            log.info("bodycam_link_up", address=self.address)
            try:
                await self._serve(reader, writer)
            finally:
                self.session = None
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            log.warning("bodycam_link_down", address=self.address)
            await asyncio.sleep(self._retry.delay())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = self.session = LinkSession()
        session.send(HelloRequest(), self._clock())
        flusher = asyncio.create_task(self._flush_loop(session, writer))
        try:
            while True:
                try:
                    data = await asyncio.wait_for(
                        reader.read(READ_SIZE), timeout=self.state.stale_after_s
                    )
                except TimeoutError:
                    log.warning("bodycam_silent", after_s=self.state.stale_after_s)
                    return
                except OSError as exc:
                    log.warning("bodycam_read_failed", error=str(exc))
                    return
                if not data:
                    return
                now = self._clock()
                events: list[DeviceEvent] = []
                for message in session.receive(data, now):
                    events += self.state.apply(message, now)
                clock_set = self.state.clock_set(now)
                if clock_set is not None:
                    session.send(clock_set, now)
                if events:
                    self._on_events(events)
                self._wake.set()
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    async def _flush_loop(self, session: LinkSession, writer: asyncio.StreamWriter) -> None:
        while True:
            self._wake.clear()
            data = session.outgoing(self._clock())
            if data:
                writer.write(data)
                with contextlib.suppress(OSError):
                    await writer.drain()
            due = session.next_due()
            wait = WRITE_TICK_S if due is None else max(0.0, min(WRITE_TICK_S, due - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

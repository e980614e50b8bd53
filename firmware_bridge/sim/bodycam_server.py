"""`rtcc bodycam-sim`'s I/O: the simulated body-cam served over TCP or a pty, a line-based
control socket, and a schedule of presses and triggers.

Control lines (one JSON reply each):
    trigger <sensor> [on|off]      e.g. trigger holster_draw
    press <button> [short|long]    e.g. press watch_me long
    battery <percent>
    status
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import tty
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from firmware_bridge.link.messages import Button, Press, Sensor
from firmware_bridge.sim.bodycam import SimulatedBodycam

TICK_S = 0.05
MAX_BUFFERED = 64 * 1024


class ControlError(ValueError):
    pass


class BodycamServer:
    def __init__(self, camera: SimulatedBodycam, clock: Callable[[], float] = time.time) -> None:
        self.camera = camera
        self.clock = clock
        self._write: Callable[[bytes], None] | None = None
        self._pty: tuple[int, int] | None = None
        self._clients: dict[asyncio.StreamWriter, asyncio.Task[Any]] = {}
        self.dropped_bytes = 0

    def _track(self, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[writer] = task

    async def disconnect_all(self) -> None:
        """End every connection so its handler returns (a handler cancelled at shutdown
        makes Python 3.11's asyncio log a spurious traceback)."""
        for writer in list(self._clients):
            writer.close()
        await asyncio.gather(*self._clients.values(), return_exceptions=True)

    def close(self) -> None:
        if self._pty is not None:
            asyncio.get_running_loop().remove_reader(self._pty[0])
            for fd in self._pty:
                os.close(fd)
            self._pty = None

    # ---- the link ---------------------------------------------------------------------

    async def serve_tcp(self, host: str, port: int) -> asyncio.Server:
        """One gateway at a time; a new connection replaces the old one."""
        return await asyncio.start_server(self._gateway, host, port)

    async def _gateway(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track(writer)
        self.camera.connect(self.clock())

        def write(data: bytes) -> None:
            if writer.transport.get_write_buffer_size() > MAX_BUFFERED:
                self.dropped_bytes += len(data)  # the gateway stopped reading: a bound
            else:
                writer.write(data)

        self._write = write
        try:
            while data := await reader.read(4096):
                self.camera.receive(data, self.clock())
                self._flush()
        except OSError:
            pass
        finally:
            if self._write is write:
                self._write = None
                self.camera.disconnect()
            writer.close()
            self._clients.pop(writer, None)

    def open_pty(self) -> str:
        """A pty pair: the gateway opens the returned path as if it were the USB serial port."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        path = os.ttyname(slave)
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""  # EIO: no one has the other end open
            if data:
                self.camera.receive(data, self.clock())
                self._flush()

        def write(data: bytes) -> None:
            try:
                os.write(master, data)
            except OSError:
                self.dropped_bytes += len(data)  # nobody reading: a cable pulled

        loop.add_reader(master, readable)
        self._write = write
        self._pty = (master, slave)
        return path

    def _flush(self) -> None:
        data = self.camera.outgoing(self.clock())
        if not data:
            return
        if self._write is None:
            self.dropped_bytes += len(data)
        else:
            self._write(data)

    async def tick_loop(self) -> None:
        while True:
            self.camera.tick(self.clock())
            self._flush()
            await asyncio.sleep(TICK_S)

    # ---- control ----------------------------------------------------------------------

    def execute(self, line: str) -> dict[str, Any]:
        words = line.split()
        now = self.clock()
        try:
            match words:
                case ["trigger", sensor, *rest] if rest in ([], ["on"], ["off"]):
                    self.camera.trigger(_enum(Sensor, sensor), rest != ["off"], now)
                case ["press", button, *rest] if rest in ([], ["short"], ["long"]):
                    press = Press.LONG if rest == ["long"] else Press.SHORT
                    self.camera.press(_enum(Button, button), press, now)
                case ["battery", percent]:
                    self.camera.set_battery(float(percent), now)
                case ["status"]:
                    pass
                case _:
                    raise ControlError(f"unknown command: {line.strip()[:80]!r}")
        except (ControlError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
        self._flush()
        return {"ok": True, **asdict(self.camera.snapshot())}

    async def serve_control(self, host: str, port: int) -> asyncio.Server:
        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._track(writer)
            with contextlib.suppress(OSError, ValueError):
                while line := await reader.readline():
                    reply = self.execute(line.decode("utf-8", "replace"))
                    writer.write(json.dumps(reply).encode() + b"\n")
                    await writer.drain()
            writer.close()
            self._clients.pop(writer, None)

        return await asyncio.start_server(client, host, port, limit=4096)

    async def run_schedule(self, schedule: list[tuple[float, str]]) -> None:
        """(seconds after start, control line) pairs."""
        start = self.clock()
        for at, line in sorted(schedule):
            await asyncio.sleep(max(0.0, start + at - self.clock()))
            self.execute(line)


def _enum(kind: type[Sensor] | type[Button], name: str) -> Any:
    try:
        return kind[name.upper()]
    except KeyError:
        choices = ", ".join(m.name.lower() for m in kind)
        raise ControlError(f"{name!r} is not one of {choices}") from None


def parse_schedule(items: list[str]) -> list[tuple[float, str]]:
    """`5=trigger holster_draw` -> (5.0, "trigger holster_draw")."""
    out = []
    for item in items:
        at, sep, line = item.partition("=")
        if not sep:
            raise ControlError(f"{item!r}: expected SECONDS=COMMAND")
        try:
            out.append((float(at), line.strip()))
        except ValueError:
            raise ControlError(f"{item!r}: {at!r} is not a number of seconds") from None
    return out


SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has python3-gst-1.0
RTSP_CAMERA = Path(__file__).with_name("gst_rtsp_camera.py")


async def start_rtsp_camera(
    port: int, width: int, height: int, preexec_fn: Callable[[], None] | None
) -> asyncio.subprocess.Process:
    """The camera's video over RTSP, served by GStreamer in a child process."""
    process = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON,
        str(RTSP_CAMERA),
        str(port),
        str(width),
        str(height),
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=preexec_fn,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 20)
    if json.loads(line or b"{}").get("ready") is not True:
        process.terminate()
        await process.wait()
        raise ControlError(f"the RTSP camera did not start on port {port}")
    return process


async def run_bodycam_sim(
    stop: asyncio.Event,
    camera: SimulatedBodycam,
    listen: str,
    control: tuple[str, int] | None,
    schedule: list[tuple[float, str]],
    announce: Callable[[dict[str, Any]], None],
    rtsp: tuple[int, int, int] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> None:
    """Serve `camera` on `listen` ("pty" or tcp://host:port) until `stop` is set; with
    `rtsp` = (port, width, height) its video too."""
    server = BodycamServer(camera)
    video = await start_rtsp_camera(*rtsp, preexec_fn) if rtsp else None
    servers: list[asyncio.Server] = []
    ready: dict[str, Any] = {"serial": camera.serial}
    if listen == "pty":
        ready["link"] = server.open_pty()
    else:
        host, _, port = listen.removeprefix("tcp://").rpartition(":")
        link = await server.serve_tcp(host, int(port))
        servers.append(link)
        ready["link"] = "tcp://{}:{}".format(*link.sockets[0].getsockname()[:2])
    if control is not None:
        control_server = await server.serve_control(*control)
        servers.append(control_server)
        ready["control"] = "{}:{}".format(*control_server.sockets[0].getsockname()[:2])
    if rtsp is not None:
        ready["video"] = f"rtsp://127.0.0.1:{rtsp[0]}/cam"
    announce(ready)
    tasks = [
        asyncio.create_task(server.tick_loop()),
        asyncio.create_task(server.run_schedule(schedule)),
    ]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for srv in servers:
            srv.close()
        await server.disconnect_all()
        for srv in servers:
            await srv.wait_closed()
        server.close()
        if video is not None:
            video.terminate()
            await video.wait()

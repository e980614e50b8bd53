"""Byte transports for the body-cam link: TCP, or a serial port / USB CDC / pty device.

`open_link("tcp://host:port")` or `open_link("/dev/ttyACM0", baud=115200)` returns asyncio
streams; the caller owns reconnecting (the link layer above is transport-agnostic).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty
from urllib.parse import urlsplit

BAUD_RATES = {
    9600: termios.B9600,
    19200: termios.B19200,
    38400: termios.B38400,
    57600: termios.B57600,
    115200: termios.B115200,
    230400: termios.B230400,
    460800: termios.B460800,
    921600: termios.B921600,
}


class LinkAddressError(ValueError):
    """An address that names no transport this bridge knows."""


async def open_link(
    address: str, baud: int = 115200
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if address.startswith("tcp://"):
        parts = urlsplit(address)
        if not parts.hostname or not parts.port:
            raise LinkAddressError(f"{address!r}: expected tcp://host:port")
        return await asyncio.open_connection(parts.hostname, parts.port)
    if address.startswith("/"):
        return await _open_tty(address, baud)
    raise LinkAddressError(f"{address!r}: expected tcp://host:port or a device path")


async def _open_tty(path: str, baud: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if baud not in BAUD_RATES:
        raise LinkAddressError(f"baud {baud} not one of {sorted(BAUD_RATES)}")
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = BAUD_RATES[baud]  # ispeed, ospeed (a pty ignores them)
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        read_file = os.fdopen(fd, "rb", buffering=0, closefd=True)
        write_file = os.fdopen(os.dup(fd), "wb", buffering=0, closefd=True)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), read_file)
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), write_file
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

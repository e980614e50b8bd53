"""systemd's notify protocol (READY=1, WATCHDOG=1, STOPPING=1): one datagram each to the
socket in $NOTIFY_SOCKET. Without it (not started by systemd) every call does nothing."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("rtcc.agent.sd_notify")


class Notifier:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        path = environ.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace.
        self._address = "\0" + path[1:] if path.startswith("@") else path
        self._sock: socket.socket | None = None
        if self._address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, message: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify_failed", message=message, error=str(exc))
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """How often to send WATCHDOG=1: a third of WatchdogSec=, so that one late round is no
    restart; None when systemd watches no watchdog for this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 3


async def keep_watchdog(
    notifier: Notifier, interval_s: float, stalled: Callable[[], list[str]]
) -> None:
    """Feed the watchdog while no loop is wedged. A blocked event loop feeds nothing either:
    this runs on it."""
    was_stalled: list[str] = []
    while True:
        await asyncio.sleep(interval_s)
        now_stalled = stalled()
        if not now_stalled:
            notifier.send("WATCHDOG=1")
        elif now_stalled != was_stalled:
            log.error("watchdog_withheld", wedged=now_stalled)
        was_stalled = now_stalled

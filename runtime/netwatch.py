"""Network change watch: know at once when the gateway's links, addresses or routes change.

An LTE handover to another APN, or the car reaching the station's Wi-Fi, changes the
addresses and routes under the agent's MQTT and WebRTC sessions; they would only notice
through timeouts (~30 s). This listens to the kernel's rtnetlink notifications (a raw
NETLINK_ROUTE socket on the link, IPv4/IPv6 address and IPv4/IPv6 route groups; Linux
only, no dependency) and calls `on_change` once per burst of real changes.

The messages are read by the pure `runtime.rtnetlink` (parser and known state); this is
the shell around it: the socket, the dump, and `NetworkWatch.run()` (loop.add_reader),
debounced, supervisable.

Not reported: routes of the kernel's local table (it derives them from addresses, which
are reported), cached routes (RTM_F_CLONED), and by default changes that only touch
loopback. A route change is always reported (no state is kept for routes).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable

import structlog

from runtime.backoff import Backoff, Retry
from runtime.rtnetlink import (
    GROUPS,
    IFADDRMSG,
    IFINFOMSG,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_HDR,
    RTM_GETADDR,
    RTM_GETLINK,
    NetlinkParseError,
    NetState,
    NetworkChange,
    parse,
    read_dump_part,
)

log = structlog.get_logger("rtcc.netwatch")

RECV_SIZE = 1 << 16  # one notification is far smaller; one dump part is at most 32 KiB
RECV_BUFFER = 1 << 20  # kernel-side queue, so a burst is not lost (the kernel may cap it)
READS_PER_WAKEUP = 64  # then let the loop breathe; the reader is called again


def open_netlink() -> socket.socket:
    """A non-blocking rtnetlink socket subscribed to link, address and route changes."""
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        sock.bind((0, GROUPS))
    except BaseException:
        sock.close()
        raise
    return sock


def dump(timeout_s: float = 2.0, max_reads: int = 10_000) -> list[NetworkChange]:
    """The kernel's links and addresses now, as "new" changes (a dump on a socket of its
    own). Raises OSError, or NetlinkParseError for a reply it cannot read."""
    requests = (
        (RTM_GETLINK, IFINFOMSG.pack(0, 0, 0, 0, 0)),
        (RTM_GETADDR, IFADDRMSG.pack(0, 0, 0, 0, 0)),
    )
    found: list[NetworkChange] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(timeout_s)
        sock.bind((0, 0))
        for seq, (msg_type, body) in enumerate(requests, start=1):
            header = NLMSG_HDR.pack(
                NLMSG_HDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
            )
            sock.send(header + body)
            for _ in range(max_reads):
                if read_dump_part(sock.recv(RECV_SIZE), seq, found):
                    break
            else:
                raise NetlinkParseError("the dump did not end")
    return found


class NetworkWatch:
    """Calls `on_change` with the changes of each burst, once the kernel has been quiet for
    `debounce_s` (or `max_delay_s` after the burst began, if it goes on). With
    `ignore_loopback`, changes that only touch loopback call no one.

    `run()` is meant for a supervised task: it keeps watching until cancelled, reopens its
    socket with a jittered backoff when it cannot open it (no permission, not Linux) or the
    socket fails, and closes it when cancelled. `watching` is set while it listens.
    When notifications were lost (kernel queue overrun) or could not be read, it dumps the
    kernel's tables again and reports the differences (routes cannot be compared: route
    changes lost that way are not reported)."""

    def __init__(
        self,
        on_change: Callable[[list[NetworkChange]], None],
        debounce_s: float = 0.3,
        ignore_loopback: bool = True,
        *,
        max_delay_s: float = 3.0,
        backoff: Backoff = Backoff(initial_s=1.0, max_s=60.0),
        healthy_after_s: float = 60.0,
        open_socket: Callable[[], socket.socket] = open_netlink,
        snapshot: Callable[[], list[NetworkChange]] = dump,
    ) -> None:
        if debounce_s < 0 or max_delay_s < debounce_s:
            raise ValueError("need 0 <= debounce_s <= max_delay_s")
        self.on_change = on_change
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self.ignore_loopback = ignore_loopback
        self.watching = asyncio.Event()
        self._retry = Retry(backoff, healthy_after_s)
        self._open_socket = open_socket
        self._snapshot = snapshot
        self._pending: list[NetworkChange] = []
        self._burst_started = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                sock = self._open_socket()
            except OSError as exc:
                reason = str(exc)
            else:
                try:
                    reason = await self._watch(sock)
                finally:
                    self.watching.clear()
                    sock.close()
            self._retry.ended(time.monotonic() - started)
            delay = self._retry.delay()
            log.warning("netwatch_unavailable", reason=reason, retry_in_s=round(delay, 2))
            await asyncio.sleep(delay)

    async def _watch(self, sock: socket.socket) -> str:
        """Listen until the socket fails; returns why."""
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[str] = loop.create_future()
        try:
            state = NetState(self._snapshot())
        except (OSError, NetlinkParseError) as exc:
            return f"dump: {exc}"
        fd = sock.fileno()
        loop.add_reader(fd, self._readable, sock, state, failed)
        self.watching.set()
        try:
            return await failed
        finally:
            loop.remove_reader(fd)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._pending = []

    def _readable(self, sock: socket.socket, state: NetState, failed: asyncio.Future[str]) -> None:
        changes: list[NetworkChange] = []
        for _ in range(READS_PER_WAKEUP):
            try:
                data = sock.recv(RECV_SIZE)
                changes += [c for c in parse(data) if state.apply(c)]
            except BlockingIOError:
                break
            except (OSError, NetlinkParseError) as exc:
                if isinstance(exc, OSError) and exc.errno != errno.ENOBUFS:
                    if not failed.done():
                        failed.set_result(f"recv: {exc}")
                    return
                log.warning("netwatch_resync", reason=str(exc))
                try:
                    changes += state.resync(self._snapshot())
                except (OSError, NetlinkParseError) as dump_exc:
                    if not failed.done():
                        failed.set_result(f"dump: {dump_exc}")
                    return
        if self.ignore_loopback:
            changes = [c for c in changes if not state.only_loopback(c)]
        if changes:
            self._add(changes)

    def _add(self, changes: list[NetworkChange]) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._timer is None:
            self._burst_started = now
        else:
            self._timer.cancel()
        self._pending += changes
        fire_at = min(now + self.debounce_s, self._burst_started + self.max_delay_s)
        self._timer = loop.call_at(fire_at, self._fire)

    def _fire(self) -> None:
        changes, self._pending, self._timer = self._pending, [], None
        try:
            self.on_change(changes)
        except Exception:
            log.exception("netwatch_callback_failed")

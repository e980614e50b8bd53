"""Network change watch: know at once when the gateway's links, addresses or routes change.

An LTE handover to another APN, or the car reaching the station's Wi-Fi, changes the
addresses and routes under the agent's MQTT and WebRTC sessions; they would only notice
through timeouts (~30 s). This listens to the kernel's rtnetlink notifications (a raw
NETLINK_ROUTE socket on the link, IPv4/IPv6 address and IPv4/IPv6 route groups; Linux
only, no dependency) and calls `on_change` once per burst of real changes.

Three parts:
- `parse(data)`: the bytes of one recv() -> list of `NetworkChange`. Pure; raises only
  `NetlinkParseError`, and does work linear in len(data).
- `NetState`: what is known (addresses, whether each link is up), seeded from a dump of the
  kernel's tables, so repeats are not changes: a DHCP renewal or IPv6 router advertisement
  re-announcing an address (new lifetimes), or a Wi-Fi driver's wireless events on a link
  that stays up, call no one.
- `NetworkWatch.run()`: the asyncio shell (loop.add_reader), debounced, supervisable.

Not reported: routes of the kernel's local table (it derives them from addresses, which
are reported), cached routes (RTM_F_CLONED), and by default changes that only touch
loopback. A route change is always reported (no state is kept for routes).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import structlog

from runtime.backoff import Backoff, Retry

log = structlog.get_logger("rtcc.netwatch")

# linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h, linux/if_link.h, linux/if.h
NLMSG_HDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
IFINFOMSG = struct.Struct("=BxHiII")  # family, device type, index, flags, change mask
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst/src length, tos, table, protocol, scope,
# type, flags
RTATTR = struct.Struct("=HH")  # length (header included), type
IFLA_IFNAME = 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_TABLE = 1, 4, 15
RT_TABLE_LOCAL = 255
RTM_F_CLONED = 0x200
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40
NLA_TYPE_MASK = 0x3FFF  # without the nested / byte-order flags
GROUPS = (
    0x1  # RTMGRP_LINK
    | 0x10  # RTMGRP_IPV4_IFADDR
    | 0x40  # RTMGRP_IPV4_ROUTE
    | 0x100  # RTMGRP_IPV6_IFADDR
    | 0x400  # RTMGRP_IPV6_ROUTE
)
ADDRESS_LENGTH: dict[int, int] = {socket.AF_INET: 4, socket.AF_INET6: 16}

RECV_SIZE = 1 << 16  # one notification is far smaller; one dump part is at most 32 KiB
RECV_BUFFER = 1 << 20  # kernel-side queue, so a burst is not lost (the kernel may cap it)
READS_PER_WAKEUP = 64  # then let the loop breathe; the reader is called again


class NetlinkParseError(ValueError):
    """The bytes are not well-formed rtnetlink messages (the only exception `parse` raises)."""


@dataclass(frozen=True, slots=True)
class NetworkChange:
    kind: Literal["link", "address", "route"]
    action: Literal["new", "del"]
    ifindex: int  # a route's output interface; 0 if it has none (multipath, unreachable)
    address: str | None = None  # address: the interface's; route: the destination (None:
    # the default route)
    prefixlen: int = 0
    up: bool | None = None  # link: administratively up and running (carrier)
    name: str | None = None  # link: the interface name
    loopback: bool = False  # a loopback link, or a loopback address or destination


def _align(length: int) -> int:
    return (length + 3) & ~3


def _messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, sequence, payload) of each netlink message in one datagram."""
    offset = 0
    while offset < len(data):
        if len(data) - offset < NLMSG_HDR.size:
            raise NetlinkParseError(f"{len(data) - offset} stray bytes after the messages")
        length, msg_type, _flags, seq, _port = NLMSG_HDR.unpack_from(data, offset)
        if not NLMSG_HDR.size <= length <= len(data) - offset:
            raise NetlinkParseError(f"message length {length} at {offset} of {len(data)}")
        yield msg_type, seq, data[offset + NLMSG_HDR.size : offset + length]
        offset += _align(length)


def _attributes(payload: bytes, offset: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while offset < len(payload):
        if len(payload) - offset < RTATTR.size:
            raise NetlinkParseError("truncated attribute header")
        length, attr_type = RTATTR.unpack_from(payload, offset)
        if not RTATTR.size <= length <= len(payload) - offset:
            raise NetlinkParseError(f"attribute length {length} at {offset} of {len(payload)}")
        found.setdefault(attr_type & NLA_TYPE_MASK, payload[offset + RTATTR.size : offset + length])
        offset += _align(length)
    return found


def _header(layout: struct.Struct, payload: bytes) -> tuple[int, ...]:
    if len(payload) < layout.size:
        raise NetlinkParseError(f"{len(payload)} bytes, need {layout.size}")
    return layout.unpack_from(payload)


def _ip(family: int, raw: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if len(raw) != ADDRESS_LENGTH[family]:
        raise NetlinkParseError(f"address of {len(raw)} bytes for family {family}")
    return ipaddress.IPv4Address(raw) if family == socket.AF_INET else ipaddress.IPv6Address(raw)


def _link(action: Literal["new", "del"], payload: bytes) -> NetworkChange:
    _family, _type, index, flags, _change = _header(IFINFOMSG, payload)
    name = _attributes(payload, IFINFOMSG.size).get(IFLA_IFNAME)
    return NetworkChange(
        "link",
        action,
        index,
        up=bool(flags & IFF_UP) and bool(flags & IFF_RUNNING),
        name=name.split(b"\0", 1)[0].decode("utf-8", "replace") if name is not None else None,
        loopback=bool(flags & IFF_LOOPBACK),
    )


def _address(action: Literal["new", "del"], payload: bytes) -> NetworkChange | None:
    family, prefixlen, _flags, _scope, index = _header(IFADDRMSG, payload)
    if family not in ADDRESS_LENGTH:
        return None
    attributes = _attributes(payload, IFADDRMSG.size)
    # IPv4 on a point-to-point link: IFA_LOCAL is ours, IFA_ADDRESS the peer's.
    raw = attributes.get(IFA_LOCAL, attributes.get(IFA_ADDRESS))
    ip = _ip(family, raw) if raw is not None else None
    return NetworkChange(
        "address",
        action,
        index,
        str(ip) if ip is not None else None,
        prefixlen,
        loopback=ip is not None and ip.is_loopback,
    )


def _route(action: Literal["new", "del"], payload: bytes) -> NetworkChange | None:
    family, dst_len, _src_len, _tos, table, _proto, _scope, _type, flags = _header(RTMSG, payload)
    if family not in ADDRESS_LENGTH:
        return None
    attributes = _attributes(payload, RTMSG.size)
    raw_table = attributes.get(RTA_TABLE)
    if raw_table is not None:
        if len(raw_table) != 4:
            raise NetlinkParseError("RTA_TABLE is not 4 bytes")
        table = struct.unpack("=I", raw_table)[0]
    if table == RT_TABLE_LOCAL or flags & RTM_F_CLONED:
        return None
    raw_oif = attributes.get(RTA_OIF)
    if raw_oif is not None and len(raw_oif) != 4:
        raise NetlinkParseError("RTA_OIF is not 4 bytes")
    raw_dst = attributes.get(RTA_DST)
    dst = _ip(family, raw_dst) if raw_dst is not None else None
    return NetworkChange(
        "route",
        action,
        struct.unpack("=i", raw_oif)[0] if raw_oif is not None else 0,
        str(dst) if dst is not None else None,
        dst_len,
        loopback=dst is not None and dst.is_loopback,
    )


def _decode(msg_type: int, payload: bytes) -> NetworkChange | None:
    if msg_type in (RTM_NEWLINK, RTM_DELLINK):
        return _link("new" if msg_type == RTM_NEWLINK else "del", payload)
    if msg_type in (RTM_NEWADDR, RTM_DELADDR):
        return _address("new" if msg_type == RTM_NEWADDR else "del", payload)
    if msg_type in (RTM_NEWROUTE, RTM_DELROUTE):
        return _route("new" if msg_type == RTM_NEWROUTE else "del", payload)
    return None  # NLMSG_NOOP/DONE/ERROR/OVERRUN, neighbours, rules, anything newer


def parse(data: bytes) -> list[NetworkChange]:
    """The changes in the bytes of one recv() from an rtnetlink socket, in order. Unknown
    message types and address families are skipped. Raises `NetlinkParseError` (and
    nothing else) when the bytes are not well-formed; nothing of them is then trusted."""
    changes = []
    for msg_type, _seq, payload in _messages(data):
        change = _decode(msg_type, payload)
        if change is not None:
            changes.append(change)
    return changes


class NetState:
    """What the watch knows of the interfaces, to tell a change from a repeat. Pure."""

    def __init__(self, known: Iterable[NetworkChange] = ()) -> None:
        self.addresses: set[tuple[int, str | None, int]] = set()
        self.links: dict[int, bool | None] = {}
        self.loopback: set[int] = set()
        for change in known:
            self.apply(change)

    def apply(self, change: NetworkChange) -> bool:
        """Record `change`; True if it changes what is known. An address announced again,
        or a link event that leaves the link as up (or down) as it was, is a repeat; a
        route change or a deletion always counts."""
        if change.kind == "link":
            if change.action == "del":
                self.links.pop(change.ifindex, None)
                self.addresses = {a for a in self.addresses if a[0] != change.ifindex}
                return True
            if change.loopback:
                self.loopback.add(change.ifindex)
            known = change.ifindex in self.links
            before = self.links.get(change.ifindex)
            self.links[change.ifindex] = change.up
            return not known or before != change.up
        if change.kind == "address":
            key = (change.ifindex, change.address, change.prefixlen)
            if change.action == "del":
                self.addresses.discard(key)
                return True
            if key in self.addresses:
                return False
            self.addresses.add(key)
            return True
        return True

    def only_loopback(self, change: NetworkChange) -> bool:
        return change.loopback or change.ifindex in self.loopback

    def resync(self, known: Iterable[NetworkChange]) -> list[NetworkChange]:
        """Replace what is known with a fresh dump (after notifications were lost); returns
        the differences as changes."""
        fresh = NetState(known)
        changes: list[NetworkChange] = []
        for index in self.links.keys() - fresh.links.keys():
            changes.append(NetworkChange("link", "del", index, loopback=index in self.loopback))
        for index, up in fresh.links.items():
            if index not in self.links or self.links[index] != up:
                loopback = index in fresh.loopback
                changes.append(NetworkChange("link", "new", index, up=up, loopback=loopback))
        diff: list[tuple[Literal["new", "del"], set[tuple[int, str | None, int]]]] = [
            ("del", self.addresses - fresh.addresses),
            ("new", fresh.addresses - self.addresses),
        ]
        for action, keys in diff:
            for index, address, prefixlen in sorted(keys, key=str):
                loopback = address is not None and ipaddress.ip_address(address).is_loopback
                changes.append(
                    NetworkChange("address", action, index, address, prefixlen, loopback=loopback)
                )
        self.addresses, self.links, self.loopback = fresh.addresses, fresh.links, fresh.loopback
        return changes


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
                if _dump_part(sock.recv(RECV_SIZE), seq, found):
                    break
            else:
                raise NetlinkParseError("the dump did not end")
    return found


def _dump_part(data: bytes, seq: int, found: list[NetworkChange]) -> bool:
    """Add what one part of a dump reply holds; True once the reply is complete."""
    for msg_type, msg_seq, payload in _messages(data):
        if msg_seq != seq:
            continue
        if msg_type == NLMSG_DONE:
            return True
        if msg_type == NLMSG_ERROR:
            code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else errno.EIO
            raise OSError(code, f"rtnetlink dump failed: {errno.errorcode.get(code, code)}")
        change = _decode(msg_type, payload)
        if change is not None:
            found.append(change)
    return False


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

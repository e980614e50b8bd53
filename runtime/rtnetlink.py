"""rtnetlink as the network watch reads it (pure: bytes in, changes out; no socket).

- `parse(data)`: the bytes of one recv() -> list of `NetworkChange`. Raises only
  `NetlinkParseError`, and does work linear in len(data).
- `NetState`: what is known (addresses, whether each link is up), seeded from a dump of the
  kernel's tables, so repeats are not changes: a DHCP renewal or IPv6 router advertisement
  re-announcing an address (new lifetimes), or a Wi-Fi driver's wireless events on a link
  that stays up, call no one.
- `read_dump_part`: one part of the reply to a dump request.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

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
AF_INET, AF_INET6 = 2, 10  # linux/socket.h (rtnetlink is Linux only)
ADDRESS_LENGTH: dict[int, int] = {AF_INET: 4, AF_INET6: 16}


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
    return ipaddress.IPv4Address(raw) if family == AF_INET else ipaddress.IPv6Address(raw)


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


def read_dump_part(data: bytes, seq: int, found: list[NetworkChange]) -> bool:
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

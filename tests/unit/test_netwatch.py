"""Network change watch: the rtnetlink parser (real captured bytes, hand-built messages,
arbitrary bytes), the known-state rules, and the asyncio shell over a socketpair."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.backoff import Backoff
from runtime.netwatch import NetworkWatch
from runtime.rtnetlink import NetlinkParseError, NetState, NetworkChange, parse
from tests.helpers import wait_for

# --- building messages ------------------------------------------------------------------


def nlmsg(msg_type: int, payload: bytes, seq: int = 0, flags: int = 0) -> bytes:
    data = struct.pack("=IHHII", 16 + len(payload), msg_type, flags, seq, 0) + payload
    return data + b"\0" * (-len(data) % 4)


def rtattr(attr_type: int, data: bytes) -> bytes:
    attr = struct.pack("=HH", 4 + len(data), attr_type) + data
    return attr + b"\0" * (-len(attr) % 4)


def link(index: int, flags: int, name: str | None = None, msg_type: int = 16) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0xFFFFFFFF)
    if name is not None:
        body += rtattr(3, name.encode() + b"\0")
    return nlmsg(msg_type, body)


def addr(
    index: int, address: str, prefixlen: int, msg_type: int = 20, peer: str | None = None
) -> bytes:
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    body = struct.pack("=BBBBI", family, prefixlen, 0, 0, index)
    if ip.version == 4:
        body += rtattr(1, ipaddress.ip_address(peer or address).packed) + rtattr(2, ip.packed)
    else:
        body += rtattr(1, ip.packed)
    return nlmsg(msg_type, body)


def route(
    oif: int | None,
    dst: str | None,
    dst_len: int,
    msg_type: int = 24,
    table: int = 254,
    family: int = socket.AF_INET,
    flags: int = 0,
    table_attr: int | None = None,
) -> bytes:
    body = struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, table, 3, 0, 1, flags)
    if table_attr is not None:
        body += rtattr(15, struct.pack("=I", table_attr))
    if dst is not None:
        body += rtattr(1, ipaddress.ip_address(dst).packed)
    if oif is not None:
        body += rtattr(4, struct.pack("=i", oif))
    return nlmsg(msg_type, body)


IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40


def change(kind: Any, action: Any, ifindex: int, address: str | None = None, **kw: Any) -> Any:
    return NetworkChange(kind, action, ifindex, address, **kw)


# --- real bytes (captured from Linux 6.18 in a namespace: `ip addr add/del` on a veth) ----

CAPTURED = [
    (
        "4c000000140000006802106b965500000218800003000000080001000ac80907080002000ac809070700"
        "030076610000080008008000000014000600ffffffffffffffffca0d0200ca0d0200",
        [change("address", "new", 3, "10.200.9.7", prefixlen=24)],
    ),
    (
        "3c00000018000006000000000000000002180000fe02fd010000000008000f00fe000000080001000ac8"
        "0900080007000ac809070800040003000000",
        [change("route", "new", 3, "10.200.9.0", prefixlen=24)],
    ),
    (  # the local-table route the kernel adds for the address: not reported
        "3c00000018000006000000000000000002200000ff02fe020000000008000f00ff000000080001000ac8"
        "0907080007000ac809070800040003000000",
        [],
    ),
    (
        "4c000000150000006802106b975500000218800003000000080001000ac80907080002000ac809070700"
        "030076610000080008008000000014000600ffffffffffffffffca0d0200ca0d0200",
        [change("address", "del", 3, "10.200.9.7", prefixlen=24)],
    ),
    (
        "480000001400000000000000000000000a408200030000001400010020010db800000000000000000000"
        "000714000600ffffffffffffffff070e0200070e02000800080082000000",
        [change("address", "new", 3, "2001:db8::7", prefixlen=64)],
    ),
    (
        "740000001800000600000000000000000a400000fe0200010000000008000f00fe000000140001002001"
        "0db80000000000000000000000000800060000010000080004000300000024000c000000000000000000"
        "0000000000000000000000000000000000000000000000000500140000000000",
        [change("route", "new", 3, "2001:db8::", prefixlen=64)],
    ),
    (
        "500000001500000000000000000000000a4080fd0200000014000100fe8000000000000004ac12fffe5b"
        "f00c14000600ffffffffffffffffc60c0200c60c0200080008008000000005000b0003000000",
        [change("address", "del", 2, "fe80::4ac:12ff:fe5b:f00c", prefixlen=64)],
    ),
]


@pytest.mark.skipif(sys.byteorder != "little", reason="captured on a little-endian machine")
@pytest.mark.parametrize(("hexdata", "expected"), CAPTURED)
def test_real_kernel_messages(hexdata: str, expected: list[NetworkChange]) -> None:
    assert parse(bytes.fromhex(hexdata)) == expected


@pytest.mark.skipif(sys.byteorder != "little", reason="captured on a little-endian machine")
def test_several_messages_in_one_buffer_come_out_in_order() -> None:
    data = b"".join(bytes.fromhex(h) for h, _ in CAPTURED)
    assert parse(data) == [c for _, expected in CAPTURED for c in expected]


# --- hand-built -------------------------------------------------------------------------


def test_link_messages() -> None:
    assert parse(link(3, IFF_UP | IFF_RUNNING, "wwan0")) == [
        change("link", "new", 3, up=True, name="wwan0")
    ]
    assert parse(link(3, IFF_UP, "wwan0")) == [change("link", "new", 3, up=False, name="wwan0")]
    assert parse(link(1, IFF_UP | IFF_RUNNING | IFF_LOOPBACK, "lo")) == [
        change("link", "new", 1, up=True, name="lo", loopback=True)
    ]
    assert parse(link(4, 0, None, msg_type=17)) == [change("link", "del", 4, up=False)]


def test_point_to_point_address_is_the_local_one() -> None:
    assert parse(addr(5, "100.64.0.9", 32, peer="10.64.64.64")) == [
        change("address", "new", 5, "100.64.0.9", prefixlen=32)
    ]


def test_loopback_addresses_and_routes_are_flagged() -> None:
    assert parse(addr(1, "127.0.0.5", 8)) == [
        change("address", "new", 1, "127.0.0.5", prefixlen=8, loopback=True)
    ]
    assert parse(route(1, "127.0.0.0", 8, table=254)) == [
        change("route", "new", 1, "127.0.0.0", prefixlen=8, loopback=True)
    ]


def test_routes() -> None:
    assert parse(route(2, None, 0)) == [change("route", "new", 2, None)]  # default route
    assert parse(route(None, "10.1.0.0", 16, msg_type=25)) == [
        change("route", "del", 0, "10.1.0.0", prefixlen=16)
    ]
    ipv6_default = route(2, None, 0, family=socket.AF_INET6)
    assert parse(ipv6_default) == [change("route", "new", 2, None)]
    # A table number above 255 is in RTA_TABLE (rtm_table says RT_TABLE_COMPAT).
    assert parse(route(2, None, 0, table=252, table_attr=1000)) == [change("route", "new", 2)]


def test_derived_and_cached_routes_are_not_reported() -> None:
    assert parse(route(2, "10.0.0.1", 32, table=255)) == []
    assert parse(route(2, "10.0.0.1", 32, table=252, table_attr=255)) == []
    assert parse(route(2, "10.0.0.1", 32, flags=0x200)) == []  # RTM_F_CLONED


def test_unknown_types_and_families_are_skipped() -> None:
    neighbour = nlmsg(28, b"\x02" + b"\0" * 11)  # RTM_NEWNEIGH
    done = nlmsg(3, struct.pack("=i", 0))
    bridge_address = nlmsg(20, struct.pack("=BBBBI", 7, 0, 0, 0, 3) + rtattr(1, b"\1" * 6))
    mpls_route = nlmsg(24, struct.pack("=BBBBBBBBI", 28, 20, 0, 0, 254, 3, 0, 1, 0))
    assert parse(neighbour + done + bridge_address + mpls_route + link(2, 0)) == [
        change("link", "new", 2, up=False)
    ]
    assert parse(b"") == []


def test_attribute_flags_are_masked() -> None:
    body = struct.pack("=BxHiII", 0, 1, 3, 0, 0) + rtattr(0x8000 | 3, b"eth0\0")
    assert parse(nlmsg(16, body))[0].name == "eth0"


@pytest.mark.parametrize(
    "data",
    [
        b"\x10\0\0",  # shorter than a header
        link(2, 0) + b"\0" * 3,  # stray bytes after a message
        struct.pack("=IHHII", 8, 20, 0, 0, 0),  # length below the header's
        struct.pack("=IHHII", 64, 20, 0, 0, 0) + b"\0" * 8,  # length past the buffer
        nlmsg(20, b"\x02\x18\0\0"),  # ifaddrmsg cut short
        nlmsg(20, struct.pack("=BBBBI", 2, 24, 0, 0, 3) + struct.pack("=HH", 2, 1)),
        nlmsg(20, struct.pack("=BBBBI", 2, 24, 0, 0, 3) + struct.pack("=HH", 40, 1) + b"\0" * 4),
        nlmsg(20, struct.pack("=BBBBI", 2, 24, 0, 0, 3) + rtattr(2, b"\1\2\3")),  # 3-byte IPv4
        nlmsg(24, struct.pack("=BBBBBBBBI", 2, 0, 0, 0, 254, 3, 0, 1, 0) + rtattr(4, b"\1\2")),
        nlmsg(24, struct.pack("=BBBBBBBBI", 2, 0, 0, 0, 252, 3, 0, 1, 0) + rtattr(15, b"\1")),
        nlmsg(16, b"\0" * 15),  # ifinfomsg cut short
        nlmsg(16, struct.pack("=BxHiII", 0, 1, 3, 0, 0) + b"\x01\x00"),  # half an attribute
    ],
)
def test_malformed_bytes_raise_the_one_documented_error(data: bytes) -> None:
    with pytest.raises(NetlinkParseError):
        parse(data)


def parses_or_refuses(data: bytes) -> None:
    try:
        result = parse(data)
    except NetlinkParseError:
        return
    assert all(isinstance(c, NetworkChange) for c in result)
    assert len(result) <= len(data) // 16


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise_anything_else(data: bytes) -> None:
    parses_or_refuses(data)


KNOWN_TYPES = st.sampled_from([1, 2, 3, 4, 16, 17, 20, 21, 24, 25, 28, 0xFFFF])
attributes = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=24)), max_size=6).map(
    lambda attrs: b"".join(rtattr(t, d) for t, d in attrs)
)
headers = st.one_of(
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=12, max_size=12),
    st.binary(min_size=16, max_size=16),
    st.tuples(st.sampled_from([2, 10, 0, 7]), st.binary(min_size=7, max_size=15)).map(
        lambda t: bytes([t[0]]) + t[1]
    ),
)


@given(st.lists(st.tuples(KNOWN_TYPES, headers, attributes, st.binary(max_size=3)), max_size=8))
def test_well_framed_messages_with_arbitrary_bodies_never_raise_anything_else(
    messages: list[tuple[int, bytes, bytes, bytes]],
) -> None:
    """Arbitrary bytes rarely get past the framing; these do, and reach every decoder."""
    parses_or_refuses(b"".join(nlmsg(t, h + a + tail) for t, h, a, tail in messages))


ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))


@st.composite
def real_changes(draw: Callable[..., Any]) -> tuple[bytes, NetworkChange | None]:
    kind = draw(st.sampled_from(["link", "address", "route"]))
    new = draw(st.booleans())
    index = draw(st.integers(1, 2**31 - 1))
    action = "new" if new else "del"
    if kind == "link":
        flags = draw(st.integers(0, 0xFFFF))
        name = draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=15))
        data = link(index, flags, name, msg_type=16 if new else 17)
        up = bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)
        loop = bool(flags & IFF_LOOPBACK)
        return data, change("link", action, index, up=up, name=name, loopback=loop)
    address = draw(st.one_of(ipv4, ipv6))
    ip = ipaddress.ip_address(address)
    prefixlen = draw(st.integers(0, 32 if ip.version == 4 else 128))
    if kind == "address":
        data = addr(index, address, prefixlen, msg_type=20 if new else 21)
        return data, change(
            "address", action, index, address, prefixlen=prefixlen, loopback=ip.is_loopback
        )
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    table = draw(st.sampled_from([254, 255, 1000]))
    data = route(
        index,
        address,
        prefixlen,
        msg_type=24 if new else 25,
        family=family,
        table=min(table, 252),
        table_attr=table,
    )
    expected = change("route", action, index, address, prefixlen=prefixlen, loopback=ip.is_loopback)
    return data, None if table == 255 else expected


@given(st.lists(real_changes(), max_size=10))
def test_what_is_built_is_what_is_parsed(built: list[tuple[bytes, NetworkChange | None]]) -> None:
    data = b"".join(d for d, _ in built)
    assert parse(data) == [c for _, c in built if c is not None]


# --- what counts as a change ------------------------------------------------------------

LO = change("link", "new", 1, up=True, name="lo", loopback=True)
ETH_UP = change("link", "new", 2, up=True, name="eth0")
ADDRESS = change("address", "new", 2, "192.0.2.10", prefixlen=24)


def test_repeats_are_not_changes() -> None:
    state = NetState([LO, ETH_UP, ADDRESS])
    assert not state.apply(ADDRESS)  # a renewed lease announces the same address again
    assert not state.apply(ETH_UP)  # e.g. a wireless event on a link that stays up
    assert state.apply(change("address", "new", 2, "192.0.2.11", prefixlen=24))
    assert state.apply(change("address", "new", 2, "192.0.2.10", prefixlen=25))
    assert state.apply(change("link", "new", 2, up=False, name="eth0"))
    assert not state.apply(change("link", "new", 2, up=False, name="eth0"))
    assert state.apply(change("link", "new", 2, up=True, name="eth0"))
    assert state.apply(change("link", "new", 9, up=False, name="wwan0"))  # a new interface


def test_deletions_and_routes_always_count() -> None:
    state = NetState([ETH_UP, ADDRESS])
    assert state.apply(change("address", "del", 2, "192.0.2.10", prefixlen=24))
    assert state.apply(change("address", "del", 2, "192.0.2.10", prefixlen=24))
    assert state.apply(ADDRESS)  # back again: a change
    assert state.apply(change("route", "new", 2, None))
    assert state.apply(change("route", "new", 2, None))
    assert state.apply(change("link", "del", 2))
    assert state.addresses == set()  # the link took its addresses with it
    assert state.apply(ADDRESS)


def test_loopback_is_learned_from_links() -> None:
    state = NetState([LO, ETH_UP])
    assert state.only_loopback(change("route", "new", 1, "::", prefixlen=0))
    assert state.only_loopback(change("address", "new", 7, "127.0.0.9", prefixlen=8, loopback=True))
    assert not state.only_loopback(ADDRESS)


def test_resync_reports_the_differences() -> None:
    state = NetState([LO, ETH_UP, ADDRESS, change("link", "new", 3, up=True)])
    wifi = change("address", "new", 4, "10.9.8.7", prefixlen=24)
    diff = state.resync(
        [LO, change("link", "new", 2, up=False), change("link", "new", 4, up=True), wifi]
    )
    assert sorted(diff, key=repr) == sorted(
        [
            change("link", "del", 3),
            change("link", "new", 2, up=False),
            change("link", "new", 4, up=True),
            change("address", "del", 2, "192.0.2.10", prefixlen=24),
            wifi,
        ],
        key=repr,
    )
    assert (
        state.resync(
            [LO, change("link", "new", 2, up=False), change("link", "new", 4, up=True), wifi]
        )
        == []
    )


# --- the shell --------------------------------------------------------------------------


class ScriptedSocket(socket.socket):
    """A real datagram socket (so the loop can watch it) whose recv can be made to fail."""

    errors: list[OSError]

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.errors:
            raise self.errors.pop(0)
        return super().recv(bufsize, flags)


class Harness:
    def __init__(self, known: list[NetworkChange] | None = None, **kw: Any) -> None:
        self.known = known if known is not None else [LO, ETH_UP, ADDRESS]
        self.calls: list[list[NetworkChange]] = []
        self.opened: list[ScriptedSocket] = []
        self.peers: list[socket.socket] = []
        self.open_errors: list[OSError] = []
        self.snapshot_errors: list[OSError] = []
        self.snapshots = 0
        kw.setdefault("debounce_s", 0.05)
        kw.setdefault("backoff", Backoff(initial_s=0.01, max_s=0.02))
        self.watch = NetworkWatch(
            self.calls.append, open_socket=self.open, snapshot=self.snapshot, **kw
        )

    def open(self) -> socket.socket:
        if self.open_errors:
            raise self.open_errors.pop(0)
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock = ScriptedSocket(fileno=ours.detach())
        sock.errors = []
        sock.setblocking(False)
        self.opened.append(sock)
        self.peers.append(peer)
        return sock

    def snapshot(self) -> list[NetworkChange]:
        self.snapshots += 1
        if self.snapshot_errors:
            raise self.snapshot_errors.pop(0)
        return list(self.known)

    def send(self, data: bytes) -> None:
        self.peers[-1].send(data)

    async def fence(self, index: int = 99) -> list[NetworkChange]:
        """A change of its own, then wait for its callback: any callback due before it has
        come by then (no fixed sleep)."""
        fence = change("address", "new", 2, f"198.51.100.{index}", prefixlen=24)
        self.send(addr(2, fence.address or "", 24))
        await wait_for(lambda: any(fence in call for call in self.calls), timeout=5)
        return self.calls[-1]

    def close(self) -> None:
        for peer in self.peers:
            peer.close()


@pytest.fixture
async def harness() -> Any:
    made: list[tuple[Harness, asyncio.Task[None]]] = []

    async def start(**kw: Any) -> Harness:
        h = Harness(**kw)
        task = asyncio.create_task(h.watch.run(), name="netwatch")
        made.append((h, task))
        await asyncio.wait_for(h.watch.watching.wait(), 5)
        return h

    yield start
    for h, task in made:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        h.close()


async def test_a_burst_is_one_callback(harness: Any) -> None:
    h = await harness()
    wifi = addr(5, "10.9.8.7", 24)
    h.send(link(5, IFF_UP | IFF_RUNNING, "wlan0") + wifi)
    h.send(route(5, None, 0))
    await wait_for(lambda: h.calls, timeout=5)
    assert h.calls == [
        [
            change("link", "new", 5, up=True, name="wlan0"),
            change("address", "new", 5, "10.9.8.7", prefixlen=24),
            change("route", "new", 5),
        ]
    ]
    assert len(await h.fence()) == 1
    assert len(h.calls) == 2


async def test_repeats_and_loopback_call_no_one(harness: Any) -> None:
    h = await harness()
    h.send(addr(2, "192.0.2.10", 24))  # renewed, same address
    h.send(link(2, IFF_UP | IFF_RUNNING, "eth0"))  # a link event, still up
    h.send(addr(1, "127.0.0.5", 8))  # loopback only
    h.send(route(1, "::", 0, family=socket.AF_INET6))  # via lo
    assert len(await h.fence()) == 1
    assert len(h.calls) == 1


async def test_loopback_is_reported_when_asked(harness: Any) -> None:
    h = await harness(ignore_loopback=False)
    h.send(addr(1, "127.0.0.5", 8))
    await wait_for(lambda: h.calls, timeout=5)
    assert h.calls[0] == [change("address", "new", 1, "127.0.0.5", prefixlen=8, loopback=True)]


async def test_a_long_burst_is_reported_after_max_delay(harness: Any) -> None:
    h = await harness(debounce_s=0.2, max_delay_s=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    n = 0
    while not h.calls:
        n += 1
        h.send(addr(2, f"203.0.113.{n}", 24))  # a change every 50 ms: never quiet
        await asyncio.sleep(0.05)
        assert loop.time() - started < 5
    assert len(h.calls[0]) >= 3


async def test_unreadable_bytes_and_lost_notifications_resync(harness: Any) -> None:
    h = await harness()
    assert h.snapshots == 1
    h.known = [LO, ETH_UP, change("address", "new", 2, "192.0.2.77", prefixlen=24)]
    h.send(b"\x08\0\0\0garbage")
    await wait_for(lambda: h.calls, timeout=5)
    assert h.snapshots == 2
    assert sorted(h.calls[0], key=repr) == [
        change("address", "del", 2, "192.0.2.10", prefixlen=24),
        change("address", "new", 2, "192.0.2.77", prefixlen=24),
    ]
    h.known = [LO, change("link", "new", 2, up=False, name="eth0")]
    h.opened[-1].errors.append(OSError(errno.ENOBUFS, "No buffer space available"))
    h.send(route(2, None, 0))  # readable: the scripted overrun comes first
    await wait_for(lambda: len(h.calls) == 2, timeout=5)
    assert h.snapshots == 3
    assert sorted(h.calls[1], key=repr) == sorted(
        [
            change("link", "new", 2, up=False),
            change("address", "del", 2, "192.0.2.77", prefixlen=24),
            change("route", "new", 2),
        ],
        key=repr,
    )


async def test_cannot_open_retries_with_backoff(harness: Any) -> None:
    h = Harness()
    h.open_errors = [PermissionError(errno.EPERM, "no"), OSError(errno.EAFNOSUPPORT, "no")]
    h.snapshot_errors = [OSError(errno.EIO, "dump failed")]
    task = asyncio.create_task(h.watch.run(), name="netwatch")
    try:
        await asyncio.wait_for(h.watch.watching.wait(), 5)
        assert len(h.opened) == 2  # the first socket's dump failed: closed, opened again
        assert h.opened[0].fileno() == -1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        h.close()


async def test_a_failed_socket_is_replaced(harness: Any) -> None:
    h = await harness()
    first = h.opened[-1]
    first.errors.append(OSError(errno.EBADF, "gone"))
    h.send(route(2, None, 0))
    await wait_for(lambda: len(h.opened) == 2 and h.watch.watching.is_set(), timeout=5)
    assert first.fileno() == -1
    await h.fence()


async def test_cancel_closes_the_socket_and_drops_what_is_pending(harness: Any) -> None:
    h = Harness(debounce_s=10.0, max_delay_s=10.0)
    task = asyncio.create_task(h.watch.run(), name="netwatch")
    await asyncio.wait_for(h.watch.watching.wait(), 5)
    h.send(route(2, None, 0))
    await wait_for(lambda: h.watch._timer is not None, timeout=5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert h.opened[0].fileno() == -1
    assert not h.watch.watching.is_set()
    assert h.watch._timer is None
    assert h.calls == []
    h.close()


async def test_a_failing_callback_does_not_stop_the_watch(harness: Any) -> None:
    h = await harness()
    calls = h.calls

    def broken(changes: list[NetworkChange]) -> None:
        calls.append(changes)
        if len(calls) == 1:
            raise RuntimeError("callback bug")

    h.watch.on_change = broken
    h.send(route(2, None, 0))
    await wait_for(lambda: calls, timeout=5)
    await h.fence()
    assert len(calls) == 2


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        NetworkWatch(lambda c: None, debounce_s=-1)
    with pytest.raises(ValueError):
        NetworkWatch(lambda c: None, debounce_s=1.0, max_delay_s=0.5)


@pytest.mark.skipif(not hasattr(socket, "AF_NETLINK"), reason="Linux only")
def test_dump_and_subscribe_on_this_machine() -> None:
    from runtime.netwatch import dump, open_netlink
    from runtime.rtnetlink import GROUPS

    known = dump()
    assert any(c.kind == "link" and c.loopback and c.up for c in known)
    assert any(c.kind == "address" and c.address == "127.0.0.1" for c in known)
    with open_netlink() as sock:
        assert sock.getsockname()[1] == GROUPS
        assert not sock.getblocking()

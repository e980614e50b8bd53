"""The lab's link emulator: forwards Ethernet frames between the two interfaces of the link
namespace, each way through a `LinkDirection` (tests/lab/model.py), controlled over stdin and
stdout (tests/lab/control.py).

    python -m tests.lab.linkd VEHICLE_SIDE_IFACE CORE_SIDE_IFACE

Frames are read and written with AF_PACKET sockets. Frames this process sent itself come
back marked PACKET_OUTGOING and are skipped. Both sockets use PACKET_VNET_HDR: a veth leaves
TCP/UDP checksums to "hardware", so a frame copied raw would reach the far end with a bad
checksum and be dropped; the virtio-net header carries that offload state across unchanged.
The lab limits segmentation offload on its veths to one segment, so every frame here is one
packet on the wire.
"""

from __future__ import annotations

import argparse
import os
import random
import selectors
import socket
import sys
import time
from collections.abc import Callable
from typing import Literal

from pydantic import ValidationError

from tests.lab.control import REQUESTS, DirectionStatus, LinkState, SetFaults
from tests.lab.model import LinkDirection

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
SO_RCVBUFFORCE = 33  # Linux; not exported by the socket module
VNET_HDR_LEN = 10
MAX_FRAME = VNET_HDR_LEN + 65_536
RECEIVE_BUFFER = 8 << 20
# Frames read from one socket before the other side and the control channel get a turn.
BATCH = 256

Way = Literal["uplink", "downlink"]
WAYS: tuple[Way, Way] = ("uplink", "downlink")


def open_port(iface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    # Root may exceed rmem_max: a UDP blast must queue here, not be dropped by the kernel.
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    sock.bind((iface, 0))
    sock.setblocking(False)
    return sock


def carries_data(frame: bytes) -> bool:
    """An IPv4 UDP datagram, or a TCP segment with payload (not a bare ACK), behind the
    virtio-net header."""
    eth = VNET_HDR_LEN
    if len(frame) < eth + 34 or frame[eth + 12 : eth + 14] != b"\x08\x00":
        return False
    ip = eth + 14
    ihl = (frame[ip] & 0x0F) * 4
    total = int.from_bytes(frame[ip + 2 : ip + 4], "big")
    proto = frame[ip + 9]
    if proto == socket.IPPROTO_UDP:
        return True
    if proto != socket.IPPROTO_TCP or len(frame) < ip + ihl + 13:
        return False
    tcp_header = (frame[ip + ihl + 12] >> 4) * 4
    return total - ihl - tcp_header > 0


class Forwarder:
    def __init__(
        self,
        vehicle_side: socket.socket,
        core_side: socket.socket,
        rand: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.ways: dict[Way, LinkDirection[bytes]] = {way: LinkDirection(rand) for way in WAYS}
        self._routes: dict[socket.socket, tuple[Way, socket.socket]] = {
            vehicle_side: ("uplink", core_side),
            core_side: ("downlink", vehicle_side),
        }
        self._out: dict[Way, socket.socket] = {"uplink": core_side, "downlink": vehicle_side}
        self._last_data_at: dict[Way, float | None] = dict.fromkeys(WAYS)

    def receive(self, sock: socket.socket) -> None:
        way, _ = self._routes[sock]
        direction = self.ways[way]
        for _ in range(BATCH):
            try:
                frame, address = sock.recvfrom(MAX_FRAME)
            except BlockingIOError:
                return
            if address[2] == socket.PACKET_OUTGOING:
                continue
            direction.offer(frame, len(frame) - VNET_HDR_LEN, self.clock())

    def deliver(self) -> None:
        for way in WAYS:
            now = self.clock()
            for frame in self.ways[way].due(now):
                try:
                    self._out[way].send(frame)
                except OSError:
                    # The far veth is gone or full: on a radio link this frame is lost.
                    continue
                if carries_data(frame):
                    self._last_data_at[way] = now

    def timeout(self) -> float | None:
        times = [t for t in (self.ways[w].next_due() for w in WAYS) if t is not None]
        return max(0.0, min(times) - self.clock()) if times else None

    def handle(self, line: str) -> LinkState:
        try:
            request = REQUESTS.validate_json(line)
        except ValidationError as exc:
            return self.state(error=str(exc.errors(include_url=False)[:3]))
        now = self.clock()
        ways = WAYS if request.direction == "both" else (request.direction,)
        for way in ways:
            direction = self.ways[way]
            if isinstance(request, SetFaults):
                direction.set_faults(request.faults)
            elif request.op in ("cut", "restore"):
                direction.set_cut(request.op == "cut", now)
        return self.state(now=now)

    def state(self, now: float | None = None, error: str | None = None) -> LinkState:
        status = {
            way: DirectionStatus(
                faults=d.faults,
                cut=d.cut,
                stats=d.stats.model_copy(),
                last_data_at=self._last_data_at[way],
            )
            for way, d in self.ways.items()
        }
        return LinkState(
            ok=error is None,
            error=error,
            now=self.clock() if now is None else now,
            uplink=status["uplink"],
            downlink=status["downlink"],
        )


def reply(state: LinkState) -> None:
    sys.stdout.write(state.model_dump_json() + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.linkd")
    parser.add_argument("vehicle_side")
    parser.add_argument("core_side")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    vehicle_side, core_side = open_port(args.vehicle_side), open_port(args.core_side)
    forwarder = Forwarder(vehicle_side, core_side, random.Random(args.seed).random)
    selector = selectors.DefaultSelector()
    for sock in (vehicle_side, core_side):
        selector.register(sock, selectors.EVENT_READ)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    selector.register(stdin, selectors.EVENT_READ)
    pending = b""
    reply(forwarder.state())
    while True:
        events = selector.select(forwarder.timeout())
        for key, _ in events:
            if key.fd != stdin:
                forwarder.receive(key.fileobj)  # type: ignore[arg-type]
        forwarder.deliver()
        # Control last: a reply's counters include every frame that came before it.
        if any(key.fd == stdin for key, _ in events):
            chunk = os.read(stdin, 65_536)
            if not chunk:
                return 0  # the lab closed our stdin: it is done with the link
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    reply(forwarder.handle(line.decode(errors="replace")))


if __name__ == "__main__":
    sys.exit(main())

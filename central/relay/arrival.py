"""Kernel receive times for a publisher's RTP, for the relay's bandwidth estimate.

aiortc stamps a packet's arrival when its receive task gets to it. In a relay fanning each
frame out to many viewers that is up to tens of milliseconds after the packet came in, more
or less from one frame to the next, and aiortc's delay-based estimator takes that spread
for a queue building up on the publisher's uplink: its REMB falls though nothing is lost,
and the publisher's degrade ladder cuts bitrate and frame rate for every viewer. The kernel
stamps each datagram as it comes in (SIOCGSTAMP, asked right after the read): that time,
not the relay's load, goes to the estimator. Packets without one keep aiortc's stamp.

The same holds for the publisher's sender reports: the delay since the last one, which the
relay's receiver reports carry (DLSR), counts from when it came in, so the round trip the
publisher derives is the network's and not the relay's backlog (which its ladder would take
for queueing).
"""

from __future__ import annotations

import datetime
import fcntl
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.clock import NTP_EPOCH
from aiortc.rtp import RtcpSrPacket, RtpPacket

# Linux: the receive time of the last datagram read from a socket (struct timeval).
SIOCGSTAMP = 0x8906
_TIMEVAL = struct.Struct("@ll")
# Datagrams read but not (yet) handed to the receiver are forgotten beyond this many.
MAX_PENDING = 1024
RTCP_SENDER_REPORT = 200
# RTCP packet types 192..223 seen as RTP payload types (marker bit clear), RFC 5761.
_RTCP_TYPES = range(64, 96)
# In place of a sequence number (16 bits) in the key of a sender report.
_SR = 1 << 16

Key = tuple[int, int]


def packet_key(datagram: bytes) -> Key | None:
    """What a publisher's datagram is, from its header (in the clear in SRTP and SRTCP):
    (SSRC, sequence number) for RTP, (SSRC, _SR) for a sender report; None for other RTCP,
    STUN, DTLS or anything too short."""
    if len(datagram) < 12 or not 128 <= datagram[0] < 192:
        return None
    if datagram[1] & 0x7F not in _RTCP_TYPES:
        ssrc, sequence_number = datagram[8:12], datagram[2:4]
        return rtp_key(int.from_bytes(ssrc, "big"), int.from_bytes(sequence_number, "big"))
    if datagram[1] == RTCP_SENDER_REPORT:
        return sender_report_key(int.from_bytes(datagram[4:8], "big"))
    return None


def rtp_key(ssrc: int, sequence_number: int) -> Key:
    return ssrc, sequence_number


def sender_report_key(ssrc: int) -> Key:
    return ssrc, _SR


def ntp_ms(unix_s: float) -> int:
    """A Unix time on aiortc's arrival clock (milliseconds since the NTP epoch)."""
    moment = datetime.datetime.fromtimestamp(unix_s, datetime.UTC)
    return int((moment - NTP_EPOCH).total_seconds() * 1000)


class ArrivalTimes:
    """Kernel arrival times (Unix) of datagrams read, until the receiver takes them."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._max_pending = max_pending
        self._times: dict[Key, float] = {}

    def __len__(self) -> int:
        return len(self._times)

    def heard(self, key: Key, arrived: float) -> None:
        self._times.pop(key, None)
        self._times[key] = arrived
        while len(self._times) > self._max_pending:
            del self._times[next(iter(self._times))]

    def take(self, key: Key) -> float | None:
        return self._times.pop(key, None)


def kernel_arrival(sock: socket.socket | Any) -> float | None:
    """When the last datagram read from `sock` arrived (Unix time), if the kernel says."""
    try:
        seconds, micros = _TIMEVAL.unpack(fcntl.ioctl(sock.fileno(), SIOCGSTAMP, bytes(16)))
    except OSError:
        return None
    return float(seconds + micros / 1_000_000)


def _protocols(receiver: RTCRtpReceiver) -> list[Any]:
    gatherer = receiver.transport.transport.iceGatherer
    connection: Any = getattr(gatherer, "_connection", None)
    return list(getattr(connection, "_protocols", None) or [])


def use_kernel_arrival(receiver: RTCRtpReceiver) -> int:
    """Stamp the RTP and sender reports that reach `receiver` with the kernel's arrival
    times (call once ICE has gathered: after the answer is set). Returns how many sockets
    are watched."""
    times = ArrivalTimes()
    watched = 0
    for protocol in _protocols(receiver):
        transport = getattr(protocol, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            continue
        kernel_arrival(sock)  # the first ask turns the socket's timestamps on
        protocol.datagram_received = _stamping(protocol.datagram_received, sock, times)
        watched += 1
    if not watched:
        return 0
    handle_rtp: Callable[[RtpPacket, int], Awaitable[None]] = receiver._handle_rtp_packet
    handle_rtcp: Callable[[Any], Awaitable[None]] = receiver._handle_rtcp_packet
    # aiortc's own record of when each sender's last report came (pinned to 1.16).
    lsr_time: dict[int, float] = receiver._RTCRtpReceiver__lsr_time  # type: ignore[attr-defined]

    async def rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
        arrived = times.take(rtp_key(packet.ssrc, packet.sequence_number))
        await handle_rtp(packet, arrival_time_ms if arrived is None else ntp_ms(arrived))

    async def rtcp(packet: Any) -> None:
        await handle_rtcp(packet)
        if isinstance(packet, RtcpSrPacket):
            arrived = times.take(sender_report_key(packet.ssrc))
            if arrived is not None and packet.ssrc in lsr_time:
                lsr_time[packet.ssrc] = arrived

    receiver._handle_rtp_packet = rtp  # type: ignore[method-assign]
    receiver._handle_rtcp_packet = rtcp  # type: ignore[method-assign]
    return watched


def _stamping(
    received: Callable[[bytes, Any], None], sock: Any, times: ArrivalTimes
) -> Callable[[bytes, Any], None]:
    def datagram_received(data: bytes, addr: Any) -> None:
        key = packet_key(data)
        if key is not None:
            arrived = kernel_arrival(sock)
            if arrived is not None:
                times.heard(key, arrived)
        received(data, addr)

    return datagram_received

"""The aiortc internals the publisher relies on, all in one place. Pinned to aiortc 1.16.0
(pyproject); tests/unit/test_publisher_watchdog.py checks every hook against the installed
aiortc, and the publisher's integration tests exercise them with real peers.

- RTCP addressed to a sender (receiver reports, REMB, NACK, PLI/FIR) reaches it through
  `RTCRtpSender._handle_rtcp_packet`, which the DTLS transport's router calls by attribute on
  the sender instance. Wrapping that attribute on our own sender sees every packet after
  aiortc has handled it (aiortc still retransmits); nothing process-wide changes.
- The sender's reports leave through `RTCRtpSender._send_rtcp`, also called by attribute:
  wrapping it notes when each sender report left, for the round trip (agent/uplink.py).
- A PLI/FIR only sets aiortc's own force-keyframe flag (`_send_keyframe`); pass-through
  media must ask the camera instead.
- The media UDP sockets: sender.transport (DTLS) .transport (ICE) .iceGatherer, then aioice's
  private `_connection._protocols`, each an asyncio datagram protocol with its `transport`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from runtime.media import CLOCK_RATE

AIORTC_VERSION = "1.16.0"


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """The relay's report block for our stream; `lsr`/`dlsr` as RFC 3550 has them."""

    fraction_lost: float
    highest_sequence: int
    jitter_s: float
    lsr: int
    dlsr: int


@dataclass(frozen=True, slots=True)
class RtcpFeedback:
    """One RTCP packet from the relay to our sender; at most one of the fields is set."""

    report: ReceiverReport | None = None
    remb_bps: int | None = None


def feedback_of(sender: RTCRtpSender, packet: AnyRtcpPacket) -> RtcpFeedback:
    if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
        for block in packet.reports:
            if block.ssrc == sender._ssrc:
                return RtcpFeedback(
                    report=ReceiverReport(
                        fraction_lost=block.fraction_lost / 256,
                        highest_sequence=block.highest_sequence,
                        jitter_s=block.jitter / CLOCK_RATE,
                        lsr=block.lsr,
                        dlsr=block.dlsr,
                    )
                )
    elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
        try:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
        except ValueError:
            return RtcpFeedback()
        if sender._ssrc in ssrcs:
            return RtcpFeedback(remb_bps=bitrate)
    return RtcpFeedback()


def tap_rtcp(sender: RTCRtpSender, listener: Callable[[RtcpFeedback], None]) -> None:
    """Call `listener` with every RTCP packet that reaches `sender`, after aiortc."""
    original: Callable[[AnyRtcpPacket], Awaitable[None]] = sender._handle_rtcp_packet

    async def tapped(packet: AnyRtcpPacket) -> None:
        await original(packet)
        listener(feedback_of(sender, packet))

    setattr(sender, "_handle_rtcp_packet", tapped)  # noqa: B010


def tap_sender_reports(sender: RTCRtpSender, listener: Callable[[int], None]) -> None:
    """Call `listener` with the LSR (middle 32 bits of the NTP time) of each sender report
    `sender` sends, as it leaves."""
    original: Callable[[list[AnyRtcpPacket]], Awaitable[None]] = sender._send_rtcp

    async def tapped(packets: list[AnyRtcpPacket]) -> None:
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                listener((packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF)
        await original(packets)

    setattr(sender, "_send_rtcp", tapped)  # noqa: B010


def keyframes_from(sender: RTCRtpSender, request: Callable[[], object]) -> None:
    """A PLI/FIR from the relay asks the camera for a keyframe."""
    setattr(sender, "_send_keyframe", request)  # noqa: B010


def _datagram_transports(sender: RTCRtpSender) -> list[asyncio.BaseTransport]:
    connection: Any = getattr(sender.transport.transport.iceGatherer, "_connection", None)
    protocols = getattr(connection, "_protocols", None) or []
    found = []
    for protocol in protocols:
        transport = getattr(protocol, "transport", None)
        # asyncio's selector datagram transport is not a DatagramTransport subclass.
        if isinstance(transport, asyncio.BaseTransport):
            found.append(transport)
    return found


def media_sockets(sender: RTCRtpSender) -> list[socket.socket]:
    """The UDP sockets ICE gathered for this sender (one per host address)."""
    sockets = []
    for transport in _datagram_transports(sender):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sockets.append(sock)
    return sockets


def send_backlog(sender: RTCRtpSender) -> int:
    """Bytes waiting in user space to be sent on the media sockets (asyncio buffers a
    datagram the kernel refused, without bound)."""
    total = 0
    for transport in _datagram_transports(sender):
        size = getattr(transport, "get_write_buffer_size", None)
        total += size() if callable(size) else 0
    return total

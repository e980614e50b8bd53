"""The media watchdog (pure), and the aiortc hooks it depends on, pinned to aiortc 1.16.0."""

from __future__ import annotations

import inspect
import socket
from collections.abc import AsyncIterator

import aiortc
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
)

from agent.aiortc_hooks import (
    AIORTC_VERSION,
    ReceiverReport,
    RtcpFeedback,
    keyframes_from,
    media_sockets,
    send_backlog,
    tap_rtcp,
    tap_sender_reports,
)
from agent.media_watchdog import MediaWatchdog, SessionEnds
from runtime.config import IceSettings
from runtime.dscp import DSCP_AF21, set_dscp
from runtime.webrtc import apply_ice

FPS = 30


def run(
    dog: MediaWatchdog,
    seconds: float,
    start: float = 0.0,
    send: bool = True,
    report_every: float | None = 1.0,
    progress: bool = True,
) -> float | None:
    """Frames at 30 fps and a report every `report_every` s; the time it expired, if so."""
    ticks = round(seconds * FPS)
    for i in range(1, ticks + 1):
        now = start + i / FPS
        if send:
            dog.sent(now)
        if report_every is not None and i % round(report_every * FPS) == 0:
            if progress:
                dog.progress(now)
            else:
                dog.rtcp(now)
        if dog.expired(now) is not None:
            return now
    return None


def test_nothing_sent_nothing_expected() -> None:
    dog = MediaWatchdog(3.0)
    assert run(dog, 30, send=False, report_every=None) is None


def test_silence_after_the_first_frame_expires_after_the_timeout() -> None:
    dog = MediaWatchdog(3.0)
    dog.sent(10.0)
    assert dog.expired(12.9) is None
    assert dog.expired(13.1) == "no_rtcp"
    assert not dog.heard


def test_reports_keep_it_alive_and_their_silence_ends_it() -> None:
    dog = MediaWatchdog(3.0)
    assert run(dog, 60) is None
    assert dog.heard
    expired = run(dog, 10, start=60, report_every=None)
    assert expired is not None and 63.0 < expired <= 63.2
    assert dog.expired(expired) == "no_rtcp"


def test_reports_that_stop_acknowledging_mean_a_one_way_cut() -> None:
    dog = MediaWatchdog(3.0)
    assert run(dog, 10) is None
    expired = run(dog, 10, start=10, progress=False)
    assert expired is not None and dog.expired(expired) == "no_progress"


def test_a_camera_that_pauses_is_not_a_dead_path() -> None:
    dog = MediaWatchdog(3.0)
    assert run(dog, 5) is None
    # The camera delivers nothing; the relay keeps reporting the same last packet.
    assert run(dog, 30, start=5, send=False, progress=False) is None


def test_slow_reports_within_the_timeout_are_fine() -> None:
    dog = MediaWatchdog(3.0)
    assert run(dog, 60, report_every=1.5) is None


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MediaWatchdog(0)


def test_what_a_session_end_means_for_the_next() -> None:
    ends = SessionEnds(healthy_s=10.0)
    assert ends.outcome("rebuild: network change", 0.5, heard=False) == "rebuild"
    assert ends.outcome("closed", 120.0, heard=True) == "lasted"
    assert ends.outcome("failed", None, heard=False) == "failed"  # never connected
    # The watchdog: at once after a session the relay had answered...
    assert ends.outcome("no_rtcp", 60.0, heard=True) == "rebuild"
    assert ends.outcome("no_rtcp", 4.0, heard=True) == "rebuild"
    # ...but a path that dies again within seconds backs off, until a session lasts.
    assert ends.outcome("no_progress", 4.0, heard=True) == "failed"
    assert ends.outcome("no_rtcp", 3.0, heard=True) == "failed"
    assert ends.outcome("closed", 30.0, heard=True) == "lasted"
    assert ends.outcome("no_rtcp", 3.0, heard=True) == "rebuild"
    # A relay that never answered at all is not a dead path found: it is a failure.
    assert SessionEnds().outcome("no_rtcp", 3.5, heard=False) == "failed"


# ---- the aiortc hooks ------------------------------------------------------------------------


def test_aiortc_is_the_pinned_version() -> None:
    assert aiortc.__version__ == AIORTC_VERSION


def test_the_dtls_router_calls_the_sender_hook_by_attribute() -> None:
    """Wrapping `_handle_rtcp_packet` on an instance works only while aiortc looks it up on
    the recipient each time."""
    source = inspect.getsource(RTCDtlsTransport._handle_rtcp_data)
    assert "await recipient._handle_rtcp_packet(packet)" in source
    assert callable(RTCRtpSender._handle_rtcp_packet)


@pytest.fixture
async def sender() -> AsyncIterator[RTCRtpSender]:
    pc = RTCPeerConnection(apply_ice(IceSettings(host_addresses=["127.0.0.1"])))
    transceiver = pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    yield transceiver.sender
    await pc.close()


def receiver_report(
    ssrc: int, fraction_lost: int, packets_lost: int, highest_sequence: int, jitter: int
) -> RtcpRrPacket:
    """A receiver report from SSRC 7 with one block, about `ssrc`; it refers to no sender
    report (lsr and dlsr 0)."""
    block = RtcpReceiverInfo(ssrc, fraction_lost, packets_lost, highest_sequence, jitter, 0, 0)
    return RtcpRrPacket(ssrc=7, reports=[block])


async def test_rtcp_reaches_the_tap_after_aiortc(sender: RTCRtpSender) -> None:
    heard: list[RtcpFeedback] = []
    tap_rtcp(sender, heard.append)
    asked: list[bool] = []
    keyframes_from(sender, lambda: asked.append(True))
    ssrc = sender._ssrc
    ours = receiver_report(
        ssrc, fraction_lost=64, packets_lost=3, highest_sequence=1234, jitter=900
    )
    await sender._handle_rtcp_packet(ours)
    other = receiver_report(ssrc + 1, fraction_lost=0, packets_lost=0, highest_sequence=1, jitter=0)
    await sender._handle_rtcp_packet(other)
    remb = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=7, media_ssrc=0, fci=pack_remb_fci(150_000, [ssrc])
    )
    await sender._handle_rtcp_packet(remb)
    await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=7, media_ssrc=ssrc))
    assert heard == [
        RtcpFeedback(report=ReceiverReport(0.25, 1234, 0.01, lsr=0, dlsr=0)),
        RtcpFeedback(),  # a report about another stream: heard, but nothing for us
        RtcpFeedback(remb_bps=150_000),
        RtcpFeedback(),
    ]
    assert asked == [True]


async def test_sender_reports_are_noted_as_they_leave(sender: RTCRtpSender) -> None:
    source = inspect.getsource(RTCRtpSender._run_rtcp)
    assert "await self._send_rtcp(packets)" in source  # called by attribute
    left: list[int] = []
    tap_sender_reports(sender, left.append)
    info = RtcpSenderInfo(
        ntp_timestamp=0x0123456789ABCDEF, rtp_timestamp=0, packet_count=0, octet_count=0
    )
    await sender._send_rtcp([RtcpSrPacket(ssrc=sender._ssrc, sender_info=info)])
    assert left == [0x456789AB]  # the middle 32 bits, as a receiver report's LSR has them


async def test_media_sockets_are_found_and_marked(sender: RTCRtpSender) -> None:
    sockets = media_sockets(sender)
    assert sockets
    for sock in sockets:
        assert sock.type == socket.SOCK_DGRAM
        assert set_dscp(sock, DSCP_AF21)
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == DSCP_AF21 << 2
    assert send_backlog(sender) == 0


def test_dscp_range_is_checked() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(ValueError):
        set_dscp(sock, 64)

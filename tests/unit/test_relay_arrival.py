"""The relay's kernel arrival times: which datagrams they are kept for, and the kernel's
stamp of a datagram read late."""

import select
import socket
import time
from collections.abc import Iterator

import pytest
from aiortc import clock
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket, RtpPacket

from central.relay.arrival import (
    ArrivalTimes,
    kernel_arrival,
    ntp_ms,
    packet_key,
    rtp_key,
    sender_report_key,
)


def rtp(ssrc: int, sequence_number: int, marker: int = 0, payload_type: int = 96) -> bytes:
    packet = RtpPacket(payload_type=payload_type, sequence_number=sequence_number, ssrc=ssrc)
    packet.marker = marker
    packet.payload = b"\x10" * 100
    return packet.serialize()


def test_rtp_is_known_by_ssrc_and_sequence_number() -> None:
    assert packet_key(rtp(0xDEADBEEF, 65535)) == rtp_key(0xDEADBEEF, 65535)
    assert packet_key(rtp(7, 3, marker=1)) == rtp_key(7, 3)
    assert packet_key(rtp(7, 3, payload_type=127)) == rtp_key(7, 3)


def test_a_sender_report_is_known_by_its_sender() -> None:
    info = RtcpSenderInfo(ntp_timestamp=1 << 40, rtp_timestamp=0, packet_count=1, octet_count=100)
    report = RtcpSrPacket(ssrc=0x01020304, sender_info=info)
    assert packet_key(bytes(report)) == sender_report_key(0x01020304)
    assert sender_report_key(5) != rtp_key(5, 0)  # never a packet's key


def test_other_datagrams_are_not_kept() -> None:
    block = RtcpReceiverInfo(
        ssrc=1, fraction_lost=0, packets_lost=0, highest_sequence=1, jitter=0, lsr=0, dlsr=0
    )
    receiver_report = bytes(RtcpRrPacket(ssrc=9, reports=[block]))
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
    dtls = b"\x16\xfe\xfd" + bytes(20)
    for datagram in (receiver_report, stun, dtls, rtp(1, 1)[:11], b""):
        assert packet_key(datagram) is None


def test_unix_times_land_on_aiortcs_arrival_clock() -> None:
    assert abs(ntp_ms(time.time()) - clock.current_ms()) <= 5
    assert ntp_ms(100.0) - ntp_ms(99.5) == 500


def test_a_time_is_taken_once_and_the_oldest_are_forgotten() -> None:
    times = ArrivalTimes(max_pending=3)
    for sequence_number in range(5):
        times.heard(rtp_key(1, sequence_number), 100.0 + sequence_number)
    assert len(times) == 3
    assert times.take(rtp_key(1, 0)) is None
    assert times.take(rtp_key(1, 4)) == 104.0
    assert times.take(rtp_key(1, 4)) is None
    times.heard(rtp_key(1, 2), 110.0)  # heard again: kept as the newest
    times.heard(rtp_key(1, 5), 105.0)
    times.heard(rtp_key(1, 6), 106.0)
    assert times.take(rtp_key(1, 3)) is None
    assert times.take(rtp_key(1, 2)) == 110.0


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    try:
        yield receiver, sender
    finally:
        receiver.close()
        sender.close()


def read_late(receiver: socket.socket, sender: socket.socket) -> tuple[float, float, float]:
    """Send a datagram and read it 0.2 s after it came, as a busy relay would: (sent, came,
    what the kernel says)."""
    sent = time.time()
    sender.sendto(rtp(1, 1), receiver.getsockname())
    assert select.select([receiver], [], [], 5)[0]
    came = time.time()
    time.sleep(0.2)
    receiver.recv(2048)
    arrived = kernel_arrival(receiver)
    assert arrived is not None
    return sent, came, arrived


def test_the_kernel_says_when_a_datagram_read_late_came_in(
    udp_pair: tuple[socket.socket, socket.socket],
) -> None:
    receiver, sender = udp_pair
    assert kernel_arrival(receiver) is None  # nothing read yet; timestamps now on
    # The kernel switches stamping on a moment later (deferred work): until then it says
    # "now" for a datagram it did not stamp.
    for _ in range(20):
        sent, came, arrived = read_late(receiver, sender)
        if arrived <= came + 0.01:
            break
    assert sent - 0.01 <= arrived <= came + 0.01

"""The fault lab measures what it is told to do: delay, rate, loss, cuts and handovers, with
UDP probes between sockets opened inside the vehicle and core namespaces. Each probe carries
its send time (time.monotonic is one clock for every namespace), so one-way times are exact."""

from __future__ import annotations

import socket
import statistics
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.helpers import wait_until
from tests.lab.lab import FaultLab
from tests.lab.model import Faults
from tests.lab.netns import LabError
from tests.lab.report import ChaosReport

pytestmark = pytest.mark.chaos

PORT = 9_000
PROBE = struct.Struct("!Id")  # sequence number, send time
UDP_IP_ETHERNET = 42  # header bytes the link counts on top of a UDP payload
SO_RCVBUFFORCE = 33
DELAY_PROBES = 25


@pytest.fixture
def probes(fault_lab: FaultLab) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A UDP socket in the vehicle and one in the core, and one probe through (so that ARP
    is settled before a test counts frames)."""
    vehicle = fault_lab.call("vehicle", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    core = fault_lab.call("core", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    with vehicle, core:
        vehicle.bind((fault_lab.vehicle_address, PORT))
        core.bind((fault_lab.core_address, PORT))
        vehicle.connect((fault_lab.core_address, PORT))
        core.connect((fault_lab.vehicle_address, PORT))
        for sock in (vehicle, core):
            sock.settimeout(5.0)
            # Room for a whole blast: what a test counts must be what the link let through.
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        vehicle.send(PROBE.pack(0, time.monotonic()))
        core.recv(2_048)
        yield vehicle, core


def send_probe(sock: socket.socket, seq: int, padding: int = 0) -> None:
    sock.send(PROBE.pack(seq, time.monotonic()) + bytes(padding))


def receive_probe(sock: socket.socket) -> tuple[int, float, int]:
    """(sequence, one-way time, size) of the next probe."""
    data = sock.recv(65_536)
    seq, sent = PROBE.unpack_from(data)
    return seq, time.monotonic() - sent, len(data)


class Receiver:
    """Reads probes on a thread as they come: (arrival, sequence, one-way time, size)."""

    def __init__(self, sock: socket.socket) -> None:
        self.arrivals: list[tuple[float, int, float, int]] = []
        self.raw: list[tuple[float, bytes]] = []
        self._sock = sock
        self._stop = threading.Event()
        sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, name="probe-receiver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65_536)
            except TimeoutError:
                continue
            now = time.monotonic()
            seq, sent = PROBE.unpack_from(data)
            self.raw.append((now, data[PROBE.size :]))
            self.arrivals.append((now, seq, now - sent, len(data)))

    def stop(self) -> list[tuple[float, int, float, int]]:
        self._stop.set()
        self._thread.join()
        return self.arrivals


def drain(sock: socket.socket) -> list[tuple[int, float, int]]:
    sock.settimeout(0.0)
    out = []
    while True:
        try:
            out.append(receive_probe(sock))
        except BlockingIOError:
            return out


def wait_until_settled(lab: FaultLab, offered_at_least: int) -> None:
    """Until the uplink has seen that many frames and has none left in flight."""

    def settled() -> bool:
        uplink = lab.stats().uplink.stats
        return uplink.offered >= offered_at_least and uplink.in_flight == 0

    wait_until(settled, interval=0.02)


def test_delay_with_jitter_each_way(
    fault_lab: FaultLab, probes: tuple[socket.socket, socket.socket], chaos_report: ChaosReport
) -> None:
    vehicle, core = probes
    fault_lab.set_faults(Faults(delay_ms=400, jitter_ms=100))
    up: list[float] = []

    def echo() -> None:
        for _ in range(DELAY_PROBES):
            data = core.recv(2_048)
            _, sent = PROBE.unpack_from(data)
            up.append(time.monotonic() - sent)
            core.send(data + struct.pack("!d", time.monotonic()))

    echoing = threading.Thread(target=echo, name="probe-echo", daemon=True)
    echoing.start()
    receiver = Receiver(vehicle)
    started = time.monotonic()
    for seq in range(DELAY_PROBES):
        send_probe(vehicle, seq)
        # Probes twice the jitter apart: none waits behind the one before (no reordering).
        time.sleep(max(0.0, started + (seq + 1) * 0.2 - time.monotonic()))
    echoing.join(5.0)
    wait_until(lambda: len(receiver.arrivals) == DELAY_PROBES, interval=0.02)
    back = receiver.stop()
    rtt = [one_way for _, _, one_way, _ in back]
    down = [arrival - struct.unpack_from("!d", echoed)[0] for arrival, echoed in receiver.raw]
    scenario = "lab: delay 400 +- 100 ms each way"
    chaos_report.record(scenario, "uplink one-way p50", statistics.median(up) * 1000, "ms")
    chaos_report.record(scenario, "downlink one-way p50", statistics.median(down) * 1000, "ms")
    chaos_report.record(scenario, "round trip p50", statistics.median(rtt) * 1000, "ms")
    # Medians of 25 draws of uniform 300..500 ms: standard error 14 ms.
    for one_way in (up, down):
        assert statistics.median(one_way) == pytest.approx(0.4, abs=0.05)
        # The emulator itself adds well under a millisecond.
        assert min(one_way) >= 0.3 and max(one_way) <= 0.51
    assert statistics.median(rtt) == pytest.approx(0.8, abs=0.07)


def test_rate_limit_paces_a_udp_blast_and_bounds_its_queue(
    fault_lab: FaultLab, probes: tuple[socket.socket, socket.socket], chaos_report: ChaosReport
) -> None:
    vehicle, core = probes
    fault_lab.set_faults(Faults(rate_kbit=150, queue_ms=300), "uplink")
    payload = 1_000
    receiver = Receiver(core)
    started = time.monotonic()
    for seq in range(160):  # ~600 kbit/s for 2 s: four times the rate
        send_probe(vehicle, seq, payload - PROBE.size)
        time.sleep(max(0.0, started + (seq + 1) * 0.013 - time.monotonic()))
    wait_until_settled(fault_lab, 160)
    arrivals = receiver.stop()
    # Past the first bucketful the link sends at exactly its rate.
    paced = arrivals[3:]
    elapsed = paced[-1][0] - paced[0][0]
    wire_bits = (len(paced) - 1) * (payload + UDP_IP_ETHERNET) * 8
    longest_wait = max(one_way for _, _, one_way, _ in arrivals)
    scenario = "lab: rate 150 kbit/s, 300 ms queue"
    chaos_report.record(scenario, "UDP blast throughput", wire_bits / elapsed / 1000, "kbit/s")
    chaos_report.record(scenario, "longest one-way", longest_wait * 1000, "ms")
    assert wire_bits / elapsed == pytest.approx(150_000, rel=0.1)
    assert longest_wait < 0.3 + 0.05
    assert fault_lab.stats().uplink.stats.dropped_queue > 60


def test_random_loss_near_its_probability(
    fault_lab: FaultLab, probes: tuple[socket.socket, socket.socket], chaos_report: ChaosReport
) -> None:
    vehicle, core = probes
    before = fault_lab.stats().uplink.stats.offered
    fault_lab.set_faults(Faults(loss=0.2), "uplink")
    sent = 1_000
    for seq in range(sent):
        send_probe(vehicle, seq)
        if seq % 100 == 99:
            time.sleep(0.01)  # stay inside the socket buffers
    wait_until_settled(fault_lab, before + sent)
    received = len(drain(core))
    chaos_report.record("lab: loss 20 %", "probes lost", (sent - received) / sent * 100, "%")
    # Binomial(1000, 0.8): standard deviation 12.6 frames; this is about +-4 of them.
    assert received / sent == pytest.approx(0.8, abs=0.05)
    stats = fault_lab.stats().uplink.stats
    assert stats.dropped_loss == sent - received


def test_cut_drops_everything_and_restore_brings_it_back(
    fault_lab: FaultLab, probes: tuple[socket.socket, socket.socket]
) -> None:
    vehicle, core = probes
    fault_lab.set_faults(Faults(delay_ms=200))
    send_probe(vehicle, 1)  # on its way when the cut comes: lost with the link
    cut = fault_lab.cut()
    assert cut.uplink.cut and cut.downlink.cut
    for seq in range(2, 12):
        send_probe(vehicle, seq)
        send_probe(core, seq)
    time.sleep(0.3)  # longer than the delay: anything let through would be here by now
    assert drain(core) == [] and drain(vehicle) == []
    restored = fault_lab.restore()
    assert restored.uplink.stats.dropped_cut == 11 and restored.downlink.stats.dropped_cut == 10
    core.settimeout(5.0)
    send_probe(vehicle, 99)
    assert receive_probe(core)[0] == 99


def test_handover_moves_the_vehicle_to_a_new_address(fault_lab: FaultLab) -> None:
    old = fault_lab.vehicle_address
    fault_lab.handover("10.200.0.77")
    shown = fault_lab.ip("vehicle", "-4", "-br", "addr", "show", "dev", "veh0")
    assert "10.200.0.77/24" in shown and old not in shown
    stale = fault_lab.call("vehicle", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    with stale, pytest.raises(OSError):
        stale.bind((old, 0))
    vehicle = fault_lab.call("vehicle", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    core = fault_lab.call("core", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    with vehicle, core:
        core.bind((fault_lab.core_address, PORT))
        core.settimeout(5.0)
        vehicle.sendto(b"here", (fault_lab.core_address, PORT))
        data, source = core.recvfrom(100)
        assert data == b"here" and source[0] == "10.200.0.77"
    with pytest.raises(LabError):
        fault_lab.handover("192.0.2.1")  # the lab never leaves its private range


def test_processes_run_inside_and_everything_goes_at_close() -> None:
    with FaultLab() as lab:
        shown = lab.spawn("core", ["ip", "-4", "-br", "addr"], stdout=subprocess.PIPE)
        out, _ = shown.communicate(timeout=10)
        assert lab.core_address in out
        sleeper = lab.spawn_python("vehicle", "-c", "import time; time.sleep(600)")
        names = set(lab.namespaces.values())
    assert sleeper.poll() is not None
    listed = subprocess.run(
        ["ip", "netns", "list"], check=False, capture_output=True, text=True
    ).stdout
    assert not names & {line.split()[0] for line in listed.splitlines() if line.strip()}


def test_tcp_crosses_the_link_and_outlives_a_short_cut(fault_lab: FaultLab) -> None:
    listener = fault_lab.call("core", socket.create_server, (fault_lab.core_address, PORT))
    vehicle = fault_lab.call(
        "vehicle", socket.create_connection, (fault_lab.core_address, PORT), 5.0
    )
    with listener, vehicle:
        accepted, _ = listener.accept()
        with accepted:
            accepted.settimeout(10.0)
            blob = bytes(range(256)) * 4_096  # 1 MiB: many full-size segments, checksummed
            sender = threading.Thread(target=vehicle.sendall, args=(blob,), daemon=True)
            sender.start()
            assert read_exactly(accepted, len(blob)) == blob
            sender.join()
            fault_lab.cut()
            vehicle.sendall(b"sent into the cut")
            time.sleep(0.5)
            fault_lab.restore()
            # TCP retransmits once the link is back; the connection never noticed.
            assert read_exactly(accepted, 17) == b"sent into the cut"


def read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(size - got)
        assert chunk, "connection closed"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)

"""The agent's health: heartbeats, restart counts, the Prometheus text (read back with
prometheus_client's own parser), the local HTTP endpoint and systemd's notify datagrams."""

import asyncio
import os
import socket
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from agent.doctor_checks import _skew
from agent.health import AgentHealth, HealthSnapshot, Heartbeats, Restarts, render_metrics
from agent.health_server import HealthServer
from agent.sd_notify import Notifier, keep_watchdog, watchdog_interval


def snapshot(stalled: list[str] | None = None, **extra: object) -> HealthSnapshot:
    values: dict[str, object] = {
        "uptime_s": 12.5,
        "links": {"mqtt": True, "bodycam": False, "camera": True},
        "outbox_rows": 3,
        "outbox_bytes": 900,
        "outbox_dropped": 1,
        "mqtt_connects": 2,
        "commands_rejected": 0,
        "stream_live": True,
        "uplink_level": "reduced",
        "restarts": {"device": 1, "outbox": 0},
        "loop_ages_s": {"device": 0.2},
        "stalled": stalled or [],
        "evidence_segments_waiting": 4,
        "evidence_bytes_waiting": 4096,
        "camera_frames": 300,
    }
    values.update(extra)
    return HealthSnapshot(**values)  # type: ignore[arg-type]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_metrics_are_valid_prometheus_text_with_every_part() -> None:
    got = samples(render_metrics(snapshot()))
    assert got[("rtcc_agent_healthy", ())] == 1
    assert got[("rtcc_agent_uptime_seconds", ())] == 12.5
    assert got[("rtcc_agent_link_up", (("link", "mqtt"),))] == 1
    assert got[("rtcc_agent_link_up", (("link", "bodycam"),))] == 0
    assert got[("rtcc_agent_outbox_rows", ())] == 3
    assert got[("rtcc_agent_outbox_dropped_total", ())] == 1
    assert got[("rtcc_agent_stream_live", ())] == 1
    assert got[("rtcc_agent_uplink_level", (("level", "reduced"),))] == 1
    assert got[("rtcc_agent_task_restarts_total", (("task", "device"),))] == 1
    assert got[("rtcc_agent_loop_age_seconds", (("loop", "device"),))] == 0.2
    assert got[("rtcc_agent_evidence_backlog_segments", ())] == 4
    assert got[("rtcc_agent_evidence_backlog_bytes", ())] == 4096
    assert got[("rtcc_agent_camera_frames_total", ())] == 300


def test_a_unit_without_evidence_or_stream_leaves_those_out() -> None:
    text = render_metrics(
        snapshot(
            evidence_segments_waiting=None,
            evidence_bytes_waiting=None,
            camera_frames=None,
            uplink_level=None,
            stalled=["device"],
        )
    )
    got = samples(text)
    assert got[("rtcc_agent_healthy", ())] == 0
    assert "evidence" not in text and "camera_frames" not in text and "uplink" not in text


def test_label_values_are_escaped() -> None:
    got = samples(render_metrics(snapshot(restarts={'a"b\\c\nd': 2})))
    assert got[("rtcc_agent_task_restarts_total", (("task", 'a"b\\c\nd'),))] == 2


def test_a_loop_is_stalled_once_silent_past_the_allowance() -> None:
    beats = Heartbeats(["device", "other"], stall_after_s=2.0, started=100.0)
    assert beats.stalled(101.9) == []
    beats.beat("device", 101.0)
    assert beats.stalled(102.5) == ["other"]
    assert beats.stalled(103.5) == ["device", "other"]
    assert beats.ages(103.5) == {"device": 2.5, "other": 3.5}


async def test_restarts_count_every_start_after_the_first() -> None:
    restarts = Restarts()
    runs = 0

    async def run() -> None:
        nonlocal runs
        runs += 1

    counted = restarts.counted("device", run)
    assert restarts.counts == {"device": -1}
    for _ in range(3):
        await counted()
    assert (runs, restarts.counts["device"]) == (3, 2)


def test_the_camera_is_up_while_its_frames_move() -> None:
    health = AgentHealth(["device"], 15.0, started=0.0)
    assert not health.camera_flowing(0, 1.0)
    assert health.camera_flowing(10, 2.0)
    assert health.camera_flowing(10, 6.9)
    assert not health.camera_flowing(10, 7.5)
    assert health.camera_flowing(11, 8.0)
    assert health.uptime(8.0) == 8.0


async def http(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_the_endpoint_serves_metrics_and_healthz_on_loopback() -> None:
    stalled: list[str] = []

    async def current() -> HealthSnapshot:
        return snapshot(stalled=stalled)

    server = HealthServer("127.0.0.1", 0, current)
    await server.start()
    try:
        answer = await http(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"text/plain; version=0.0.4" in head
        assert samples(body.decode())[("rtcc_agent_healthy", ())] == 1
        assert (await http(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(
            b"HTTP/1.1 200"
        )
        stalled.append("device")
        answer = await http(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503") and answer.endswith(b"wedged: device\n")
        assert (await http(server.port, b"GET /nope HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        assert (await http(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(
            b"HTTP/1.1 405"
        )
        # A request that never ends its head gets no answer and does not hold the server.
        assert await http(server.port, b"GET /metrics" + b"x" * 10_000) == b""
    finally:
        await server.close()


def receiver(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    return sock


def test_notifier_sends_datagrams_to_the_socket_systemd_names(tmp_path: Path) -> None:
    sock = receiver(tmp_path)
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert notifier.enabled and notifier.send("READY=1")
    assert sock.recv(100) == b"READY=1"
    notifier.close()
    sock.close()


def test_notifier_reaches_an_abstract_socket() -> None:
    name = f"rtcc-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
    assert notifier.send("WATCHDOG=1")
    assert sock.recv(100) == b"WATCHDOG=1"
    notifier.close()
    sock.close()


def test_without_systemd_nothing_is_sent(tmp_path: Path) -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.send("READY=1")
    # A socket that went away is logged, never raised.
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not gone.send("READY=1")
    gone.close()


def test_the_watchdog_is_fed_at_a_third_of_its_period_for_this_process_only() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    mine = {"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 1.0
    assert watchdog_interval({**mine, "WATCHDOG_PID": "1"}) is None


async def test_the_watchdog_is_withheld_while_a_loop_is_stalled(tmp_path: Path) -> None:
    sock = receiver(tmp_path)
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    stalled: list[str] = []
    task = asyncio.create_task(keep_watchdog(notifier, 0.02, lambda: stalled))
    loop = asyncio.get_running_loop()
    try:
        assert await asyncio.wait_for(loop.sock_recv(sock, 100), 5) == b"WATCHDOG=1"
        stalled.append("device")
        await asyncio.sleep(0.05)  # let a feed already sent arrive, then drain it
        while True:
            try:
                sock.recv(100)
            except BlockingIOError:
                break
        await asyncio.sleep(0.2)
        try:
            sock.recv(100)
            fed = True
        except BlockingIOError:
            fed = False
        assert not fed
        stalled.clear()
        assert await asyncio.wait_for(loop.sock_recv(sock, 100), 5) == b"WATCHDOG=1"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        notifier.close()
        sock.close()


def test_a_date_header_that_is_no_date_is_named_not_a_crash() -> None:
    check = _skew("yesterday-ish", 1_796_000_000.0, 3.0)
    assert check.status == "skip" and "not a date" in check.detail

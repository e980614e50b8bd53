"""The checks of `rtcc doctor`, each on the real thing it names (files, sockets, the broker,
the center, gpsd), each returning what it found and, when it fails, how to fix it."""

from __future__ import annotations

import asyncio
import email.utils
import os
import re
import shutil
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from paho.mqtt.client import MQTT_ERR_SUCCESS

from agent.config import AgentSettings
from agent.doctor_certs import ENROLL, Check
from agent.evidence.status import evidence_status
from agent.vehicle.gpsd import GpsdVehicle
from protocol.models import FixKind
from runtime.config import BrokerUrl
from runtime.mqtt_client import make_client

TIMEOUT_S = 5.0


# ---- the center -------------------------------------------------------------------------


def center(s: AgentSettings, clock: Callable[[], float], max_skew_s: float) -> list[Check]:
    """The center's /healthz over its HTTPS, and this clock against its Date header."""
    if s.center_url is None:
        skip = "no center_url configured"
        return [Check("center", "skip", skip), Check("clock", "skip", skip)]
    url = s.center_url.rstrip("/") + "/healthz"
    try:
        with httpx.Client(verify=s.center_tls(), timeout=TIMEOUT_S) as http:
            sent = clock()
            answer = http.get(url)
            received = clock()
    except httpx.HTTPError as exc:
        fix = (
            "check center_url and the network; on TLS errors set center_ca_file to the "
            "center's CA (ca.pem)"
        )
        failed = Check("center", "fail", f"{url}: {exc or type(exc).__name__}", fix)
        return [failed, Check("clock", "skip", "the center did not answer")]
    if answer.status_code != 200:
        reached = Check(
            "center",
            "fail",
            f"{url}: HTTP {answer.status_code}",
            "the center answers but is not healthy: see its logs",
        )
    else:
        reached = Check("center", "ok", f"{url} answered in {received - sent:.2f} s")
    return [reached, _skew(answer.headers.get("date"), (sent + received) / 2, max_skew_s)]


def _skew(date: str | None, local: float, max_skew_s: float) -> Check:
    if date is None:
        return Check("clock", "skip", "the center sent no Date header")
    # Date has whole seconds and servers refresh it about once a second: the center's
    # clock was up to ~1.5 s past it, hence the default allowance of 3 s.
    try:
        theirs = email.utils.parsedate_to_datetime(date).timestamp() + 0.5
    except (TypeError, ValueError):
        return Check("clock", "skip", f"the center's Date header is not a date: {date[:64]!r}")
    skew = local - theirs
    facts: dict[str, float | str | None] = {"skew_s": round(skew, 2)}
    if abs(skew) > max_skew_s:
        return Check(
            "clock",
            "fail",
            f"this clock is {skew:+.1f} s off the center's",
            "enable time sync (timedatectl set-ntp true, or chrony pointed at the "
            "center's NTP server); evidence times and certificates depend on it",
            facts,
        )
    return Check(
        "clock", "ok", f"{skew:+.1f} s from the center's (within ±{max_skew_s:g} s)", None, facts
    )


# ---- the broker -------------------------------------------------------------------------


def broker(s: AgentSettings) -> Check:
    """An MQTT CONNECT with the configured TLS to every broker URL."""
    for url in s.broker_urls():
        failed = _connect(s, url)
        if failed is not None:
            return failed
    return Check("broker", "ok", "MQTT CONNECT accepted by " + (s.mqtt_url or ""))


def _connect(s: AgentSettings, url: BrokerUrl) -> Check | None:
    # A client id of its own: the unit's would take the running agent's session over.
    answer: list[str] = []
    client = None
    try:
        client = make_client(f"{s.unit_id}-doctor", url, s.mqtt, s.unit_id, None)
        client.on_connect = lambda _c, _u, _f, code, _p: answer.append(str(code))
        client.connect(url.host, url.port, keepalive=10)
        deadline = time.monotonic() + TIMEOUT_S
        while not answer and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != MQTT_ERR_SUCCESS:
                answer.append("closed")
    except ssl.SSLError as exc:
        return Check("broker", "fail", f"{url}: TLS: {exc.reason or exc}", _tls_fix(exc))
    except OSError as exc:
        return Check(
            "broker",
            "fail",
            f"{url}: {exc.strerror or exc}",
            "check mqtt_url, mqtt.tls's files, and that the broker runs and is reachable "
            "(firewall, VPN, APN)",
        )
    finally:
        if client is not None:
            client.disconnect()
    if not answer:
        return Check(
            "broker",
            "fail",
            f"{url}: no CONNACK within {TIMEOUT_S:g} s",
            "the port answers but not as MQTT: check mqtt_url's scheme (mqtts for TLS) and port",
        )
    if answer[0] == "closed" and url.scheme == "mqtts":
        # With TLS 1.3 the broker checks the client's certificate after the handshake.
        return Check(
            "broker",
            "fail",
            f"{url}: TLS: closed before CONNACK (this certificate refused)",
            "the broker refused this certificate (expired, revoked or from another CA): " + ENROLL,
        )
    if answer[0] != "Success":
        return Check(
            "broker",
            "fail",
            f"{url}: refused: {answer[0]}",
            "the broker does not accept this unit: check its certificate and that it is not "
            "revoked (`rtcc provision list` at the center)",
        )
    return None


def _tls_fix(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            "the broker's certificate is not from mqtt.tls.ca_file's CA: re-enroll or fix ca_file"
        )
    return "the broker refused this certificate (expired, revoked or from another CA): " + ENROLL


# ---- devices ----------------------------------------------------------------------------


def bodycam(s: AgentSettings) -> Check:
    link = s.device.link
    if link is None:
        return Check("bodycam", "skip", "no body-cam link configured (device.link)")
    if link.startswith("tcp://"):
        parts = urlsplit(link)
        try:
            socket.create_connection((parts.hostname, parts.port), TIMEOUT_S).close()
        except (OSError, ValueError) as exc:
            return Check(
                "bodycam",
                "fail",
                f"{link}: {exc}",
                "power the body-cam on and check its network link",
            )
        return Check("bodycam", "ok", f"{link} accepts connections")
    return _device_file("bodycam", Path(link), "plug the body-cam's cable in", "dialout")


def video(s: AgentSettings) -> Check:
    v = s.video
    if v.source == "simulator":
        return Check("video", "ok", "simulated test pattern")
    if v.source == "file":
        assert v.file is not None
        if not os.access(v.file, os.R_OK):
            return Check("video", "fail", f"{v.file} is not readable", "fix video.file")
        return Check("video", "ok", f"file {v.file}")
    if v.source == "v4l2":
        return _device_file("video", Path(v.device), "plug the camera in", "video")
    assert v.url is not None
    return _rtsp(v.url)


def _device_file(name: str, path: Path, plug: str, group: str) -> Check:
    if not path.exists():
        return Check(name, "fail", f"{path} does not exist", f"{plug} (or fix the path)")
    if not os.access(path, os.R_OK | os.W_OK):
        return Check(
            name,
            "fail",
            f"{path}: no read/write access",
            f"add the agent's user to the group {group!r}",
        )
    return Check(name, "ok", f"{path} present and accessible")


def _rtsp(url: str) -> Check:
    parts = urlsplit(url)
    port = parts.port or (322 if parts.scheme == "rtsps" else 554)
    request = f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode()
    fix = "check that the camera is powered and video.url (host, port, path)"
    try:
        with socket.create_connection((parts.hostname, port), TIMEOUT_S) as sock:
            sock.settimeout(TIMEOUT_S)
            sock.sendall(request)
            status = sock.recv(256).split(b"\r\n", 1)[0].decode("latin-1")
    except (OSError, ValueError) as exc:
        return Check("video", "fail", f"{parts.hostname}:{port}: {exc}", fix)
    if not status.startswith("RTSP/1.0 200"):
        return Check("video", "fail", f"camera answered {status!r}", fix)
    return Check("video", "ok", f"RTSP camera at {parts.hostname}:{port} answers")


def gps(s: AgentSettings, wait_s: float) -> Check:
    v = s.vehicle
    if v.source != "gpsd":
        return Check("gps", "skip", "simulated vehicle (vehicle.source)")
    found = asyncio.run(_gpsd_fix(GpsdVehicle(v.gpsd_host, v.gpsd_port, v.fix_stale_s), wait_s))
    where = f"gpsd at {v.gpsd_host}:{v.gpsd_port}"
    if found is FixKind.NO_GPS:
        return Check(
            "gps",
            "fail",
            f"{where}: no answer or no receiver",
            "start gpsd (systemctl start gpsd) and plug the GPS receiver in",
        )
    if found is FixKind.NO_FIX:
        return Check(
            "gps",
            "fail",
            f"{where}: no fix within {wait_s:g} s",
            "give the antenna a view of the sky; a cold start takes minutes",
        )
    return Check("gps", "ok", f"{where}: {found.value} fix")


async def _gpsd_fix(vehicle: GpsdVehicle, wait_s: float) -> FixKind:
    task = asyncio.create_task(vehicle.run())
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            kind = vehicle.fix_kind(time.time())
            if kind in (FixKind.FIX_2D, FixKind.FIX_3D):
                return kind
            await asyncio.sleep(0.1)
        return vehicle.fix_kind(time.time())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ---- the running agent ------------------------------------------------------------------

_SAMPLE = re.compile(r'^(rtcc_agent_\w+)(?:\{\w+="([^"]*)"\})? (\S+)$', re.MULTILINE)


def running_agent(s: AgentSettings) -> Check:
    """The agent service's own view (its health endpoint): whether it runs, its loops and
    its links, without opening the body-cam's link or the camera a second time."""
    if not s.health.port:
        return Check("agent", "skip", "health endpoint off (health.port)")
    url = f"http://{s.health.host}:{s.health.port}/metrics"
    try:
        text = httpx.get(url, timeout=TIMEOUT_S).text
    except httpx.HTTPError as exc:
        return Check(
            "agent",
            "fail",
            f"no answer at {url}: {exc or type(exc).__name__}",
            "start it (systemctl start rtcc-agent) and read why it stopped "
            "(journalctl -u rtcc-agent)",
        )
    values = {(m[1], m[2]): float(m[3]) for m in _SAMPLE.finditer(text)}
    links = {label: v for (name, label), v in values.items() if name == "rtcc_agent_link_up"}
    facts: dict[str, float | str | None] = {f"link_{k}": v for k, v in links.items()}
    if values.get(("rtcc_agent_healthy", None)) != 1:
        return Check(
            "agent",
            "fail",
            "running, but a loop is wedged (watchdog not fed)",
            "systemd restarts it by its watchdog; if it keeps happening, read "
            "journalctl -u rtcc-agent",
            facts,
        )
    down = sorted(k for k, v in links.items() if v != 1)
    up = ", ".join(sorted(k for k, v in links.items() if v == 1)) or "none"
    if down:
        return Check(
            "agent",
            "warn",
            f"running; links down: {', '.join(down)} (up: {up})",
            "see the checks below for the link that is down",
            facts,
        )
    return Check("agent", "ok", f"running; links up: {up}", None, facts)


# ---- disk and evidence --------------------------------------------------------------------


def disk(s: AgentSettings) -> Check:
    folder = s.data_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    need = s.evidence.min_free_bytes
    facts: dict[str, float | str | None] = {"free_bytes": usage.free, "min_free_bytes": need}
    detail = f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB at {folder}"
    if usage.free < need:
        return Check(
            "disk",
            "fail",
            f"{detail}; recording pauses below {need / 2**20:.0f} MiB",
            "free space on the data disk (old logs, packages) or move data_dir to a larger one",
            facts,
        )
    return Check("disk", "ok", detail, None, facts)


def evidence(s: AgentSettings) -> Check:
    if not s.evidence.enabled:
        return Check("evidence", "skip", "evidence recording is off (evidence.enabled)")
    status = evidence_status(s.data_dir / "evidence")
    waiting, size = status["segments_to_upload"], status["bytes_to_upload"]
    facts: dict[str, float | str | None] = {"segments_to_upload": waiting, "bytes_to_upload": size}
    detail = f"{waiting} segments ({size / 2**20:.1f} MiB) waiting for upload"
    if status["quarantined"]:
        return Check(
            "evidence",
            "warn",
            f"{detail}; quarantined: {', '.join(status['quarantined'][:5])}",
            "quarantined recordings failed their checks after a crash: collect them "
            "by hand for the evidence custodian",
            facts,
        )
    return Check("evidence", "ok", detail, None, facts)

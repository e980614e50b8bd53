"""The broker's mutual-TLS listener against a real Mosquitto: each unit reaches only its own
topics, a monitor only reads, bad certificates are refused, and a revoked unit is out
within 5 s."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import queue
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.broker import BrokerError, MosquittoOptions, MosquittoProcess, dynsec_file
from central.broker_admin import BrokerAdmin
from central.broker_security import CONTROL_TOPIC, BrokerTls, unit_role
from central.device_ca import DeviceCa, admin_identity, center_identity, monitor_identity
from protocol.topics import Topic, TopicKind, unit_filter
from runtime.config import BrokerUrl, MqttTuning, TlsFiles
from runtime.mqtt import MqttLink, Subscription, Will
from tests.helpers import run_rtcc
from tests.pki_helpers import DAY, TestCa

CENTER = "center-1"
# A certificate CN no unit id can take (unit ids have no dots).
CENTER_CN = "rtcc.center.center-1"
ADMIN_CN = CENTER_CN + ".admin"
MONITOR_CN = "rtcc.monitor.noc"
WAIT_S = 5.0
NOT_AUTHORIZED = 135


@dataclass
class Pki:
    ca: TestCa
    tls: BrokerTls


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = TestCa(tmp_path / "ca")
    cert_file, key_file, _ = ca.issue("broker", server_ip="127.0.0.1")
    ca.write_crl()
    tls = BrokerTls(
        ca_file=ca.ca_file,
        cert_file=cert_file,
        key_file=key_file,
        crl_file=ca.crl_file,
        center_identity=CENTER_CN,
        center_id=CENTER,
        admin_identity=ADMIN_CN,
        units=("unit-a", "unit-b"),
        monitors=(MONITOR_CN,),
    )
    return Pki(ca, tls)


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[MosquittoProcess]:
    process = MosquittoProcess(tmp_path / "broker", MosquittoOptions(tls=pki.tls))
    process.start()
    yield process
    process.stop()


def admin_of(broker: MosquittoProcess, pki: Pki) -> BrokerAdmin:
    tuning = MqttTuning(tls=pki.ca.client_files(ADMIN_CN))
    return BrokerAdmin("center-admin", BrokerUrl.parse(broker.url), tuning)


class Peer:
    """One paho client (network loop in its own thread) that records what happens to it."""

    def __init__(self, client_id: str, files: TlsFiles | None) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
        )
        if files is not None:
            self.client.tls_set(
                ca_certs=str(files.ca_file),
                certfile=str(files.cert_file) if files.cert_file else None,
                keyfile=str(files.key_file) if files.key_file else None,
            )
        self.connack: queue.Queue[int] = queue.Queue()
        self.disconnected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._acks: dict[int, queue.Queue[list[int]]] = {}
        self.client.on_connect = lambda c, u, flags, rc, props: self.connack.put(rc.value)
        self.client.on_disconnect = lambda c, u, flags, rc, props: self.disconnected.set()
        self.client.on_message = lambda c, u, msg: self.messages.put(
            (msg.topic, bytes(msg.payload))
        )
        self.client.on_publish = lambda c, u, mid, rc, props: self._ack(mid, [rc.value])
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self._ack(
            mid, [rc.value for rc in rcs]
        )

    def _ack(self, mid: int, codes: list[int]) -> None:
        self._acks.setdefault(mid, queue.Queue()).put(codes)

    def _wait_ack(self, mid: int) -> list[int]:
        return self._acks.setdefault(mid, queue.Queue()).get(timeout=WAIT_S)

    def connect(self, port: int) -> str:
        """'connected', 'handshake refused' (the TLS handshake failed in connect), or
        'closed' (the broker closed the connection before a CONNACK)."""
        self.disconnected.clear()
        try:
            self.client.connect("127.0.0.1", port, keepalive=10)
        except (ssl.SSLError, OSError):
            return "handshake refused"
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                code = self.connack.get(timeout=0.05)
                return "connected" if code == 0 else f"connack {code}"
            if self.disconnected.is_set():
                return "closed"
        return "no answer"

    def publish(self, topic: str, payload: bytes = b"x") -> int:
        return self._wait_ack(self.client.publish(topic, payload, qos=1).mid)[0]

    def subscribe(self, topic_filter: str) -> int:
        _, mid = self.client.subscribe(topic_filter, qos=1)
        assert mid is not None
        return self._wait_ack(mid)[0]

    def _loop(self) -> None:
        # paho's own loop thread would reconnect after a kick; one connection is wanted.
        while not self._stop.is_set() and not self.disconnected.is_set():
            self.client.loop(timeout=0.05)

    def close(self) -> None:
        self.client.disconnect()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


def connected(peers: list[Peer], client_id: str, files: TlsFiles, port: int) -> Peer:
    peer = Peer(client_id, files)
    peers.append(peer)
    assert peer.connect(port) == "connected"
    return peer


def drain(peer: Peer, until_topic: str) -> list[str]:
    """Topics received up to and including `until_topic` (which must arrive)."""
    seen = []
    while True:
        topic, _ = peer.messages.get(timeout=WAIT_S)
        seen.append(topic)
        if topic == until_topic:
            return seen


def test_a_unit_reaches_only_its_own_topics(
    broker: MosquittoProcess, pki: Pki, peers: list[Peer]
) -> None:
    center = connected(peers, "center", pki.ca.client_files(CENTER_CN), broker.port)
    for kind in (TopicKind.PRESENCE, TopicKind.STATE, TopicKind.EVENT, TopicKind.RESULT):
        assert center.subscribe(unit_filter(kind)) == 1
    unit_a = connected(peers, "unit-a", pki.ca.client_files("unit-a"), broker.port)
    unit_b = connected(peers, "unit-b", pki.ca.client_files("unit-b"), broker.port)
    assert unit_b.subscribe(unit_filter(TopicKind.COMMAND, "unit-b")) == 1

    as_b = [
        Topic.presence("unit-b"),
        Topic.state("unit-b"),
        Topic.event("unit-b", "holster_draw"),
        Topic.result("unit-b"),
        Topic.command("unit-b", "config.set"),
        Topic.center_status(CENTER),
    ]
    assert [unit_a.publish(str(topic)) for topic in as_b] == [NOT_AUTHORIZED] * len(as_b)
    assert unit_a.subscribe("rtcc/#") == NOT_AUTHORIZED
    assert unit_a.subscribe("#") == NOT_AUTHORIZED
    assert unit_a.subscribe(unit_filter(TopicKind.COMMAND, "unit-b")) == NOT_AUTHORIZED
    assert unit_a.subscribe(unit_filter(TopicKind.COMMAND)) == NOT_AUTHORIZED
    assert unit_a.subscribe("$CONTROL/dynamic-security/#") == NOT_AUTHORIZED
    assert unit_a.publish("$CONTROL/dynamic-security/v1") == NOT_AUTHORIZED

    # The center sees unit A's own state, and nothing A sent before it as unit B.
    own_state = str(Topic.state("unit-a"))
    assert unit_a.publish(own_state) == 0
    assert drain(center, own_state) == [own_state]

    # A command to B reaches B, never A (which may subscribe to its own commands only).
    assert unit_a.subscribe(unit_filter(TopicKind.COMMAND, "unit-a")) == 1
    command_b = str(Topic.command("unit-b", "config.set"))
    command_a = str(Topic.command("unit-a", "config.set"))
    assert center.publish(command_b) == 0
    assert center.publish(command_a) == 0
    assert drain(unit_b, command_b) == [command_b]
    assert drain(unit_a, command_a) == [command_a]


def test_a_unit_cannot_take_another_units_client_id(
    broker: MosquittoProcess, pki: Pki, peers: list[Peer]
) -> None:
    """Mosquitto drops the older connection of a client id: with the id forced to the
    certificate's CN, unit A asking for unit B's (or the center's) id takes its own."""
    unit_b = connected(peers, "unit-b", pki.ca.client_files("unit-b"), broker.port)
    admin = connected(peers, "admin", pki.ca.client_files(ADMIN_CN), broker.port)
    connected(peers, "unit-b", pki.ca.client_files("unit-a"), broker.port)
    connected(peers, ADMIN_CN, pki.ca.client_files("unit-a"), broker.port)
    command_b = str(Topic.command("unit-b", "config.set"))
    assert unit_b.subscribe(unit_filter(TopicKind.COMMAND, "unit-b")) == 1
    center = connected(peers, "center", pki.ca.client_files(CENTER_CN), broker.port)
    assert center.publish(command_b) == 0
    assert drain(unit_b, command_b) == [command_b]
    assert not unit_b.disconnected.is_set() and not admin.disconnected.is_set()
    # The admin identity administers the plugin and reads no unit's reports.
    assert admin.subscribe(unit_filter(TopicKind.STATE)) == NOT_AUTHORIZED
    assert admin.publish(command_b) == NOT_AUTHORIZED


def _refused(port: int, files: TlsFiles | None) -> str:
    peer = Peer("intruder", files)
    try:
        return peer.connect(port)
    finally:
        peer.close()


async def test_foreign_expired_revoked_and_missing_certificates_are_refused(
    broker: MosquittoProcess, pki: Pki, tmp_path: Path
) -> None:
    foreign = TestCa(tmp_path / "foreign", name="rtcc test device CA")
    foreign_files = foreign.client_files("unit-a")
    foreign_files = foreign_files.model_copy(update={"ca_file": pki.ca.ca_file})
    now = dt.datetime.now(dt.UTC)
    expired = pki.ca.client_files(
        "unit-a", stem="unit-a-expired", valid_from=now - 30 * DAY, valid_until=now - DAY
    )
    cert_file, key_file, serial = pki.ca.issue("unit-b", stem="unit-b-revoked")
    revoked = TlsFiles(ca_file=pki.ca.ca_file, cert_file=cert_file, key_file=key_file)
    assert _refused(broker.port, revoked) == "connected"
    pki.ca.revoke(serial)
    async with admin_of(broker, pki).running() as admin:
        await admin.reload_broker(broker.reload)
    no_cert = TlsFiles(ca_file=pki.ca.ca_file)

    outcomes = {
        "foreign CA": _refused(broker.port, foreign_files),
        "expired": _refused(broker.port, expired),
        "revoked": _refused(broker.port, revoked),
        "no certificate": _refused(broker.port, no_cert),
        "plain MQTT": _refused(broker.port, None),
    }
    print(f"\nrefused connections: {outcomes}")
    assert all(outcome in ("handshake refused", "closed") for outcome in outcomes.values())
    # The broker still takes a good certificate.
    assert _refused(broker.port, pki.ca.client_files("unit-a")) == "connected"


@pytest.mark.parametrize("reload", [True, False], ids=["crl-and-dynsec", "dynsec-only"])
async def test_a_revoked_unit_is_out_within_5_s(
    broker: MosquittoProcess, pki: Pki, peers: list[Peer], reload: bool
) -> None:
    admin = admin_of(broker, pki)
    async with admin.running():
        await admin.add_unit("unit-c")
        cert_file, key_file, serial = pki.ca.issue("unit-c")
        files = TlsFiles(ca_file=pki.ca.ca_file, cert_file=cert_file, key_file=key_file)
        watcher = connected(peers, "center", pki.ca.client_files(CENTER_CN), broker.port)
        assert watcher.subscribe(unit_filter(TopicKind.PRESENCE)) == 1
        bystander = connected(peers, "unit-a", pki.ca.client_files("unit-a"), broker.port)
        unit = Peer("unit-c", files)
        peers.append(unit)
        unit.client.will_set(str(Topic.presence("unit-c")), b"offline", qos=1, retain=True)
        assert unit.connect(broker.port) == "connected"
        state = str(Topic.state("unit-c"))
        commands = unit_filter(TopicKind.COMMAND, "unit-c")
        assert unit.publish(state) < NOT_AUTHORIZED  # 16: accepted, nobody listening

        start = time.monotonic()
        pki.ca.revoke(serial)
        if reload:
            await admin.reload_broker(broker.reload)
        await admin.remove_unit("unit-c")
        revoked = time.monotonic()
        assert await asyncio.to_thread(unit.disconnected.wait, WAIT_S)
        gone = time.monotonic()
        unit.close()

        again = Peer("unit-c", files)
        peers.append(again)
        outcome = again.connect(broker.port)
        print(
            f"\nrevocation ({'CRL + SIGHUP, ' if reload else ''}dynsec delete): "
            f"call {1000 * (revoked - start):.0f} ms, disconnected after "
            f"{1000 * (gone - start):.0f} ms; reconnect: {outcome}"
        )
        assert gone - start < 5.0
        # Kicked without its Will: the center must itself mark a revoked unit offline.
        own_presence = str(Topic.presence("unit-a"))
        assert bystander.publish(own_presence) == 0
        assert drain(watcher, own_presence) == [own_presence]
        if reload:
            assert outcome == "closed"
        else:
            # A broker we cannot signal lets the handshake through: the unit connects but
            # may neither publish nor subscribe.
            assert outcome == "connected"
            assert again.publish(state) == NOT_AUTHORIZED
            assert again.subscribe(commands) == NOT_AUTHORIZED


async def test_an_unusable_crl_is_never_given_to_the_broker(
    broker: MosquittoProcess, pki: Pki, peers: list[Peer]
) -> None:
    """Mosquitto 2.0.11 reloading a CRL it cannot read accepts revoked certificates again."""
    cert_file, key_file, serial = pki.ca.issue("unit-b", stem="unit-b-revoked")
    revoked = TlsFiles(ca_file=pki.ca.ca_file, cert_file=cert_file, key_file=key_file)
    admin = admin_of(broker, pki)
    unit = connected(peers, "unit-a", pki.ca.client_files("unit-a"), broker.port)
    async with admin.running():
        pki.ca.revoke(serial)
        await admin.reload_broker(broker.reload)
        assert _refused(broker.port, revoked) == "closed"

        pki.ca.crl_file.write_text("half a CRL")
        with pytest.raises(BrokerError, match="unreadable"):
            await admin.reload_broker(broker.reload)
        assert _refused(broker.port, revoked) == "closed"

        # The unit is still thrown out and loses every permission.
        await admin.remove_unit("unit-a")
    assert await asyncio.to_thread(unit.disconnected.wait, WAIT_S)

    broker.stop()
    with pytest.raises(BrokerError, match="unreadable"):
        broker.start()


async def test_the_fleet_link_and_a_unit_link_speak_over_mutual_tls(
    broker: MosquittoProcess, pki: Pki
) -> None:
    """runtime/mqtt.py's MqttLink, as the fleet service and the agent use it: their
    subscriptions and Wills are within what the broker grants them."""
    got: dict[str, asyncio.Queue[str]] = {"center": asyncio.Queue(), "unit": asyncio.Queue()}
    center = MqttLink(
        client_id=f"{CENTER}-fleet-0",
        urls=[BrokerUrl.parse(broker.url)],
        tuning=MqttTuning(tls=pki.ca.client_files(CENTER_CN)),
        subscriptions=[
            Subscription(unit_filter(kind))
            for kind in (TopicKind.PRESENCE, TopicKind.STATE, TopicKind.EVENT, TopicKind.RESULT)
        ],
        on_message=lambda topic, payload, retained: got["center"].put_nowait(topic),
        will=lambda: Will(str(Topic.center_status(CENTER)), b"offline"),
    )
    unit = MqttLink(
        client_id="unit-a",
        urls=[BrokerUrl.parse(broker.url)],
        tuning=MqttTuning(tls=pki.ca.client_files("unit-a")),
        subscriptions=[Subscription(unit_filter(TopicKind.COMMAND, "unit-a"))],
        on_message=lambda topic, payload, retained: got["unit"].put_nowait(topic),
        will=lambda: Will(str(Topic.presence("unit-a")), b"offline"),
    )
    tasks = [asyncio.create_task(link.run()) for link in (center, unit)]
    try:
        for link in (center, unit):
            await asyncio.wait_for(link.connected.wait(), WAIT_S)
        await center.publish(str(Topic.center_status(CENTER)), b"online", retain=True)
        await unit.publish(str(Topic.state("unit-a")), b"{}", retain=True)
        assert await asyncio.wait_for(got["center"].get(), WAIT_S) == str(Topic.state("unit-a"))
        await center.publish(str(Topic.command("unit-a", "config.set")), b"{}")
        command = await asyncio.wait_for(got["unit"].get(), WAIT_S)
        assert command == str(Topic.command("unit-a", "config.set"))
    finally:
        for link in (center, unit):
            await link.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_syncing_lets_in_exactly_the_enrolled_units(
    broker: MosquittoProcess, pki: Pki, peers: list[Peer]
) -> None:
    state_b = str(Topic.state("unit-b"))
    state_c = str(Topic.state("unit-c"))
    unit_b = connected(peers, "unit-b", pki.ca.client_files("unit-b"), broker.port)
    unit_c = connected(peers, "unit-c", pki.ca.client_files("unit-c"), broker.port)
    assert unit_c.publish(state_c) == NOT_AUTHORIZED
    async with admin_of(broker, pki).running() as admin:
        await admin.sync_units({"unit-a", "unit-c"})
        assert await asyncio.to_thread(unit_b.disconnected.wait, WAIT_S)
        assert unit_c.publish(state_c) < NOT_AUTHORIZED
        await admin.sync_units({"unit-a", "unit-c"})
    again = connected(peers, "unit-b-again", pki.ca.client_files("unit-b"), broker.port)
    assert again.publish(state_b) == NOT_AUTHORIZED
    center = connected(peers, "center", pki.ca.client_files(CENTER_CN), broker.port)
    assert center.subscribe(unit_filter(TopicKind.STATE)) == 1


async def test_a_replaced_gateway_is_out_and_its_successor_speaks_for_the_unit(
    broker: MosquittoProcess, pki: Pki, peers: list[Peer]
) -> None:
    cert_file, key_file, serial = pki.ca.issue("unit-a", stem="unit-a-old")
    old_files = TlsFiles(ca_file=pki.ca.ca_file, cert_file=cert_file, key_file=key_file)
    old = connected(peers, "unit-a", old_files, broker.port)
    state = str(Topic.state("unit-a"))
    async with admin_of(broker, pki).running() as admin:
        pki.ca.revoke(serial)
        await admin.reload_broker(broker.reload)
        await admin.remove_unit("unit-a")
        await admin.add_unit("unit-a")
    assert await asyncio.to_thread(old.disconnected.wait, WAIT_S)
    assert _refused(broker.port, old_files) == "closed"
    new = connected(
        peers, "unit-a-new", pki.ca.client_files("unit-a", stem="unit-a-new"), broker.port
    )
    assert new.publish(state) < NOT_AUTHORIZED
    assert new.subscribe(unit_filter(TopicKind.COMMAND, "unit-a")) == 1


def test_a_restart_gives_kept_units_the_rights_of_this_version(
    broker: MosquittoProcess, pki: Pki, peers: list[Peer]
) -> None:
    """A unit enrolled under an older version keeps the role that version wrote in the
    plugin's file; the next start writes the role this version gives."""
    broker.stop()
    path = dynsec_file(broker.data_dir)
    kept = json.loads(path.read_text())
    role = next(r for r in kept["roles"] if r["rolename"] == unit_role("unit-a"))
    narrower = [a for a in role["acls"] if a["topic"] != str(Topic.state("unit-a"))]
    assert len(narrower) < len(role["acls"])
    role["acls"] = narrower
    path.write_text(json.dumps(kept))
    broker.start()
    center = connected(peers, "center", pki.ca.client_files(CENTER_CN), broker.port)
    assert center.subscribe(unit_filter(TopicKind.STATE)) == 1
    unit_a = connected(peers, "unit-a", pki.ca.client_files("unit-a"), broker.port)
    own_state = str(Topic.state("unit-a"))
    assert unit_a.publish(own_state) == 0
    assert drain(center, own_state) == [own_state]


def test_a_monitor_reads_the_units_reports_and_does_nothing_else(
    broker: MosquittoProcess, pki: Pki, peers: list[Peer]
) -> None:
    monitor = connected(peers, "noc", pki.ca.client_files(MONITOR_CN), broker.port)
    # Every unit's state and results; one unit's presence and events (narrower filters).
    read = [
        unit_filter(TopicKind.STATE),
        unit_filter(TopicKind.RESULT),
        str(Topic.presence("unit-a")),
        unit_filter(TopicKind.EVENT, "unit-a"),
    ]
    assert [monitor.subscribe(topic_filter) for topic_filter in read] == [1] * len(read)
    unit_a = connected(peers, "unit-a", pki.ca.client_files("unit-a"), broker.port)
    reports = [
        str(Topic.state("unit-a")),
        str(Topic.event("unit-a", "holster_draw")),
        str(Topic.result("unit-a")),
        str(Topic.presence("unit-a")),
    ]
    assert [unit_a.publish(topic) for topic in reports] == [0] * len(reports)
    assert drain(monitor, reports[-1]) == reports

    writes = [
        str(Topic.command("unit-a", "config.set")),
        str(Topic.state("unit-a")),
        str(Topic.center_status(CENTER)),
        CONTROL_TOPIC,
    ]
    assert [monitor.publish(topic) for topic in writes] == [NOT_AUTHORIZED] * len(writes)
    refused = [
        unit_filter(TopicKind.COMMAND),
        unit_filter(TopicKind.COMMAND, "unit-a"),
        "$CONTROL/dynamic-security/#",
        "rtcc/#",
        "#",
    ]
    assert [monitor.subscribe(f) for f in refused] == [NOT_AUTHORIZED] * len(refused)
    # Nothing it tried reached anyone: the units' next report is the next thing it reads.
    assert unit_a.publish(reports[0]) == 0
    assert drain(monitor, reports[0]) == [reports[0]]
    assert not monitor.disconnected.is_set()


def test_a_monitor_certificate_from_the_cli_reads_at_the_centers_broker(
    tmp_path: Path, peers: list[Peer]
) -> None:
    """`rtcc provision monitor`: refused for a name not configured; for a configured one, a
    key (0600), a certificate and the device CA that connect to a broker of that center's
    device CA with the monitor's rights."""
    data_dir, out = tmp_path / "center", tmp_path / "noc"
    env = {
        **os.environ,
        "RTCC_DATA_DIR": str(data_dir),
        "RTCC_BROKER__MONITORS": json.dumps(["noc"]),
    }

    def provision_monitor(
        name: str, folder: Path = out, **more: str
    ) -> subprocess.CompletedProcess[str]:
        return run_rtcc("provision", "monitor", name, "--out", str(folder), env=env | more)

    def refused_with(answer: subprocess.CompletedProcess[str], reason: str) -> bool:
        said = answer.stderr.removeprefix("rtcc provision monitor: ")
        return answer.returncode == 2 and len(answer.stderr.splitlines()) == 1 and reason in said

    assert refused_with(provision_monitor("other"), "'other' is not one of")
    # Never beside the center's own keys (a monitor named "ca" would have replaced its CA).
    assert refused_with(provision_monitor("noc", data_dir / "devices"), "data directory")
    assert refused_with(
        provision_monitor("noc", RTCC_MQTT_URL="mqtt://127.0.0.1:1"), "external broker"
    )
    assert refused_with(provision_monitor("noc", RTCC_BROKER__MTLS="false"), "plain listener")
    assert refused_with(provision_monitor("noc", Path("/proc/no-such")), "/proc/no-such")
    assert not out.exists() and not (data_dir / "devices" / "monitor-noc.key").exists()
    done = provision_monitor("noc")
    assert done.returncode == 0, done.stderr
    files = TlsFiles(
        ca_file=out / "device-ca.pem",
        cert_file=out / "monitor-noc.pem",
        key_file=out / "monitor-noc.key",
    )
    assert refused_with(provision_monitor("noc"), "already")  # its key is never replaced
    for path in (files.ca_file, files.cert_file, files.key_file):
        assert str(path) in done.stdout
    assert files.key_file is not None and files.key_file.stat().st_mode & 0o777 == 0o600
    [audited] = [
        json.loads(line) for line in run_rtcc("audit", "export", env=env).stdout.splitlines()
    ]
    assert (audited["action"], audited["object"]) == ("device.monitor_issue", MONITOR_CN)

    ca = DeviceCa(data_dir / "devices")
    server = ca.broker_files(["127.0.0.1"], dt.datetime.now(dt.UTC))
    tls = BrokerTls(
        ca_file=ca.ca_file,
        cert_file=server.cert_file,
        key_file=server.key_file,
        crl_file=ca.write_crl([]),
        center_identity=center_identity("rtcc-1"),
        center_id="rtcc-1",
        admin_identity=admin_identity("rtcc-1"),
        monitors=(monitor_identity("noc"),),
    )
    broker = MosquittoProcess(tmp_path / "broker", MosquittoOptions(tls=tls))
    broker.start()
    try:
        monitor = connected(peers, "noc", files, broker.port)
        assert monitor.subscribe(unit_filter(TopicKind.STATE)) == 1
        assert monitor.publish(str(Topic.command("unit-a", "config.set"))) == NOT_AUTHORIZED
    finally:
        broker.stop()

"""A unit whose rights have not reached the broker yet (just enrolled, or being added back by
the center): a real Mosquitto over mutual TLS refuses its events as not authorized (MQTT 5
reason 135). The outbox keeps them, retries after a pause, and delivers every one once the
center adds the unit to the broker's access control."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.outbox import Outbox, OutboxRow
from agent.pump import OutboxPump
from agent.store import open_store
from central.broker import MosquittoOptions, MosquittoProcess
from central.broker_admin import BrokerAdmin
from central.broker_security import BrokerTls
from protocol.topics import Topic, TopicKind, unit_filter
from runtime.backoff import Backoff
from runtime.config import BrokerUrl, MqttTuning
from runtime.mqtt import MqttLink, Subscription
from tests.helpers import wait_for
from tests.pki_helpers import TestCa

CENTER = "center-1"
CENTER_CN = "rtcc.center.center-1"
ADMIN_CN = CENTER_CN + ".admin"
UNIT = "P-900"
EVENTS = 5


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def broker(tmp_path: Path, ca: TestCa) -> Iterator[MosquittoProcess]:
    cert_file, key_file, _ = ca.issue("broker", server_ip="127.0.0.1")
    tls = BrokerTls(
        ca_file=ca.ca_file,
        cert_file=cert_file,
        key_file=key_file,
        crl_file=ca.write_crl(),
        center_identity=CENTER_CN,
        center_id=CENTER,
        admin_identity=ADMIN_CN,
        units=(),  # the unit is not let in yet
    )
    process = MosquittoProcess(tmp_path / "broker", MosquittoOptions(tls=tls))
    process.start()
    yield process
    process.stop()


def link(
    broker: MosquittoProcess, ca: TestCa, client_id: str, identity: str, got: list[bytes]
) -> MqttLink:
    return MqttLink(
        client_id=client_id,
        urls=[BrokerUrl.parse(broker.url)],
        tuning=MqttTuning(tls=ca.client_files(identity)),
        subscriptions=[Subscription(unit_filter(TopicKind.EVENT))] if identity == CENTER_CN else [],
        on_message=lambda topic, payload, retained: got.append(payload),
    )


def raw(row: OutboxRow) -> tuple[str, bytes]:
    return row.topic, row.body


async def test_refused_events_are_kept_and_delivered_once_the_unit_is_let_in(
    tmp_path: Path, broker: MosquittoProcess, ca: TestCa
) -> None:
    got: list[bytes] = []
    center = link(broker, ca, f"{CENTER}-fleet-0", CENTER_CN, got)
    unit = link(broker, ca, UNIT, UNIT, [])
    outbox = Outbox(open_store(tmp_path / "agent.db"))
    sent = [str(uuid.uuid4()) for _ in range(EVENTS)]
    for msg_id in sent:
        outbox.put(msg_id, str(Topic.event(UNIT, "holster_draw")), 0.0, msg_id.encode())
    pump = OutboxPump(outbox, unit, raw, held_backoff=Backoff(initial_s=0.05, max_s=0.2))
    tasks = [asyncio.create_task(t) for t in (center.run(), unit.run(), pump.run())]
    try:
        # Refused in more than one round: kept, and tried again after the pause.
        await wait_for(lambda: pump.not_authorized >= 2 * EVENTS)
        assert outbox.rows == EVENTS and outbox.dropped == 0
        assert pump.sent == 0 and got == []
        admin = BrokerAdmin(
            "center-admin",
            BrokerUrl.parse(broker.url),
            MqttTuning(tls=ca.client_files(ADMIN_CN)),
        )
        async with admin.running():
            await admin.add_unit(UNIT)
        await wait_for(lambda: outbox.rows == 0)
        assert outbox.dropped == 0 and pump.sent == EVENTS
        await wait_for(lambda: {p.decode() for p in got} == set(sent))
    finally:
        await unit.close()
        await center.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

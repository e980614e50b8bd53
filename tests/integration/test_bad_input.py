"""Garbage straight to the broker: the fleet service stays up, counts, and changes nothing."""

import json
import random
import time
import uuid
from pathlib import Path

from central.registry import UnitRecord
from protocol import Envelope, Event, Topic, encode
from tests.helpers import CenterHandle, running_agent, running_center, wait_for
from tests.integration.test_commands import raw_client

KINDS = ["presence", "state", "events/button", "res"]


def garbage(rng: random.Random, unit: str) -> tuple[str, bytes]:
    valid_env = json.loads(
        encode(Topic.event(unit, "a"), Envelope(sid=1, seq=1, ts=time.time(), body=Event(type="a")))
    )
    choice = rng.randrange(8)
    topic = f"rtcc/v1/units/{unit}/{rng.choice(KINDS)}"
    if choice == 0:
        return topic, rng.randbytes(rng.randrange(0, 300))
    if choice == 1:
        return topic, b"[" * rng.randrange(1, 20_000)
    if choice == 2:
        return topic, b'{"v":1,"body":' + b"x" * (70 * 1024) + b"}"
    if choice == 3:  # right shape, wrong values
        doc = {**valid_env, "seq": -1, "sid": "one"}
        return topic, json.dumps(doc).encode()
    if choice == 4:  # an event whose body disagrees with its topic
        return f"rtcc/v1/units/{unit}/events/b", json.dumps(valid_env).encode()
    if choice == 5:  # malformed topics the subscriptions still match
        bad_unit = rng.choice(["a b", "ü", "x" * 80, "$sys", "-lead"])
        return f"rtcc/v1/units/{bad_unit}/state", json.dumps(valid_env).encode()
    if choice == 6:
        return f"rtcc/v1/units/{unit}/events/{rng.choice(['UP', '9x', 'a..b', 'a-b'])}", b"{}"
    doc = {**valid_env, "extra": True, "id": str(uuid.uuid4())}
    return f"rtcc/v1/units/{unit}/events/a", json.dumps(doc).encode()


def snapshot(center: CenterHandle) -> list[tuple[object, ...]]:
    def key(r: UnitRecord) -> tuple[object, ...]:
        seq = None if r.sequence is None else (r.sequence.contiguous, r.sequence.highest)
        return (r.unit_id, r.online, r.sid, seq, r.state_payload, r.last_seen)

    return [key(r) for r in center.fleet.registry.units()]


async def test_1000_garbage_messages(broker_url: str, unique: str, tmp_path: Path) -> None:
    unit = f"u-{unique}"
    rng = random.Random(unique)
    async with (
        running_center(broker_url, f"c-{unique}") as center,
        running_agent(
            unit,
            broker_url,
            tmp_path,
            runtime={"state_heartbeat_s": 3600},
            sim={"speed_mps": 0, "event_interval_s": 0},
        ),
        raw_client(broker_url, f"x-{unique}") as attacker,
    ):
        await wait_for(lambda: (r := center.fleet.registry.get(unit)) and r.state is not None)
        before = snapshot(center)
        rejected_before = center.metric("rtcc_mqtt_rejected_total")
        for _ in range(1000):
            await attacker.publish(*garbage(rng, unit))
        await wait_for(
            lambda: center.metric("rtcc_mqtt_rejected_total") - rejected_before >= 1000, timeout=20
        )
        assert center.metric("rtcc_mqtt_rejected_total") - rejected_before == 1000
        assert snapshot(center) == before
        metrics = (await center.http.get("/metrics")).text
        assert 'rtcc_mqtt_rejected_total{reason="invalid_payload"}' in metrics
        assert 'rtcc_mqtt_rejected_total{reason="bad_id"}' in metrics
        assert (await center.http.get("/healthz")).status_code == 200
        ping = await center.http.post(f"/api/v1/units/{unit}/commands", json={"name": "ping"})
        assert ping.json()["status"] == "done"

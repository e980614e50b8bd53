import contextlib
import json
import time
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_PAYLOAD_BYTES,
    CameraStatus,
    CenterStatus,
    Command,
    CommandResult,
    CommandStatus,
    Envelope,
    Event,
    Health,
    Position,
    Presence,
    ProtocolError,
    Topic,
    UnitState,
    Versions,
    decode,
    encode,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}(\.[a-z][a-z0-9_]{0,15})?", fullmatch=True)
cmd_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
timestamps = st.floats(min_value=0, max_value=4e9, allow_nan=False)


def state(**kw: Any) -> UnitState:
    base: dict[str, Any] = {
        "position": Position(lat=40.0, lon=-74.0, fix_ts=1.0),
        "battery_pct": 50.0,
        "camera": CameraStatus(connected=True),
        "versions": Versions(agent="0.1.0"),
        "uptime_s": 3.0,
        "health": Health(outbox_rows=0, outbox_dropped=0, mqtt_connects=1, commands_rejected=0),
    }
    base.update(kw)
    return UnitState(**base)


def envelope(body: Any, sid: int = 1, seq: int = 1) -> Envelope[Any]:
    return Envelope(sid=sid, seq=seq, ts=time.time(), body=body)


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        (Topic.presence("u1"), Presence(online=True, reason="birth")),
        (Topic.state("u1"), state()),
        (Topic.event("u1", "button.mark"), Event(type="button.mark", data={"n": 1})),
        (
            Topic.command("u1", "ping"),
            Command(name="ping", cmd_id="c1", reply_to="rtcc/v1/units/u1/res", expires_at=9.0),
        ),
        (Topic.result("u1"), CommandResult(cmd_id="c1", status=CommandStatus.DONE)),
        (Topic.center_status("c1"), CenterStatus(online=True, version="1", center_id="c1")),
    ],
)
def test_round_trip_every_kind(topic: Topic, body: Any) -> None:
    env = envelope(body)
    message = decode(str(topic), encode(topic, env))
    assert message.topic == topic
    assert message.envelope == env


@given(
    sid=st.integers(0, 2**53 - 1),
    seq=st.integers(0, 2**53 - 1),
    ts=timestamps,
    event_type=names,
    data=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
def test_event_round_trip(sid: int, seq: int, ts: float, event_type: str, data: Any) -> None:
    env: Envelope[Event] = Envelope(sid=sid, seq=seq, ts=ts, body=Event(type=event_type, data=data))
    topic = Topic.event("unit-1", event_type)
    assert decode(topic, encode(topic, env)).envelope == env


@given(
    cmd_id=cmd_ids,
    name=names,
    expires=timestamps,
    args=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
def test_command_round_trip(cmd_id: str, name: str, expires: float, args: Any) -> None:
    body = Command(name=name, cmd_id=cmd_id, reply_to="x", expires_at=expires, args=args)
    topic = Topic.command("unit-1", name)
    assert decode(topic, encode(topic, envelope(body))).envelope.body == body


@given(
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    battery=st.floats(0, 100),
    heading=st.floats(0, 359.99),
)
def test_state_round_trip(lat: float, lon: float, battery: float, heading: float) -> None:
    body = state(
        position=Position(lat=lat, lon=lon, heading_deg=heading, fix_ts=2.0), battery_pct=battery
    )
    topic = Topic.state("unit-1")
    assert decode(topic, encode(topic, envelope(body))).envelope.body == body


@settings(max_examples=500)
@given(
    payload=st.binary(max_size=2048),
    kind=st.sampled_from(["presence", "state", "events/x", "cmd/ping", "res"]),
)
def test_arbitrary_bytes_only_raise_protocol_error(payload: bytes, kind: str) -> None:
    with contextlib.suppress(ProtocolError):
        decode(f"rtcc/v1/units/u1/{kind}", payload)


@settings(max_examples=300)
@given(doc=json_values)
def test_arbitrary_json_only_raises_protocol_error(doc: Any) -> None:
    payload = json.dumps(
        {"v": 1, "id": str(uuid.uuid4()), "sid": 1, "seq": 1, "ts": 1.0, "body": doc}
    ).encode()
    for kind in ("presence", "state", "events/x", "res"):
        with contextlib.suppress(ProtocolError):
            decode(f"rtcc/v1/units/u1/{kind}", payload)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_payload"),
        (b"{", "invalid_payload"),
        (b"[" * 100_000, "too_large"),
        (b"[" * 5000 + b"]" * 5000, "invalid_payload"),
        (
            b'{"v":2,"id":"' + str(uuid.uuid4()).encode() + b'","sid":1,"seq":1,"ts":1,'
            b'"body":{"online":true,"reason":"birth"}}',
            "invalid_payload",
        ),
        (
            b'{"v":1,"id":"x","sid":1,"seq":1,"ts":1,"body":{"online":true,"reason":"birth"}}',
            "invalid_payload",
        ),
    ],
)
def test_malformed_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode("rtcc/v1/units/u1/presence", payload)
    assert info.value.reason == reason


def test_extra_fields_are_refused() -> None:
    env = envelope(Presence(online=True, reason="birth"))
    doc = json.loads(encode(Topic.presence("u1"), env))
    doc["body"]["extra"] = 1
    with pytest.raises(ProtocolError):
        decode("rtcc/v1/units/u1/presence", json.dumps(doc).encode())


def test_topic_and_body_must_agree() -> None:
    env = envelope(Event(type="a", data={}))
    with pytest.raises(ProtocolError) as info:
        decode("rtcc/v1/units/u1/events/b", encode(Topic.event("u1", "a"), env))
    assert info.value.reason == "mismatch"
    with pytest.raises(ProtocolError):
        encode(Topic.state("u1"), env)


def test_size_limit_on_encode() -> None:
    env = envelope(Event(type="a", data={"blob": "x" * MAX_PAYLOAD_BYTES}))
    with pytest.raises(ProtocolError) as info:
        encode(Topic.event("u1", "a"), env)
    assert info.value.reason == "too_large"

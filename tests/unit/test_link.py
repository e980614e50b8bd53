"""The body-cam link: framing, messages, the session layer and the gateway's view."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.link.bodycam import BodycamState
from firmware_bridge.link.frames import MAGIC, MAX_FRAME, MAX_PAYLOAD, FrameParser, crc8, encode
from firmware_bridge.link.messages import (
    Ack,
    AckStatus,
    Battery,
    Button,
    ButtonPress,
    Capability,
    Clock,
    ClockSet,
    Haptic,
    Hello,
    LinkMessage,
    Press,
    Record,
    RecordingState,
    Sensor,
    Storage,
    Trigger,
    Watched,
)
from firmware_bridge.link.session import LinkSession

short_text = st.text(max_size=63)
messages: st.SearchStrategy[LinkMessage] = st.one_of(
    st.builds(
        Hello,
        capabilities=st.integers(0, 2**32 - 1),
        model=short_text,
        serial=short_text,
        firmware=short_text,
    ),
    st.builds(Battery, percent=st.integers(0, 100), millivolts=st.integers(0, 65535)),
    st.builds(Storage, free_mb=st.integers(0, 2**32 - 1), total_mb=st.integers(0, 2**32 - 1)),
    st.builds(RecordingState),
    st.builds(ButtonPress),
    st.builds(Trigger),
    st.builds(Clock, unix_ms=st.integers(0, 2**64 - 1)),
    st.builds(Record),
    st.builds(Watched),
    st.builds(Haptic, pattern=st.integers(0, 255), duration_ms=st.integers(0, 65535)),
    st.builds(ClockSet, unix_ms=st.integers(0, 2**64 - 1)),
    st.builds(Ack, acked_seq=st.integers(0, 65535)),
)


@given(st.lists(st.tuples(messages, st.integers(0, 65535)), max_size=20), st.data())
def test_frames_round_trip_whatever_the_read_sizes(
    frames: list[tuple[LinkMessage, int]], data: st.DataObject
) -> None:
    stream = b"".join(encode(m, seq) for m, seq in frames)
    parser = FrameParser()
    got = []
    while stream:
        cut = data.draw(st.integers(1, max(1, len(stream))))
        got += parser.feed(stream[:cut])
        stream = stream[cut:]
    assert [(f.message, f.seq) for f in got] == frames
    assert not parser.errors


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parser = FrameParser()
    parser.feed(data)
    assert len(parser._buffer) <= MAX_FRAME
    session, state = LinkSession(), BodycamState()
    for message in session.receive(data, 0.0):
        state.apply(message, 0.0)
    session.outgoing(1.0)


@given(st.lists(st.tuples(messages, st.integers(0, 65535)), max_size=30))
def test_any_valid_message_sequence_folds_without_raising(
    frames: list[tuple[LinkMessage, int]],
) -> None:
    session, state = LinkSession(), BodycamState()
    for message in session.receive(b"".join(encode(m, seq) for m, seq in frames), 0.0):
        state.apply(message, 0.0)


@given(st.lists(st.tuples(messages, st.binary(max_size=40)), min_size=1, max_size=10))
def test_valid_frames_survive_garbage_between_them(
    pairs: list[tuple[LinkMessage, bytes]],
) -> None:
    """Garbage without the magic in it is skipped and counted; every frame still arrives."""
    stream = b"".join(g.replace(MAGIC, b"") + encode(m, i) for i, (m, g) in enumerate(pairs))
    parser = FrameParser()
    got = parser.feed(stream)
    assert [f.message for f in got] == [m for m, _ in pairs]


def test_bad_crc_truncated_oversize_unknown_and_bad_payload_are_counted() -> None:
    good = encode(Battery(percent=50, millivolts=3800, charging=False), 1)
    corrupt = bytearray(good)
    corrupt[10] ^= 0xFF
    fields = bytes([1, 0x02, 0, 2]) + (MAX_PAYLOAD + 1).to_bytes(2, "big")
    oversize = MAGIC + fields + bytes([crc8(fields)])
    bad_header = MAGIC + fields + bytes([crc8(fields) ^ 1])

    def framed(version: int, kind: int, payload: bytes) -> bytes:
        fields = bytes([version, kind]) + b"\x00\x05" + len(payload).to_bytes(2, "big")
        crc = zlib.crc32(fields + payload).to_bytes(4, "big")
        return MAGIC + fields + bytes([crc8(fields)]) + payload + crc

    parser = FrameParser()
    out = parser.feed(
        bytes(corrupt)
        + oversize
        + bad_header
        + framed(2, 0x02, b"\x32\x0e\xd8\x00")  # a future version
        + framed(1, 0x3E, b"")  # a type this gateway does not know
        + framed(1, 0x02, b"\xff\x0e\xd8\x00")  # battery at 255 %
        + framed(1, 0x06, b"\x63\x01")  # an unknown sensor
        + good[:8]  # truncated: waits for the rest
    )
    assert out == []
    assert parser.errors["bad_crc"] == 1
    assert parser.errors["oversize"] == 1
    assert parser.errors["bad_header"] == 1
    assert parser.errors["bad_version"] == 1
    assert parser.errors["unknown_type"] == 1
    assert parser.errors["bad_payload"] == 2
    assert [f.seq for f in parser.feed(good[8:])] == [1]


def test_a_frame_hidden_behind_a_false_magic_is_found() -> None:
    good = encode(Trigger(sensor=Sensor.HOLSTER_DRAW, active=True), 9)
    parser = FrameParser()
    assert [f.seq for f in parser.feed(MAGIC + b"\x01\x02" + good)] == [9]


def test_strings_must_fit_their_length_prefix() -> None:
    with pytest.raises(ValueError):
        Hello(capabilities=0, model="x" * 64, serial="", firmware="")


def pump(a: LinkSession, b: LinkSession, now: float, drop: bool = False) -> list[LinkMessage]:
    data = a.outgoing(now)
    return [] if drop else b.receive(data, now)


def test_acked_messages_are_retransmitted_until_acked_and_delivered_once() -> None:
    camera, gateway = LinkSession(retransmit_s=0.25), LinkSession()
    camera.send(Trigger(sensor=Sensor.HOLSTER_DRAW, active=True), 0.0)
    assert pump(camera, gateway, 0.0, drop=True) == []  # the first copy is lost
    assert pump(camera, gateway, 0.1) == []  # not due yet
    delivered = pump(camera, gateway, 0.3)
    assert delivered == [Trigger(sensor=Sensor.HOLSTER_DRAW, active=True)]
    pump(gateway, camera, 0.3, drop=True)  # the ack is lost: the camera sends again
    assert pump(camera, gateway, 0.6) == []  # a duplicate, acknowledged again
    assert gateway.counters["duplicates"] == 1
    pump(gateway, camera, 0.6)
    assert [o.status for o in camera.outcomes()] == [AckStatus.OK]
    assert camera.next_due() is None


def test_unacknowledged_messages_are_given_up_and_reported() -> None:
    camera = LinkSession(retransmit_s=0.1, max_attempts=3)
    camera.send(ButtonPress(button=Button.MARK, press=Press.SHORT), 0.0)
    for step in range(10):
        camera.outgoing(step * 0.1)
    assert camera.counters["retransmits"] == 2
    assert [o.status for o in camera.outcomes()] == [None]


def test_hello_starts_a_new_peer_session() -> None:
    gateway = LinkSession()
    hello = Hello(capabilities=0, model="m", serial="s", firmware="f")
    press = ButtonPress(button=Button.RECORD, press=Press.SHORT)
    assert gateway.receive(encode(hello, 0) + encode(press, 1), 0) == [hello, press]
    # The camera rebooted: its seqs start again, and must not be taken for duplicates.
    assert gateway.receive(encode(hello, 0) + encode(press, 1), 1) == [hello, press]


def test_bodycam_state_folds_messages_into_events() -> None:
    state = BodycamState(stale_after_s=15)
    hello = Hello(
        capabilities=Capability.VIDEO | Capability.CLOCK_SET, model="M1", serial="S1", firmware="1"
    )
    assert [e.type for e in state.apply(hello, 100.0)] == ["bodycam.connected"]
    assert state.connected(110.0) and not state.connected(116.0)
    assert state.apply(Battery(percent=40, millivolts=3800, charging=False), 101) == []
    low = state.apply(Battery(percent=15, millivolts=3500, charging=False), 102)
    assert [e.type for e in low] == ["battery.low"]
    assert state.apply(Battery(percent=14, millivolts=3500, charging=False), 103) == []
    draw = state.apply(Trigger(sensor=Sensor.HOLSTER_DRAW, active=True), 104)
    assert [(e.type, e.data) for e in draw] == [("trigger.holster_draw", {"active": True})]
    watch = state.apply(ButtonPress(button=Button.WATCH_ME, press=Press.LONG), 105)
    assert [(e.type, e.data) for e in watch] == [("button.watch_me", {"press": "long"})]
    assert [e.type for e in state.apply(RecordingState(recording=True), 106)] == [
        "bodycam.recording_started"
    ]
    assert state.apply(RecordingState(recording=True), 107) == []
    state.apply(Clock(unix_ms=200_000), 107.0)
    assert state.clock_set(107.5) == ClockSet(unix_ms=107_500)
    assert state.clock_set(108.0) is None  # set once, until the camera reports its clock again


def test_the_documented_example_frame() -> None:
    doc = (Path(__file__).parents[2] / "firmware_bridge" / "PROTOCOL.md").read_text()
    example = doc.split("```")[1].strip()
    frame = encode(Trigger(sensor=Sensor.HOLSTER_DRAW, active=True), 9)
    assert bytes.fromhex(example) == frame

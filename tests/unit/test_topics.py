import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import ProtocolError, Topic, TopicKind, parse_topic
from protocol.topics import unit_filter

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True)
names = st.from_regex(r"[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){0,3}", fullmatch=True)


@pytest.mark.parametrize(
    ("topic", "text"),
    [
        (Topic.presence("u1"), "rtcc/v1/units/u1/presence"),
        (Topic.state("u1"), "rtcc/v1/units/u1/state"),
        (Topic.event("u1", "holster_draw"), "rtcc/v1/units/u1/events/holster_draw"),
        (Topic.command("u1", "config.set"), "rtcc/v1/units/u1/cmd/config-set"),
        (Topic.event("u1", "button.mark"), "rtcc/v1/units/u1/events/button-mark"),
        (Topic.result("u1"), "rtcc/v1/units/u1/res"),
        (Topic.center_status("rtcc-1"), "rtcc/v1/centers/rtcc-1/status"),
        (
            Topic.center_event("rtcc-1", "stream.started"),
            "rtcc/v1/centers/rtcc-1/events/stream-started",
        ),
    ],
)
def test_build_and_parse(topic: Topic, text: str) -> None:
    assert str(topic) == text
    assert parse_topic(text) == topic


@pytest.mark.parametrize(
    "text",
    [
        "",
        "rtcc",
        "rtcc/v2/units/u1/state",
        "rtcc/v1/units/u1",
        "rtcc/v1/units/u1/state/x",
        "rtcc/v1/units/+/state",
        "rtcc/v1/units/#/state",
        "rtcc/v1/units/u 1/state",
        "rtcc/v1/units/u1/events",
        "rtcc/v1/units/u1/events/A",
        "rtcc/v1/units/u1/cmd/a/b",
        "rtcc/v1/units/u1/status",
        "rtcc/v1/units/u1/cmd/config.set",
        "rtcc/v1/units/u1/events/a--b",
        "rtcc/v1/units/u1/events/-a",
        "rtcc/v1/units/u1/events/a-",
        "rtcc/v1/centers/c1/state",
        "rtcc/v1/centers/c1/status/x",
        "rtcc/v1/fleets/u1/state",
        "/rtcc/v1/units/u1/state",
        "rtcc/v1/units//state",
        "rtcc/v1/units/" + "u" * 65 + "/state",
        "rtcc/v1/units/u1/" + "x" * 300,
    ],
)
def test_bad_topics_raise_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_topic(text)


def test_constructors_validate() -> None:
    with pytest.raises(ProtocolError):
        Topic.state("a/b")
    with pytest.raises(ProtocolError):
        Topic.event("u1", "Bad Name")
    with pytest.raises(ProtocolError):
        Topic(TopicKind.STATE, "u1", "extra")


def test_filters() -> None:
    assert unit_filter(TopicKind.EVENT) == "rtcc/v1/units/+/events/+"
    assert unit_filter(TopicKind.COMMAND, "u7") == "rtcc/v1/units/u7/cmd/+"
    assert unit_filter(TopicKind.STATE) == "rtcc/v1/units/+/state"


@given(st.text(max_size=300))
def test_parse_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_topic(text)


@given(ids, names, st.sampled_from(list(TopicKind)))
def test_round_trip(unit: str, name: str, kind: TopicKind) -> None:
    named = (TopicKind.EVENT, TopicKind.COMMAND, TopicKind.CENTER_EVENT)
    topic = Topic(kind, unit, name if kind in named else None)
    assert parse_topic(str(topic)) == topic

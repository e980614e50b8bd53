"""Topic grammar of the MQTT contract (v1): build and parse.

rtcc/v1/units/{unit}/presence
rtcc/v1/units/{unit}/state
rtcc/v1/units/{unit}/events/{type}
rtcc/v1/units/{unit}/cmd/{name}
rtcc/v1/units/{unit}/res
rtcc/v1/centers/{center}/status
rtcc/v1/centers/{center}/events/{type}

Event types and command names are dotted ("config.set"), but a dot may not appear in a
topic: NATS, the clustered broker we scale out on, maps MQTT levels to subjects whose
separator is the dot, and refuses such topics. In a topic level a name's dots are written
as hyphens ("cmd/config-set"); names never contain hyphens, so the mapping is one to one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from protocol.errors import ProtocolError

ROOT = "rtcc/v1"
MAX_TOPIC_LENGTH = 256

# No MQTT wildcards, separators or whitespace; short enough for a certificate CN.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Event types and command names: lower-case dotted words ("config.set", "holster_draw").
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){0,3}")
_NAME_LEVEL = re.compile(r"[a-z][a-z0-9_]{0,31}(-[a-z][a-z0-9_]{0,31}){0,3}")


class TopicKind(StrEnum):
    PRESENCE = "presence"
    STATE = "state"
    EVENT = "events"
    COMMAND = "cmd"
    RESULT = "res"
    CENTER_STATUS = "status"
    CENTER_EVENT = "center-events"


_NAMED_KINDS = frozenset({TopicKind.EVENT, TopicKind.COMMAND, TopicKind.CENTER_EVENT})
_CENTER_KINDS = frozenset({TopicKind.CENTER_STATUS, TopicKind.CENTER_EVENT})


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic. `subject` is the unit id, or the center id for center topics;
    `name` is the event type or command name for the named kinds, else None."""

    kind: TopicKind
    subject: str
    name: str | None = None

    def __post_init__(self) -> None:
        check_id(self.subject)
        if self.kind in _NAMED_KINDS:
            if self.name is None:
                raise ProtocolError("bad_topic", f"{self.kind} topic needs a name")
            check_name(self.name)
        elif self.name is not None:
            raise ProtocolError("bad_topic", f"{self.kind} topic takes no name")

    def __str__(self) -> str:
        if self.kind is TopicKind.CENTER_STATUS:
            return f"{ROOT}/centers/{self.subject}/status"
        if self.kind is TopicKind.CENTER_EVENT:
            return f"{ROOT}/centers/{self.subject}/events/{name_to_level(self.name or '')}"
        base = f"{ROOT}/units/{self.subject}/{self.kind.value}"
        return f"{base}/{name_to_level(self.name)}" if self.name is not None else base

    @classmethod
    def presence(cls, unit_id: str) -> Topic:
        return cls(TopicKind.PRESENCE, unit_id)

    @classmethod
    def state(cls, unit_id: str) -> Topic:
        return cls(TopicKind.STATE, unit_id)

    @classmethod
    def event(cls, unit_id: str, event_type: str) -> Topic:
        return cls(TopicKind.EVENT, unit_id, event_type)

    @classmethod
    def command(cls, unit_id: str, name: str) -> Topic:
        return cls(TopicKind.COMMAND, unit_id, name)

    @classmethod
    def result(cls, unit_id: str) -> Topic:
        return cls(TopicKind.RESULT, unit_id)

    @classmethod
    def center_status(cls, center_id: str) -> Topic:
        return cls(TopicKind.CENTER_STATUS, center_id)

    @classmethod
    def center_event(cls, center_id: str, event_type: str) -> Topic:
        return cls(TopicKind.CENTER_EVENT, center_id, event_type)


def is_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ProtocolError("bad_id", f"not a valid unit/center id: {value[:80]!r}")
    return value


def check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ProtocolError("bad_name", f"not a valid event type/command name: {value[:80]!r}")
    return value


def name_to_level(name: str) -> str:
    return name.replace(".", "-")


def level_to_name(level: str) -> str:
    if not _NAME_LEVEL.fullmatch(level):
        raise ProtocolError("bad_name", f"not a valid name level: {level[:80]!r}")
    return level.replace("-", ".")


@lru_cache(maxsize=65_536)
def parse_topic(topic: str) -> Topic:
    """Parse a concrete topic of the contract; anything else raises ProtocolError.
    Cached: a fleet repeats the same few topics per unit (errors are never cached)."""
    if len(topic) > MAX_TOPIC_LENGTH:
        raise ProtocolError("bad_topic", "topic too long")
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != "rtcc" or parts[1] != "v1":
        raise ProtocolError("bad_topic", f"not an rtcc/v1 topic: {topic[:80]!r}")
    scope, subject, kind_text, rest = parts[2], parts[3], parts[4], parts[5:]
    if scope == "centers":
        return _center_topic(topic, subject, kind_text, rest)
    if scope != "units" or kind_text in (k.value for k in _CENTER_KINDS):
        raise ProtocolError("bad_topic", f"unknown topic: {topic[:80]!r}")
    try:
        kind = TopicKind(kind_text)
    except ValueError:
        raise ProtocolError("bad_topic", f"unknown unit topic: {topic[:80]!r}") from None
    if kind in _NAMED_KINDS:
        if len(rest) != 1:
            raise ProtocolError("bad_topic", f"{kind} topic needs exactly one name level")
        return Topic(kind, subject, level_to_name(rest[0]))
    if rest:
        raise ProtocolError("bad_topic", f"trailing levels in {kind} topic")
    return Topic(kind, subject)


def _center_topic(topic: str, subject: str, kind_text: str, rest: list[str]) -> Topic:
    if kind_text == TopicKind.CENTER_STATUS.value and not rest:
        return Topic(TopicKind.CENTER_STATUS, subject)
    if kind_text == "events" and len(rest) == 1:
        return Topic(TopicKind.CENTER_EVENT, subject, level_to_name(rest[0]))
    raise ProtocolError("bad_topic", f"unknown center topic: {topic[:80]!r}")


def unit_filter(kind: TopicKind, unit_id: str = "+") -> str:
    """Subscription filter for one kind of unit topic, for one unit or (default) all units."""
    if kind in _CENTER_KINDS:
        raise ProtocolError("bad_topic", f"{kind} is not a unit topic")
    base = f"{ROOT}/units/{unit_id}/{kind.value}"
    return f"{base}/+" if kind in _NAMED_KINDS else base

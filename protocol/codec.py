"""bytes <-> models, with a size limit. Malformed input raises ProtocolError and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from protocol.errors import ProtocolError
from protocol.models import (
    CenterStatus,
    Command,
    CommandResult,
    ContractModel,
    Envelope,
    Event,
    Presence,
    UnitState,
)
from protocol.topics import Topic, TopicKind, parse_topic

MAX_PAYLOAD_BYTES = 64 * 1024

BODY_TYPES: dict[TopicKind, type[ContractModel]] = {
    TopicKind.PRESENCE: Presence,
    TopicKind.STATE: UnitState,
    TopicKind.EVENT: Event,
    TopicKind.COMMAND: Command,
    TopicKind.RESULT: CommandResult,
    TopicKind.CENTER_STATUS: CenterStatus,
    TopicKind.CENTER_EVENT: Event,
}
_ENVELOPES: dict[TopicKind, type[Envelope[Any]]] = {
    TopicKind.PRESENCE: Envelope[Presence],
    TopicKind.STATE: Envelope[UnitState],
    TopicKind.EVENT: Envelope[Event],
    TopicKind.COMMAND: Envelope[Command],
    TopicKind.RESULT: Envelope[CommandResult],
    TopicKind.CENTER_STATUS: Envelope[CenterStatus],
    TopicKind.CENTER_EVENT: Envelope[Event],
}


@dataclass(frozen=True, slots=True)
class Message:
    topic: Topic
    envelope: Envelope[Any]


def decode(topic: str | Topic, payload: bytes) -> Message:
    """Validate a received message against the contract."""
    parsed = topic if isinstance(topic, Topic) else parse_topic(topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        envelope = _ENVELOPES[parsed.kind].model_validate_json(payload)
    except ValidationError as exc:
        raise ProtocolError("invalid_payload", _summarise(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("invalid_payload", str(exc)[:200]) from None
    body = envelope.body
    if isinstance(body, Event) and body.type != parsed.name:
        raise ProtocolError("mismatch", "event type differs from topic")
    if isinstance(body, Command) and body.name != parsed.name:
        raise ProtocolError("mismatch", "command name differs from topic")
    return Message(parsed, envelope)


def encode(topic: Topic, envelope: Envelope[Any]) -> bytes:
    """Serialise a message to send; refuses a body that does not fit the topic or the limit."""
    if not isinstance(envelope.body, BODY_TYPES[topic.kind]):
        raise ProtocolError("mismatch", f"{type(envelope.body).__name__} on a {topic.kind} topic")
    data = envelope.model_dump_json().encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("too_large", f"{len(data)} bytes > {MAX_PAYLOAD_BYTES}")
    return data


def decode_body(kind: TopicKind, data: bytes) -> ContractModel:
    """Validate a bare body (as kept in a store) for a topic kind."""
    try:
        return BODY_TYPES[kind].model_validate_json(data)
    except (ValidationError, ValueError, RecursionError) as exc:
        raise ProtocolError("invalid_payload", str(exc)[:200]) from None


def _summarise(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"loc": (), "msg": "invalid"}
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"[:300]

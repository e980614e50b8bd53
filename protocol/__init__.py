"""The agent <-> center contract: topics, payload models and their codec. Pure: no I/O."""

from protocol.codec import MAX_PAYLOAD_BYTES, Message, decode, encode
from protocol.envelope import Envelope
from protocol.errors import ProtocolError
from protocol.models import (
    CameraStatus,
    CenterStatus,
    Command,
    CommandResult,
    CommandStatus,
    Event,
    Health,
    LinkStatus,
    Position,
    Presence,
    RuntimeConfig,
    StorageStatus,
    UnitState,
    Versions,
)
from protocol.topics import Topic, TopicKind, parse_topic

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "CameraStatus",
    "CenterStatus",
    "Command",
    "CommandResult",
    "CommandStatus",
    "Envelope",
    "Event",
    "Health",
    "LinkStatus",
    "Message",
    "Position",
    "Presence",
    "ProtocolError",
    "RuntimeConfig",
    "StorageStatus",
    "Topic",
    "TopicKind",
    "UnitState",
    "Versions",
    "decode",
    "encode",
    "parse_topic",
]

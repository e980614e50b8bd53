"""The agent <-> center contract: topics, payload models, commands, events and their codec.
Pure: no I/O."""

from protocol.codec import MAX_PAYLOAD_BYTES, Message, decode, encode
from protocol.envelope import Stamper
from protocol.errors import ProtocolError
from protocol.models import (
    CameraStatus,
    CenterStatus,
    Command,
    CommandResult,
    CommandStatus,
    Envelope,
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
from protocol.version import VERSION

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "VERSION",
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
    "Stamper",
    "StorageStatus",
    "Topic",
    "TopicKind",
    "UnitState",
    "Versions",
    "decode",
    "encode",
    "parse_topic",
]

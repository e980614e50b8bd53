"""The envelope every payload travels in: `{"v":1,"id","sid","seq","ts","body"}`."""

from __future__ import annotations

import uuid
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from protocol.models import ContractModel, Timestamp

BodyT = TypeVar("BodyT", bound=ContractModel)


class Envelope(BaseModel, Generic[BodyT]):
    """`sid` grows with every connection of the sender; `seq` counts the sender's messages
    within one `sid`, so a gap means something was lost. `id` stays the same when a
    message is sent again (store and forward), so receivers can drop repeats."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    sid: int = Field(ge=0, lt=2**53)
    seq: int = Field(ge=0, lt=2**53)
    ts: Timestamp
    body: BodyT

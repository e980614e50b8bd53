"""Arguments of the stream commands (center -> agent). Pure."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from protocol.models import ContractModel, Timestamp
from protocol.topics import check_id


class StreamStartArgs(ContractModel):
    """`stream.start`: publish the body-cam to `{center}/whip/{stream_id}` with `token`,
    and keep doing so (across lost links and restarts of the agent) until `stream.stop` or
    `until`. The center sends it again, with a fresh token, whenever it sees no media;
    `republish` then asks the unit to rebuild its connection even if it believes it is
    live (the relay lost it)."""

    stream_id: Annotated[str, AfterValidator(check_id)]
    token: Annotated[str, Field(min_length=1, max_length=4096)]
    until: Timestamp | None = None
    republish: bool = False

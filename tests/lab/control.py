"""The link emulator's control channel: one JSON request per line on its stdin, one JSON
reply per line on its stdout.

Requests (`direction` is "uplink" = vehicle -> core, "downlink" = core -> vehicle, or
"both", the default):

    {"op": "set", "direction": "uplink", "faults": {"delay_ms": 400, "jitter_ms": 100}}
    {"op": "cut"}                 every frame is dropped, including those in flight
    {"op": "restore"}             the cut ends; the faults set before still apply
    {"op": "stats"}

`set` replaces the direction's faults (fields left out take their defaults: no fault).
Every reply is a `LinkState`: `ok`, the emulator's `now` (time.monotonic, the same clock in
every namespace, so a test can compare it with its own), and both directions' faults, cut
flag and counters. The emulator's first line is a `LinkState` too, written once it forwards.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from tests.lab.model import DirectionStats, Faults

DirectionName = Literal["uplink", "downlink", "both"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    direction: DirectionName = "both"


class SetFaults(Request):
    op: Literal["set"]
    faults: Faults


class Cut(Request):
    op: Literal["cut"]


class Restore(Request):
    op: Literal["restore"]


class Stats(Request):
    op: Literal["stats"]


AnyRequest = Annotated[SetFaults | Cut | Restore | Stats, Field(discriminator="op")]
REQUESTS: TypeAdapter[AnyRequest] = TypeAdapter(AnyRequest)


class DirectionStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    faults: Faults
    cut: bool
    stats: DirectionStats
    # The last frame carrying data (TCP payload or UDP) handed on, as opposed to bare ACKs
    # and ARP: "the unit's last packet" as an MQTT broker counts it.
    last_data_at: float | None = None


class LinkState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ok: bool = True
    error: str | None = None
    now: float
    uplink: DirectionStatus
    downlink: DirectionStatus

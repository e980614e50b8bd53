"""Live streams of units, as the center wants them: a remote start or stop makes a unit's
body-cam stream desired or not (`central.reconcile` keeps a desired stream live), a viewer
is granted a token for it, and the list says how each one is doing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from central.config import RelaySettings
from central.errors import NotFound, TimedOut
from central.fleet import FleetService
from central.reconcile import Reconciler, StreamStartFailed
from protocol.events import EventType

log = structlog.get_logger("rtcc.streams")


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamGrant(ApiModel):
    stream_id: str
    unit_id: str
    whep_url: str
    view_url: str
    token: str
    token_id: str = Field(description="Names the viewer token (to revoke it).")
    token_expires_in_s: float
    start_ms: float


class StreamView(ApiModel):
    stream_id: str
    unit_id: str
    codec: str | None
    live: bool = Field(description="Media is arriving at the relay right now.")
    state: Literal["live", "starting", "reconnecting"]
    requested_by: str
    reason: str
    until: float
    started: float | None
    viewers: int
    bitrate_bps: float
    restarts: int = Field(description="How often the center has asked the unit again.")


class StartRequest(ApiModel):
    reason: str = Field(default="", max_length=512, description="Why (kept with the stream).")
    incident: str = Field(default="", max_length=64, description="The incident number, if any.")
    duration_s: float | None = Field(
        default=None, gt=0, le=86_400, description="Keep it live this long (default setting)."
    )

    @model_validator(mode="after")
    def _needs_a_reason(self) -> StartRequest:
        if not (self.reason.strip() or self.incident.strip()):
            raise ValueError("a remote start needs a reason or an incident number")
        return self

    @property
    def why(self) -> str:
        return " ".join(p for p in (self.incident.strip(), self.reason.strip()) if p)


@dataclass(frozen=True, slots=True)
class Started:
    """A stream live at the relay: which, and how long it took to get there."""

    stream_id: str
    unit_id: str
    start_ms: float


class StreamService:
    def __init__(
        self,
        fleet: FleetService,
        settings: RelaySettings,
        public_url: Callable[[], str],
        reconciler: Reconciler,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fleet = fleet
        self.settings = settings
        self.reconciler = reconciler
        self._public_url = public_url
        self._clock = clock

    def wanted(self, stream_id: str) -> bool:
        return self.reconciler.plan.get(stream_id) is not None

    def check_wanted(self, stream_id: str) -> None:
        """Only a stream the center started may be published."""
        if not self.wanted(stream_id):
            raise NotFound("no such stream was started")

    def grant_urls(self, stream_id: str, token: str) -> tuple[str, str]:
        """Where to watch: the WHEP endpoint, and the viewer page with the token."""
        base = self._public_url()
        return f"{base}/whep/{stream_id}", f"{base}/view/{stream_id}#token={token}"

    def grant(self, started: Started, token: str, token_id: str, ttl_s: float) -> StreamGrant:
        whep_url, view_url = self.grant_urls(started.stream_id, token)
        return StreamGrant(
            stream_id=started.stream_id,
            unit_id=started.unit_id,
            whep_url=whep_url,
            view_url=view_url,
            token=token,
            token_id=token_id,
            token_expires_in_s=ttl_s,
            start_ms=started.start_ms,
        )

    async def start(self, unit_id: str, requested_by: str, request: StartRequest) -> Started:
        """Make the unit's stream desired and answer once its media reaches the relay.
        Raises UnknownUnit, UnitOffline, StreamStartFailed or TimedOut; a stream this call
        made desired is given up again then."""
        started_at = self._clock()
        self.fleet.online_unit(unit_id)
        duration = request.duration_s or self.settings.stream_duration_s
        reconciler = self.reconciler
        stream, new = reconciler.want(unit_id, requested_by, request.why, duration)
        deadline = started_at + self.settings.start_timeout_s
        try:
            if not stream.live and stream.start_sent is None:
                await reconciler.start_now(stream)
            if not await reconciler.wait_live(stream.stream_id, deadline):
                raise TimedOut("the stream did not go live in time")
        except (StreamStartFailed, TimedOut) as exc:
            if new:
                reconciler.forget(stream.stream_id)
                await reconciler.end(stream)
            if isinstance(exc, StreamStartFailed):
                raise StreamStartFailed(f"unit could not start: {exc}") from None
            raise
        if new:
            log.info("stream_started", unit_id=unit_id, stream_id=stream.stream_id)
            self.fleet.announce(
                EventType.STREAM_STARTED, {"stream_id": stream.stream_id, "unit_id": unit_id}
            )
        return Started(stream.stream_id, unit_id, round((self._clock() - started_at) * 1000, 1))

    async def stop(self, unit_id: str) -> list[str]:
        stream = self.reconciler.plan.for_unit(unit_id)
        if stream is None:
            raise NotFound("the unit has no active stream")
        self.reconciler.forget(stream.stream_id)
        log.info("stream_stopped", unit_id=unit_id, stream_id=stream.stream_id)
        self.fleet.announce(
            EventType.STREAM_STOPPED, {"stream_id": stream.stream_id, "unit_id": unit_id}
        )
        await self.reconciler.end(stream)
        return [stream.stream_id]

    async def list(self) -> list[StreamView]:
        reports, _ = await self.reconciler.worker_streams()
        views = []
        for stream in self.reconciler.plan.streams():
            info = reports.get(stream.stream_id)
            live = info is not None and info.live
            state: Literal["live", "starting", "reconnecting"] = (
                "live" if live else "reconnecting" if stream.last_live else "starting"
            )
            views.append(
                StreamView(
                    stream_id=stream.stream_id,
                    unit_id=stream.unit_id,
                    codec=info.codec if info else None,
                    live=live,
                    state=state,
                    requested_by=stream.record.requested_by,
                    reason=stream.record.reason,
                    until=stream.record.until,
                    started=info.started if info else None,
                    viewers=info.viewers if info else 0,
                    bitrate_bps=info.bitrate_bps if info else 0.0,
                    restarts=max(0, stream.starts - 1),
                )
            )
        return views

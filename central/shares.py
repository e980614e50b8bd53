"""Shares to patrols: a dispatcher pushes a live stream, a still and a text (BOLO) to the units
near a scene, or to chosen units. Who gets it is the fan-out policy's answer; each recipient's
patrol page hears of it at once, says when it received and opened it, and watches the stream
with a viewer token bound to the share, so that revoking the share (or its end) stops the
video within seconds. Every share, revocation and opening is audited."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from central.console_hub import ConsoleHub
from central.console_settings import ConsoleSettings
from central.db.audit_chain import AuditEntry
from central.db.shares import Recipient, ShareRecord, Shares, Stills
from central.errors import Forbidden, NotFound, Unprocessable
from central.fanout_policy import Candidate, RadiusM, select_share_recipients
from central.gate import Caller, Gate
from central.live_feed import CONSOLE, unit_audience
from central.viewers import IssuedViewerToken, ViewerAccess
from protocol.geo import bearing_deg, haversine_m
from protocol.models import UnitId

log = structlog.get_logger("rtcc.shares")
SWEEP_S = 1.0
MAX_CHOSEN = 500


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scene(ApiModel):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)


class ShareRequest(ApiModel):
    stream_id: str | None = Field(default=None, max_length=128)
    still_id: str | None = Field(default=None, max_length=32)
    text: str = Field(default="", max_length=2000, description="The BOLO: who or what to look for.")
    scene: Scene | None = Field(default=None, description="Default: where the shared unit is.")
    radius_m: RadiusM | None = Field(default=None, description="Default: the configured radius.")
    unit_ids: list[UnitId] = Field(default_factory=list, max_length=MAX_CHOSEN)
    ttl_s: float | None = Field(default=None, gt=0, le=86_400, allow_inf_nan=False)

    @model_validator(mode="after")
    def _shares_something(self) -> ShareRequest:
        if not (self.stream_id or self.still_id or self.text.strip()):
            raise ValueError("a share carries a stream, a still or a text")
        return self


class RecipientView(ApiModel):
    unit_id: str
    distance_m: float | None
    received_at: float | None
    opened_at: float | None


class ShareView(ApiModel):
    share_id: str
    created_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    stream_id: str | None
    unit_id: str | None = Field(description="The unit whose video is shared.")
    still_id: str | None
    still_url: str | None
    text: str
    scene: Scene
    radius_m: float | None
    recipients: list[RecipientView]

    @classmethod
    def of(cls, share: ShareRecord) -> ShareView:
        return cls(
            share_id=share.id,
            created_by=share.created_by,
            created_at=share.created_at,
            expires_at=share.expires_at,
            revoked_at=share.revoked_at,
            stream_id=share.stream_id,
            unit_id=share.unit_id,
            still_id=share.still_id,
            still_url=still_url(share.still_id),
            text=share.text,
            scene=Scene(lat=share.scene_lat, lon=share.scene_lon),
            radius_m=share.radius_m,
            recipients=[
                RecipientView(
                    unit_id=r.unit_id,
                    distance_m=r.distance_m,
                    received_at=r.received_at,
                    opened_at=r.opened_at,
                )
                for r in share.recipients
            ],
        )


class PatrolShare(ApiModel):
    """A share as the patrol it is addressed to sees it."""

    share_id: str
    from_user: str
    created_at: float
    expires_at: float
    stream_id: str | None
    still_url: str | None
    text: str
    scene: Scene
    distance_m: float | None = Field(description="From the unit, as of its last fix.")
    bearing_deg: float | None = Field(description="Which way the scene is from the unit.")


def still_url(still_id: str | None) -> str | None:
    return None if still_id is None else f"/api/v1/stills/{still_id}"


class ShareService:
    def __init__(
        self,
        hub: ConsoleHub,
        gate: Gate,
        viewers: ViewerAccess,
        settings: ConsoleSettings,
        whep_url: Callable[[str], str],
    ) -> None:
        self.hub = hub
        self.gate = gate
        self.database = gate.database
        self.viewers = viewers
        self.settings = settings
        self.whep_url = whep_url
        self._active: dict[str, ShareRecord] = {}  # what pages were told, until it ends
        hub.snapshot_parts.append(self._snapshot_part)

    # ---- creating and revoking (blocking parts run in threads) -----------------------------

    async def create(self, by: str, request: ShareRequest, caller: Caller | None) -> ShareView:
        """Shares as `by` (a person, or the center's auto-share with no caller)."""
        stream_unit = None
        if request.stream_id is not None:
            stream = self.hub.streams_live.get(request.stream_id)
            if stream is None:  # started a moment ago (an alert's): ask the relay now
                await self.hub.refresh_streams()
                stream = self.hub.streams_live.get(request.stream_id)
            if stream is None:
                raise NotFound("no such live stream")
            stream_unit = stream.unit_id
        await self.hub.refresh_officers()
        scene = request.scene or self._position_of(stream_unit)
        if scene is None:
            raise Unprocessable("a share needs a scene: the shared unit's position is not known")
        radius = self.settings.share_radius_m if request.radius_m is None else request.radius_m
        chosen = list(dict.fromkeys(request.unit_ids))
        exclude = {stream_unit} if stream_unit else set()
        picked = select_share_recipients(
            self.hub.index, self._candidates(), (scene.lat, scene.lon), radius, chosen, exclude
        )
        now = self.hub.fleet.clock()
        ttl = request.ttl_s or self.settings.share_ttl_s
        record = ShareRecord(
            secrets.token_urlsafe(12),
            by,
            now,
            now + ttl,
            None,
            None,
            request.stream_id,
            stream_unit,
            request.still_id,
            request.text.strip(),
            scene.lat,
            scene.lon,
            radius,
            tuple(Recipient(r.unit_id, r.distance_m) for r in picked),
        )
        stored = await asyncio.to_thread(self._store, record, caller)
        self.announce(stored)
        return ShareView.of(stored)

    def _store(self, record: ShareRecord, caller: Caller | None) -> ShareRecord:
        with self.database.write() as tx:
            if record.still_id is not None:
                Stills(tx).jpeg(record.still_id)  # NotFound for a still that is not kept
            stored = Shares(tx).add(record)
        detail: dict[str, JsonValue] = {
            "stream_id": record.stream_id,
            "still_id": record.still_id,
            "radius_m": record.radius_m,
            "recipients": [r.unit_id for r in record.recipients],
            "expires_at": record.expires_at,
        }
        self._audit(caller, record.created_by, "shares.create", record.id, detail)
        return stored

    def _audit(
        self, caller: Caller | None, by: str, action: str, obj: str, detail: dict[str, JsonValue]
    ) -> None:
        if caller is not None:
            self.gate.audit(caller, action, "ok", obj, detail)
        else:
            now = self.hub.fleet.clock()
            self.gate.append(AuditEntry(now, by, action, "ok", None, "center", obj, detail))

    def _candidates(self) -> dict[str, Candidate]:
        now = self.hub.fleet.clock()
        fresh_s = self.settings.position_fresh_s
        officers = self.hub.officers
        return {
            record.unit_id: Candidate(
                online=bool(record.online),
                patrol_login=record.unit_id in officers,
                fresh=reading is not None
                and (fix := reading["fix_ts"]) is not None
                and now - fix <= fresh_s,
            )
            for record in self.hub.fleet.registry.units()
            if (reading := self.hub.readings.get(record.unit_id)) is not None
        }

    def _position_of(self, unit_id: str | None) -> Scene | None:
        unit = self.hub.readings.get(unit_id) if unit_id else None
        if unit is None or (lat := unit["lat"]) is None or (lon := unit["lon"]) is None:
            return None
        return Scene(lat=lat, lon=lon)

    def revoke(self, caller: Caller, share_id: str) -> ShareRecord:
        """Blocking. The share and its viewer tokens end now; `announce` it after."""
        now = self.hub.fleet.clock()
        with self.database.write() as tx:
            record = Shares(tx).revoke(share_id, caller.name, now)
        self.gate.audit(caller, "shares.revoke", "ok", share_id, {"stream_id": record.stream_id})
        return record

    def announce(self, record: ShareRecord) -> None:
        """Tells the console and each recipient's page (on the loop)."""
        if record.holds(self.hub.fleet.clock()):
            self._active[record.id] = record
            self.hub.publish("share", ShareView.of(record), {CONSOLE})
            for recipient in record.recipients:
                patrol = self.patrol_view(record, recipient.unit_id)
                self.hub.publish("share", patrol, {unit_audience(recipient.unit_id)})
            return
        self._active.pop(record.id, None)
        audiences = {CONSOLE} | {unit_audience(r.unit_id) for r in record.recipients}
        self.hub.publish("share_revoked", {"share_id": record.id}, audiences)

    # ---- the patrol's side ------------------------------------------------------------------

    def patrol_view(self, share: ShareRecord, unit_id: str) -> PatrolShare:
        unit = self.hub.readings.get(unit_id)
        distance = bearing = None
        lat, lon = (unit["lat"], unit["lon"]) if unit is not None else (None, None)
        if lat is not None and lon is not None:
            distance = haversine_m(lat, lon, share.scene_lat, share.scene_lon)
            bearing = bearing_deg(lat, lon, share.scene_lat, share.scene_lon)
        return PatrolShare(
            share_id=share.id,
            from_user=share.created_by,
            created_at=share.created_at,
            expires_at=share.expires_at,
            stream_id=share.stream_id,
            still_url=still_url(share.still_id),
            text=share.text,
            scene=Scene(lat=share.scene_lat, lon=share.scene_lon),
            distance_m=distance,
            bearing_deg=bearing,
        )

    def addressed(self, caller: Caller, share_id: str) -> tuple[ShareRecord, str]:
        """Blocking. The share, if it holds and is addressed to the caller's unit."""
        unit_id = caller.principal.unit_id
        if unit_id is None:
            raise Forbidden("only a patrol login receives shares")
        with self.database.read() as tx:
            share = Shares(tx).get(share_id)
        if share.recipient(unit_id) is None or not share.holds(self.hub.fleet.clock()):
            raise NotFound("no such share for this unit")
        return share, unit_id

    def active(self) -> list[ShareView]:
        """Blocking. Shares neither revoked nor expired, newest first."""
        return [ShareView.of(share) for share in self._active_shares()]

    def for_unit(self, unit_id: str) -> list[PatrolShare]:
        with self.database.read() as tx:
            shares = Shares(tx).active(self.hub.fleet.clock(), unit_id)
        return [self.patrol_view(share, unit_id) for share in shares]

    def mark(self, caller: Caller, share_id: str, opened: bool) -> ShareRecord | None:
        """Blocking. Records receipt (or opening); the changed share, if it changed."""
        share, unit_id = self.addressed(caller, share_id)
        with self.database.write() as tx:
            changed = Shares(tx).mark(share_id, unit_id, self.hub.fleet.clock(), opened=opened)
            share = Shares(tx).get(share_id)
        return share if changed else None

    def open_stream(self, caller: Caller, share_id: str) -> tuple[IssuedViewerToken, str, str]:
        """Blocking. A viewer token for the shared stream, bound to the share (audited)."""
        share, unit_id = self.addressed(caller, share_id)
        if share.stream_id is None:
            raise NotFound("this share carries no stream")
        issued = self.viewers.issue(caller, share.stream_id, share.expires_at, share.id)
        detail: dict[str, JsonValue] = {"unit_id": unit_id, "stream_id": share.stream_id}
        self.gate.audit(caller, "shares.open", "ok", share_id, detail)
        return issued, share.stream_id, self.whep_url(share.stream_id)

    # ---- ending --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Shares that reach their end: their viewer tokens are revoked (so their viewers
        are dropped) and the pages told."""
        await self._load()
        while True:
            await asyncio.sleep(SWEEP_S)
            now = self.hub.fleet.clock()
            for share in [s for s in self._active.values() if not s.holds(now)]:
                self.announce(share)
            try:
                await asyncio.to_thread(self._end_expired_grants, now)
            except Exception as exc:  # the database away: the next round tries again
                log.warning("share_sweep_failed", error=str(exc)[:200])

    async def _load(self) -> None:
        for share in await asyncio.to_thread(self._active_shares):
            self._active[share.id] = share

    def _active_shares(self) -> list[ShareRecord]:
        with self.database.read() as tx:
            return Shares(tx).active(self.hub.fleet.clock())

    def _end_expired_grants(self, now: float) -> None:
        with self.database.write() as tx:
            Shares(tx).end_expired_grants(now)

    async def _snapshot_part(self, audience: str) -> dict[str, Any]:
        if audience == CONSOLE:
            return {"shares": [ShareView.of(s) for s in self._active.values()]}
        unit_id = audience.removeprefix("unit:")
        return {
            "shares": [
                self.patrol_view(s, unit_id)
                for s in self._active.values()
                if s.recipient(unit_id) is not None
            ]
        }

"""Provisioning over HTTP: enrollment codes, the list of device certificates and revocation
for techs and admins; enrollment itself for gateways, whose code is their only credential,
and renewal, which an enrolled gateway signs with its registered evidence key.

No `from __future__ import annotations`: FastAPI reads the routes' signatures.
"""

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from central.access.policy import Action
from central.fleet import FleetService
from central.gate import Caller, Gate, source_of
from central.people import Operator
from central.provisioning import Provisioning
from protocol.renewal import RENEW_ROUTE, RenewAnswer, RenewRequest
from protocol.topics import check_id

MAX_CSR_CHARS = 16_384
MAX_ADDRESSES = 10_000  # remembered by the throttle; the oldest go first


class ProvisionModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeRequest(ProvisionModel):
    unit_id: Annotated[str, AfterValidator(check_id)]
    expires_s: float | None = Field(default=None, gt=0, le=30 * 86_400)


class CodeAnswer(ProvisionModel):
    unit_id: str
    code: str
    expires_s: float


class EnrollRequest(ProvisionModel):
    code: str = Field(min_length=1, max_length=64)
    csr: str = Field(min_length=1, max_length=MAX_CSR_CHARS, description="PEM")
    evidence_key: str = Field(min_length=1, max_length=64, description="Ed25519 public key, base64")


class AgentConfig(ProvisionModel):
    unit_id: str
    mqtt_url: str
    center_url: str


class EnrollAnswer(ProvisionModel):
    unit_id: str
    serial: str
    expires_at: float
    certificate: str = Field(description="PEM")
    ca: str = Field(description="The device CA (PEM): it signed the broker's certificate too.")
    config: AgentConfig


class DeviceView(ProvisionModel):
    unit_id: str
    serial: str
    issued_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None
    last_seen: float | None
    online: bool | None = Field(description="As the fleet sees it now; null: never heard from.")


class RevokeAnswer(ProvisionModel):
    unit_id: str
    revoked: list[str]
    broker_updated: bool = Field(
        description="The broker threw the unit out before this answer; false: it could "
        "not be reached in time, the center keeps trying (HTTP uploads and video are "
        "refused already)."
    )


class AddressThrottle:
    """At most `attempts` per address in any `window_s`."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self._attempts = attempts
        self._window_s = window_s
        self._seen: dict[str, deque[float]] = {}

    def admit(self, address: str, now: float) -> float | None:
        """None if admitted, else the seconds until the address may try again."""
        times = self._seen.pop(address, None) or deque()
        self._seen[address] = times  # most recent last: the oldest go first
        while times and times[0] <= now - self._window_s:
            times.popleft()
        if len(self._seen) > MAX_ADDRESSES:
            del self._seen[next(iter(self._seen))]
        if len(times) >= self._attempts:
            return times[0] + self._window_s - now
        times.append(now)
        return None


def add_provision_routes(
    app: FastAPI,
    provisioning: Provisioning,
    gate: Gate,
    fleet: FleetService,
    urls: Callable[[], tuple[str, str]],
    devices_changed: Callable[[], Awaitable[bool]],
) -> None:
    """`urls()`: the broker and center URLs gateways are given, as the center runs now.
    `devices_changed()`: after an enrollment or a revocation, the center's view of the
    device records is read again and the supervised broker's rights brought in line before
    the answer (the new unit can connect at once; the revoked one is out); False when the
    broker could not be updated in time (it keeps trying)."""

    settings = provisioning.settings
    throttle = AddressThrottle(settings.enroll_attempts, settings.enroll_window_s)
    add_renewal_route(app, provisioning)

    def operator(caller: Caller) -> Operator:
        return Operator(caller.name, caller.role, caller.source)

    @app.post("/api/v1/provision/codes", status_code=201)
    async def create_code(
        request: CodeRequest,
        caller: Annotated[Caller, Depends(gate.require(Action.DEVICES_PROVISION))],
    ) -> CodeAnswer:
        ttl = request.expires_s or settings.code_ttl_s
        code = await asyncio.to_thread(
            provisioning.create_code, operator(caller), request.unit_id, ttl
        )
        return CodeAnswer(unit_id=request.unit_id, code=code, expires_s=ttl)

    @app.post(
        "/api/v1/provision/enroll",
        responses={
            400: {"description": "Unusable CSR or evidence key"},
            403: {"description": "Unknown, used or expired code"},
            429: {"description": "Too many attempts from this address"},
        },
    )
    async def enroll(body: EnrollRequest, request: Request) -> EnrollAnswer:
        source = source_of(request)
        admit(throttle, source, "enrollment")
        done = await asyncio.to_thread(
            provisioning.enroll, body.code, body.csr, body.evidence_key, source
        )
        await devices_changed()
        mqtt_url, center_url = urls()
        return EnrollAnswer(
            unit_id=done.unit_id,
            serial=done.serial,
            expires_at=done.expires_at,
            certificate=done.cert_pem,
            ca=done.ca_pem,
            config=AgentConfig(unit_id=done.unit_id, mqtt_url=mqtt_url, center_url=center_url),
        )

    @app.get(
        "/api/v1/provision/devices",
        dependencies=[Depends(gate.require(Action.DEVICES_PROVISION, Action.DEVICES_HEALTH))],
    )
    async def list_devices() -> list[DeviceView]:
        certs = await asyncio.to_thread(provisioning.certs)
        views = []
        for cert in certs:
            record = fleet.registry.get(cert.unit_id)
            views.append(
                DeviceView(
                    unit_id=cert.unit_id,
                    serial=cert.serial,
                    issued_at=cert.issued_at,
                    expires_at=cert.expires_at,
                    revoked_at=cert.revoked_at,
                    revoked_by=cert.revoked_by,
                    last_seen=record.last_seen if record is not None else None,
                    online=record.online if record is not None else None,
                )
            )
        return views

    @app.post("/api/v1/provision/devices/{unit_id}/revoke")
    async def revoke(
        unit_id: Annotated[str, AfterValidator(check_id)],
        caller: Annotated[Caller, Depends(gate.require(Action.DEVICES_PROVISION))],
    ) -> RevokeAnswer:
        serials = await asyncio.to_thread(provisioning.revoke, operator(caller), unit_id)
        updated = await devices_changed()
        return RevokeAnswer(unit_id=unit_id, revoked=serials, broker_updated=updated)


def admit(throttle: AddressThrottle, source: str, what: str) -> None:
    """429 with Retry-After once `source` made too many attempts."""
    wait_s = throttle.admit(source, time.monotonic())
    if wait_s is not None:
        raise HTTPException(
            429,
            f"too many {what} attempts from this address: try again later",
            headers={"Retry-After": str(max(1, round(wait_s)))},
        )


def add_renewal_route(app: FastAPI, provisioning: Provisioning) -> None:
    """POST RENEW_ROUTE: no person's credentials, the unit's signature is the credential."""
    settings = provisioning.settings
    # The enrollment's limit, counted apart: a fleet renewing through one address never
    # holds up a tech's enrollment from it, nor the reverse.
    throttle = AddressThrottle(settings.enroll_attempts, settings.enroll_window_s)

    @app.post(
        RENEW_ROUTE,
        responses={
            400: {"description": "Unusable CSR"},
            403: {"description": "Unknown unit, bad signature, stale time, or no valid cert"},
            429: {"description": "Too many attempts from this address"},
        },
    )
    async def renew(body: RenewRequest, request: Request) -> RenewAnswer:
        source = source_of(request)
        admit(throttle, source, "renewal")
        done = await asyncio.to_thread(provisioning.renew, body, source)
        # Nothing to bring in line at the broker: the unit held a valid certificate, so it
        # was enrolled and stays so, and its new certificate is on no revocation list.
        return RenewAnswer(
            unit_id=done.unit_id,
            serial=done.serial,
            expires_at=done.expires_at,
            certificate=done.cert_pem,
            ca=done.ca_pem,
        )

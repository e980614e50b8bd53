"""The center's HTTP API (JSON): units, commands, health, metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from central.commands import TooManyPending
from central.fleet import FleetService
from central.registry import UnitRecord
from protocol import CommandStatus, UnitState
from protocol.topics import check_id, check_name
from runtime.mqtt import MqttError

UnitIdPath = Annotated[str, AfterValidator(check_id)]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UnitView(ApiModel):
    unit_id: str
    online: bool | None = Field(description="None until the unit's presence is known.")
    session: int
    last_seen: float | None
    presence_since: float | None
    state: UnitState | None
    state_ts: float | None

    @classmethod
    def of(cls, record: UnitRecord) -> UnitView:
        return cls(
            unit_id=record.unit_id,
            online=record.online,
            session=record.sid,
            last_seen=record.last_seen,
            presence_since=record.presence_since,
            state=record.state,
            state_ts=record.state_ts,
        )


class CommandRequest(ApiModel):
    name: Annotated[str, AfterValidator(check_name)]
    args: dict[str, JsonValue] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0, le=300)


class CommandResponse(ApiModel):
    cmd_id: str
    status: CommandStatus
    detail: str
    data: dict[str, JsonValue]
    rtt_ms: float


class Health(ApiModel):
    status: str
    mqtt_connected: bool
    units_known: int
    units_online: int


def create_app(fleet: FleetService) -> FastAPI:
    app = FastAPI(title="rtcc center", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        connected = fleet.link.connected.is_set()
        body = Health(
            status="ok" if connected else "degraded",
            mqtt_connected=connected,
            units_known=len(fleet.registry),
            units_online=fleet.registry.online_count(),
        )
        return JSONResponse(body.model_dump(), status_code=200 if connected else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(fleet.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/v1/units")
    def list_units() -> list[UnitView]:
        return [UnitView.of(r) for r in fleet.registry.units()]

    @app.get("/api/v1/units/{unit_id}", responses={404: {"description": "Unknown unit"}})
    def get_unit(unit_id: UnitIdPath) -> UnitView:
        record = fleet.registry.get(unit_id)
        if record is None:
            raise HTTPException(404, f"unknown unit {unit_id}")
        return UnitView.of(record)

    @app.post(
        "/api/v1/units/{unit_id}/commands",
        responses={
            404: {"description": "Unknown unit"},
            409: {"description": "Unit offline"},
            503: {"description": "Broker unreachable"},
            504: {"description": "No final result in time"},
        },
    )
    async def post_command(unit_id: UnitIdPath, request: CommandRequest) -> CommandResponse:
        record = fleet.registry.get(unit_id)
        if record is None:
            raise HTTPException(404, f"unknown unit {unit_id}")
        if not record.online:
            raise HTTPException(409, f"unit {unit_id} is offline")
        try:
            pending = await fleet.send_command(
                unit_id, request.name, request.args, fleet.settings.fleet.command_ttl_s
            )
        except (MqttError, TooManyPending) as exc:
            raise HTTPException(503, f"cannot send command: {exc}") from None
        try:
            result = await asyncio.wait_for(asyncio.shield(pending.result), request.timeout_s)
        except TimeoutError:
            fleet.metrics.commands.labels("timeout").inc()
            return JSONResponse(  # type: ignore[return-value]
                {
                    "detail": "no final result in time",
                    "cmd_id": pending.cmd_id,
                    "accepted": pending.accepted,
                },
                status_code=504,
            )
        finally:
            fleet.commands.close(pending.cmd_id)
        rtt_ms = (fleet.clock() - pending.sent_at) * 1000.0
        return CommandResponse(
            cmd_id=pending.cmd_id,
            status=result.status,
            detail=result.detail,
            data=result.data,
            rtt_ms=round(rtt_ms, 2),
        )

    return app

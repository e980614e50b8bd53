"""The center's HTTP API (JSON): units, commands, health, metrics."""

# No `from __future__ import annotations`: the routes' signatures hold the gate's
# dependencies, which FastAPI must evaluate where the routes are defined.

import asyncio
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from central.access.policy import Action
from central.errors import CenterError, UnknownUnit
from central.fleet import FleetService
from central.gate import Caller, Gate
from central.http_errors import install_error_handlers
from central.registry import UnitRecord
from protocol import CommandStatus, UnitState
from protocol.topics import check_id, check_name
from protocol.version import VERSION

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
    def of(cls, record: UnitRecord) -> "UnitView":
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


def create_app(fleet: FleetService, gate: Gate) -> FastAPI:
    """The API with its units and command routes; every route but /healthz asks the gate."""
    app = FastAPI(
        title="rtcc center",
        version=VERSION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)

    def needs(action: Action) -> Any:
        return Depends(gate.require(action))

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

    @app.get("/metrics", dependencies=[needs(Action.METRICS_SCRAPE)])
    def metrics() -> Response:
        return Response(fleet.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/v1/units", dependencies=[needs(Action.UNITS_LIST)])
    def list_units() -> list[UnitView]:
        return [UnitView.of(r) for r in fleet.registry.units()]

    @app.get(
        "/api/v1/units/{unit_id}",
        responses={404: {"description": "Unknown unit"}},
        dependencies=[needs(Action.UNIT_VIEW)],
    )
    def get_unit(unit_id: UnitIdPath) -> UnitView:
        record = fleet.registry.get(unit_id)
        if record is None:
            raise UnknownUnit(unit_id)
        return UnitView.of(record)

    @app.post(
        "/api/v1/units/{unit_id}/commands",
        responses={
            404: {"description": "Unknown unit"},
            409: {"description": "Unit offline"},
            503: {"description": "Broker unreachable"},
            504: {"description": "No final result in time (with cmd_id and accepted)"},
        },
    )
    async def post_command(
        unit_id: UnitIdPath,
        request: CommandRequest,
        caller: Annotated[Caller, Depends(gate.require(Action.COMMAND_SEND))],
    ) -> CommandResponse:
        try:
            fleet.online_unit(unit_id)
            answer = await fleet.call(
                unit_id,
                request.name,
                request.args,
                request.timeout_s,
                ttl_s=fleet.settings.fleet.command_ttl_s,
            )
        except CenterError as exc:
            detail = {"command": request.name, "error": str(exc), **exc.context}
            await asyncio.to_thread(gate.audit, caller, "commands.send", "failed", unit_id, detail)
            raise
        detail = {"command": request.name, "cmd_id": answer.cmd_id}
        outcome = answer.result.status.value
        await asyncio.to_thread(gate.audit, caller, "commands.send", outcome, unit_id, detail)
        return CommandResponse(
            cmd_id=answer.cmd_id,
            status=answer.result.status,
            detail=answer.result.detail,
            data=answer.result.data,
            rtt_ms=round(answer.rtt_s * 1000.0, 2),
        )

    return app

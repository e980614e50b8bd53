"""HTTP for live streams: remote start and stop of a unit's stream, the list of streams."""

from __future__ import annotations

from fastapi import FastAPI

from central.api import UnitIdPath
from central.streams import StartRequest, StreamGrant, StreamService, StreamView


def add_stream_routes(app: FastAPI, streams: StreamService) -> None:
    @app.post(
        "/api/v1/units/{unit_id}/stream",
        tags=["streams"],
        responses={404: {}, 409: {}, 502: {}, 504: {}},
    )
    async def start_stream(unit_id: UnitIdPath, body: StartRequest | None = None) -> StreamGrant:
        return await streams.start(unit_id, "api", body)

    @app.delete("/api/v1/units/{unit_id}/stream", tags=["streams"])
    async def stop_stream(unit_id: UnitIdPath) -> dict[str, list[str]]:
        return {"stopped": await streams.stop(unit_id)}

    @app.get("/api/v1/streams", tags=["streams"])
    async def list_streams() -> list[StreamView]:
        return await streams.list()

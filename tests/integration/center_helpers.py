"""A whole center (broker client, fleet, API, relay worker process), a unit that publishes
to it, and a streaming unit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agent.service import Agent
from central.config import CentralSettings
from central.service import Central
from runtime.config import load_settings
from tests.center_tls import ca_file, client_tls, https_settings
from tests.helpers import FAST_MQTT, every_scope_key, running_agent, wait_for

LOOPBACK_ICE = {"host_addresses": ["127.0.0.1"]}


@dataclass
class UnitAtCenter:
    central: Central
    agent: Agent
    http: httpx.AsyncClient  # the center's API
    unit_id: str


@dataclass
class StreamingUnit:
    central: Central
    agent: Agent
    http: httpx.AsyncClient
    grant: dict[str, Any]


def central_settings(
    broker_url: str, unique: str, tmp_path: Path, port: int = 0, **extra: Any
) -> CentralSettings:
    """The whole center (fleet, API, one relay worker process), loopback only."""
    return load_settings(
        CentralSettings,
        center_id=f"c-{unique}",
        mqtt_url=broker_url,
        mqtt=FAST_MQTT,
        data_dir=tmp_path / "center",
        http=https_settings(port),
        relay={"workers": 1, "ice": LOOPBACK_ICE},
        **extra,
    )


@contextlib.asynccontextmanager
async def running_central(broker_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Central]:
    central = Central(central_settings(broker_url, unique, tmp_path))
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


def api_client(central: Central, key: bool = True) -> httpx.AsyncClient:
    """A client of the center's HTTPS API that checks its certificate; with an API key of
    every scope unless `key` is False (a browser before sign-in)."""
    headers = every_scope_headers(central) if key else {}
    return httpx.AsyncClient(
        base_url=central.api_url, timeout=20, headers=headers, verify=client_tls()
    )


def every_scope_headers(central: Central) -> dict[str, str]:
    """The Authorization header of a new API key with every scope."""
    assert central.database is not None
    return {"Authorization": f"Bearer {every_scope_key(central.database)}"}


def agent_of(
    central: Central, unit: str, broker_url: str, data_dir: Path, **agent: Any
) -> contextlib.AbstractAsyncContextManager[Agent]:
    """`rtcc agent` for `unit`, publishing to `central` over HTTPS (loopback ICE)."""
    return running_agent(
        unit,
        broker_url,
        data_dir,
        center_url=central.api_url,
        center_ca_file=ca_file(),
        ice=LOOPBACK_ICE,
        **agent,
    )


@contextlib.asynccontextmanager
async def unit_at_center(
    broker_url: str, unique: str, tmp_path: Path, data_dir: Path | None = None, **agent: Any
) -> AsyncIterator[UnitAtCenter]:
    """The whole center and one agent that publishes to it (loopback ICE), with `agent`
    settings on top."""
    unit = f"u-{unique}"
    async with (
        running_central(broker_url, unique, tmp_path) as central,
        agent_of(central, unit, broker_url, data_dir or tmp_path / "agent", **agent) as running,
        api_client(central) as http,
    ):
        yield UnitAtCenter(central, running, http, unit)


@contextlib.asynccontextmanager
async def streaming_unit(
    broker_url: str, unique: str, tmp_path: Path, **video: Any
) -> AsyncIterator[StreamingUnit]:
    async with unit_at_center(
        broker_url, unique, tmp_path, video={"width": 320, "height": 240, **video}
    ) as at:
        fleet = at.central.fleet
        assert fleet is not None
        await wait_for(lambda: (r := fleet.registry.get(at.unit_id)) and r.online, timeout=15)
        response = await at.http.post(f"/api/v1/units/{at.unit_id}/stream", json={"reason": "test"})
        assert response.status_code == 200, response.text
        yield StreamingUnit(at.central, at.agent, at.http, response.json())

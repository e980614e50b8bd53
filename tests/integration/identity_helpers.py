"""A center with its own supervised mTLS broker, and gateways enrolled with it through the
real enrollment route (the code -> keys -> certificate path a tech's command takes)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agent.enroll import Enrollment, enroll
from agent.service import Agent
from central.config import CentralSettings
from central.db.audit import Audit, AuditQuery
from central.db.audit_chain import AuditEntry
from central.people import Operator
from central.service import Central
from runtime.config import TlsFiles, load_settings
from tests.center_tls import ca_file, https_settings
from tests.helpers import FAST_MQTT, running_agent
from tests.integration.center_helpers import LOOPBACK_ICE

TECH = Operator("tech-1", "tech")


@contextlib.asynccontextmanager
async def center_with_own_broker(
    unique: str, tmp_path: Path, **extra: Any
) -> AsyncIterator[Central]:
    """The whole center, its broker speaking mutual TLS (the default), `extra` settings on top
    (e.g. provision={"cert_days": 1})."""
    settings = load_settings(
        CentralSettings,
        center_id=f"c-{unique}",
        mqtt=FAST_MQTT,
        data_dir=tmp_path / "center",
        http=https_settings(0),
        relay={"workers": 1, "ice": LOOPBACK_ICE},
        **extra,
    )
    central = Central(settings)
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


async def enroll_gateway(central: Central, unit_id: str, folder: Path) -> Enrollment:
    """A code made for `unit_id`, then `rtcc provision enroll` with it into `folder`."""
    assert central.provisioning is not None
    code = central.provisioning.create_code(TECH, unit_id)
    return await asyncio.to_thread(enroll, central.api_url, code, folder, ca_file(), io.StringIO())


def gateway_tls(enrolled: Enrollment) -> TlsFiles:
    files = enrolled.files
    return TlsFiles(ca_file=files.device_ca, cert_file=files.tls_cert, key_file=files.tls_key)


@contextlib.asynccontextmanager
async def enrolled_agent(
    central: Central, enrolled: Enrollment, folder: Path, **extra: Any
) -> AsyncIterator[Agent]:
    """The agent of the gateway enrolled into `folder`: on the center's broker with the
    certificate it was issued, reaching the center's API over HTTPS; `extra` settings on top."""
    async with running_agent(
        enrolled.unit_id,
        central.mqtt_url,
        folder,
        mqtt={**FAST_MQTT, "tls": gateway_tls(enrolled).model_dump()},
        center_url=central.api_url,
        center_ca_file=ca_file(),
        ice=LOOPBACK_ICE,
        **extra,
    ) as agent:
        yield agent


def audited(central: Central, action: str, unit_id: str) -> list[AuditEntry]:
    assert central.database is not None
    with central.database.read() as tx:
        page = Audit(tx).query(AuditQuery(limit=1000, newest_first=False))
    return [r.entry for r in page.records if r.entry.action == action and r.entry.object == unit_id]

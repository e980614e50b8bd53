"""`rtcc relay-worker`: one media process of the relay (aiortc's receive hook is
process-wide, and one Python process tops out near one core)."""

from __future__ import annotations

import asyncio

import structlog
import uvicorn
from pydantic import Field

from central.config import TokenKeys
from central.relay import dtls, passthrough
from central.relay.api import create_relay_app
from central.relay.recent import RecentLimits
from central.relay.session import Relay
from runtime import consent
from runtime.config import CommonSettings, IceSettings, Section
from runtime.http import EmbeddedServer
from runtime.webrtc import apply_ice

log = structlog.get_logger("rtcc.relay.worker")


class WorkerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65_535)
    index: int = Field(default=0, ge=0)


class RelayWorkerSettings(CommonSettings):
    worker: WorkerSettings = WorkerSettings()
    media_timeout_s: float = Field(
        default=3.0, gt=0, le=60, description="A publisher silent this long is dropped."
    )
    viewer_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="A viewer sending no RTCP this long is dropped."
    )
    tokens: TokenKeys = TokenKeys()
    ice: IceSettings = IceSettings()
    # Rewind: the center's relay.rewind_* settings, handed down by the worker pool.
    rewind_s: float = Field(default=300.0, ge=0, le=3600)
    rewind_max_bytes: int = Field(default=64 * 2**20, gt=0)
    rewind_worker_max_bytes: int = Field(default=512 * 2**20, gt=0)


async def run_until(stop: asyncio.Event, settings: RelayWorkerSettings) -> None:
    passthrough.install()
    dtls.install()
    consent.install()
    hosts = settings.ice.host_addresses
    loopback = hosts is not None and all(h.startswith("127.") or h == "::1" for h in hosts)
    relay = Relay(
        apply_ice(settings.ice),
        loopback_only=loopback,
        media_timeout_s=settings.media_timeout_s,
        viewer_timeout_s=settings.viewer_timeout_s,
        recent=RecentLimits(
            settings.rewind_s, settings.rewind_max_bytes, settings.rewind_worker_max_bytes
        ),
    )
    app = create_relay_app(relay, settings.tokens.signer())
    server = EmbeddedServer(
        uvicorn.Config(
            app,
            host=settings.worker.host,
            port=settings.worker.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    watchdog = asyncio.create_task(relay.watch(), name="relay-watchdog")
    log.info("relay_worker_started", index=settings.worker.index, port=settings.worker.port)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
        await relay.close()
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        log.info("relay_worker_stopped", index=settings.worker.index)

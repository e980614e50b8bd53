"""`rtcc central`: the supervised broker (unless an external one is configured), the fleet
service and the HTTP API in one process."""

from __future__ import annotations

import asyncio
import base64
import gc
import secrets
import socket
from collections.abc import Callable

import structlog
import uvicorn

from central.alerts import AlertDesk, add_alert_routes
from central.api import create_app
from central.broker import MosquittoOptions, MosquittoProcess
from central.config import CentralSettings, TokenKeys
from central.evidence.api import add_evidence_routes
from central.evidence.store import EvidenceStore
from central.fleet import FleetService
from central.metrics import Metrics
from central.relay.pool import WorkerPool
from central.streams import StreamService, add_stream_routes
from runtime.http import EmbeddedServer
from runtime.supervise import TaskGroup

log = structlog.get_logger("rtcc.central")


class Central:
    def __init__(self, settings: CentralSettings) -> None:
        self.settings = settings
        self.broker: MosquittoProcess | None = None
        self.fleet: FleetService | None = None
        self.pool: WorkerPool | None = None
        self.streams: StreamService | None = None
        self.alerts: AlertDesk | None = None
        self.evidence: EvidenceStore | None = None
        self.api_url = ""
        self._server: EmbeddedServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._tasks = TaskGroup()

    async def start(self) -> None:
        settings = self.settings
        mqtt_url = settings.mqtt_url
        if mqtt_url is None:
            self.broker = MosquittoProcess(
                settings.data_dir / "broker",
                MosquittoOptions(host=settings.broker.host, port=settings.broker.port),
            )
            await asyncio.to_thread(self.broker.start)
            self._tasks.spawn("broker", self.broker.supervise, supervise=False)
            mqtt_url = self.broker.url
            log.info("broker_started", url=mqtt_url, data_dir=str(self.broker.data_dir))
        self.fleet = FleetService(settings, Metrics(), mqtt_url)
        self._tasks.spawn("fleet", self.fleet.run, supervise=False)
        keys, current = settings.tokens.keys, settings.tokens.current
        if not keys:
            keys, current = {"k1": base64.b64encode(secrets.token_bytes(32)).decode()}, "k1"
        signer = TokenKeys(keys=keys, current=current).signer()
        relay = settings.relay
        self.pool = WorkerPool(
            relay.workers, keys, current, relay.ice, settings.log.level, settings.log.format
        )
        self._tasks.spawn("relay-workers", self.pool.run, supervise=False)
        await self.pool.wait_ready()
        self.streams = StreamService(
            self.fleet, self.pool, signer, relay, lambda: relay.public_url or self.api_url
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.http.host, settings.http.port))
        host, port = sock.getsockname()[:2]
        self.api_url = f"http://{host}:{port}"
        self.alerts = AlertDesk(self.fleet, self.streams)
        app = create_app(self.fleet)
        add_stream_routes(app, self.streams)
        add_alert_routes(app, self.alerts)
        self.evidence = EvidenceStore(settings.data_dir / "evidence")
        add_evidence_routes(app, self.evidence)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        server = self._server = EmbeddedServer(config)
        self._http_task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        while not server.started:
            if self._http_task.done():
                self._http_task.result()
                raise RuntimeError("HTTP server exited during start")
            await asyncio.sleep(0.02)
        # Start-up objects live for good: keep full collections from walking them again.
        gc.collect()
        gc.freeze()
        log.info("central_started", api=self.api_url, mqtt=mqtt_url)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        assert self.fleet is not None
        await asyncio.wait_for(self.fleet.link.connected.wait(), timeout)

    async def stop(self) -> None:
        if self._server is not None and self._http_task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._http_task, 5.0)
            except TimeoutError:
                log.warning("http_shutdown_timeout")
        if self.alerts is not None:
            await self.alerts.close()
        if self.streams is not None:
            await self.streams.close()
        if self.fleet is not None:
            self.fleet.commands.close_all()
            await self.fleet.link.close(final=[self.fleet.goodbye()])
        await self._tasks.close()
        if self.evidence is not None:
            self.evidence.close()
        log.info("central_stopped")


async def run_until(
    stop: asyncio.Event,
    settings: CentralSettings,
    on_ready: Callable[[Central], None] | None = None,
) -> None:
    central = Central(settings)
    try:
        await central.start()
        if on_ready is not None:
            on_ready(central)
        await stop.wait()
    finally:
        await central.stop()

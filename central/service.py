"""`rtcc central`: the supervised broker (unless an external one is configured), the fleet
service and the HTTP API in one process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import structlog
import uvicorn
from fastapi import FastAPI

from central.access_routes import add_access_routes
from central.alert_rules import Thresholds
from central.alerts import AlertDesk
from central.api import create_app
from central.broker import MosquittoProcess
from central.center_broker import CenterBroker
from central.config import CentralSettings, TokenKeys
from central.console_hub import ConsoleHub
from central.console_routes import add_console_routes
from central.db.anchors import ANCHOR_FILE, AnchorFile
from central.db.devices import Devices
from central.db.engine import Database
from central.db.schema import open_migrated
from central.device_watch import DeviceWatch
from central.errors import NotFound
from central.evidence.api import add_evidence_routes
from central.evidence.store import EvidenceStore
from central.fleet import FleetService
from central.gate import Gate
from central.media_routes import add_media_routes
from central.metrics import Metrics
from central.nearby_response import NearbyResponse
from central.provision_routes import add_provision_routes
from central.provisioning import Provisioning
from central.reconcile import Reconciler
from central.relay_front import RelayFront
from central.rewind_routes import add_rewind_routes
from central.share_routes import add_share_routes, add_still_routes
from central.shares import ShareService
from central.sign_in import SignInService
from central.stream_routes import add_stream_routes
from central.streams import StreamService
from central.tls import CenterCa, ServerFiles, server_hosts
from central.viewers import ViewerAccess
from runtime.config import ConfigError
from runtime.files import write_atomic
from runtime.http import EmbeddedServer
from runtime.supervise import TaskGroup

log = structlog.get_logger("rtcc.central")
ANCHOR_EVERY_S = 10.0


def swagger_dir() -> Path | None:
    """Swagger UI as `make setup` installs it (npm, pinned by package-lock.json)."""
    found = Path(__file__).resolve().parents[1] / "node_modules" / "swagger-ui-dist"
    return found if (found / "swagger-ui-bundle.js").is_file() else None


class ApiServer(EmbeddedServer):
    """Says when it accepts connections, rather than being asked until it does."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._started = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._started.set()

    async def wait_started(self, serving: asyncio.Task[None]) -> None:
        """Until it accepts connections; raises what ended `serving` if that came first."""
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({started, serving}, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            serving.result()
            raise RuntimeError("HTTP server exited during start")


class Central:
    def __init__(self, settings: CentralSettings) -> None:
        self.settings = settings
        self.broker: MosquittoProcess | None = None
        self.center_broker: CenterBroker | None = None
        self.devices: DeviceWatch | None = None
        self.provisioning: Provisioning | None = None
        self.fleet: FleetService | None = None
        self.relay: RelayFront | None = None
        self.streams: StreamService | None = None
        self.reconciler: Reconciler | None = None
        self.alerts: AlertDesk | None = None
        self.hub: ConsoleHub | None = None
        self.shares: ShareService | None = None
        self.nearby: NearbyResponse | None = None
        self.evidence: EvidenceStore | None = None
        self.database: Database | None = None
        self.gate: Gate | None = None
        self.viewers: ViewerAccess | None = None
        self.api_url = ""
        self.mqtt_url = ""
        self.ca_file: Path | None = None  # the center's own CA, when it made its certificate
        self._server: EmbeddedServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._tasks = TaskGroup()

    async def start(self) -> None:
        settings = self.settings
        database = self.database = await asyncio.to_thread(open_migrated, settings.database())
        anchors = AnchorFile(settings.data_dir / ANCHOR_FILE)
        self.gate = Gate(database, settings.access, anchors)
        self._tasks.spawn("audit-anchor", self._anchor_every_while)
        self._tasks.spawn("session-use", self.gate.keep_sessions_current)
        provisioning = self.provisioning = Provisioning(
            database, settings.data_dir, settings.provision
        )
        devices = self.devices = DeviceWatch(provisioning)
        mqtt_url, fleet_settings = settings.mqtt_url, settings
        if mqtt_url is None:
            self.center_broker = CenterBroker(settings, provisioning, devices)
            mqtt_url, fleet_settings = await self.center_broker.start(self._tasks)
            self.broker = self.center_broker.process
        else:
            await asyncio.to_thread(devices.load)
        self._tasks.spawn("device-watch", devices.run)
        self.mqtt_url = mqtt_url
        self.fleet = FleetService(fleet_settings, Metrics(), mqtt_url)
        self.fleet.shut_out = self._shut_out
        self._tasks.spawn("fleet", self.fleet.run, supervise=False)
        tokens = settings.tokens if settings.tokens.keys else kept_token_keys(settings.data_dir)
        relay = settings.relay
        self.relay = RelayFront(relay, tokens, settings.log)
        self._tasks.spawn("relay-workers", self.relay.run, supervise=False)
        await self.relay.wait_ready()
        self.reconciler = Reconciler(
            self.fleet, self.relay, relay, settings.data_dir / "streams.json"
        )
        self._tasks.spawn("reconcile", self.reconciler.run)
        self.streams = StreamService(
            self.fleet,
            relay,
            lambda: relay.public_url or self.api_url,
            self.reconciler,
        )
        if self.center_broker is not None:
            self.center_broker.keep_in_line(self._tasks, self._unit_shut_out, self.fleet.link)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.http.host, settings.http.port))
        host, port = sock.getsockname()[:2]
        https = await asyncio.to_thread(self._https_files)
        self.api_url = f"{'https' if https else 'http'}://{host}:{port}"
        gate = self.gate
        self.viewers = ViewerAccess(gate, self.relay, relay.viewer_token_ttl_s)
        self._tasks.spawn("viewer-access", self.viewers.run)
        await self._start_console(database)
        app = self._app(database)
        trusted = settings.http.trusted_proxies
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ssl_certfile=https.cert_file if https else None,
            ssl_keyfile=https.key_file if https else None,
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted or None,
        )
        server = self._server = ApiServer(config)
        self._http_task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        await server.wait_started(self._http_task)
        # Start-up objects live for good: keep full collections from walking them again.
        gc.collect()
        gc.freeze()
        log.info("central_started", api=self.api_url, mqtt=mqtt_url)

    def _shut_out(self, unit_id: str) -> bool:
        return self.devices is not None and self.devices.shut_out(unit_id)

    async def _devices_changed(self) -> bool:
        """A device record was just committed here: the center's refusals follow it at once;
        whether the broker was brought in line too (in time)."""
        assert self.devices is not None
        await self.devices.check()
        access = self.center_broker.access if self.center_broker is not None else None
        return await access.refresh() if access is not None else True

    async def _unit_shut_out(self, unit_id: str) -> None:
        """A unit revoked (not replaced): offline, its live stream ended, not asked back."""
        assert self.streams is not None and self.fleet is not None
        self.fleet.unit_shut_out(unit_id)
        with contextlib.suppress(NotFound):
            await self.streams.stop(unit_id)

    def _app(self, database: Database) -> FastAPI:
        assert self.fleet and self.relay and self.streams and self.gate and self.viewers
        assert self.hub and self.alerts and self.shares
        settings, gate = self.settings, self.gate
        app = create_app(self.fleet, gate)
        add_access_routes(app, gate, SignInService(database, settings.access), swagger_dir())
        add_media_routes(app, self.relay, self.streams, self.viewers, gate, self._shut_out)
        add_stream_routes(app, self.streams, self.viewers, gate)
        add_console_routes(app, self.hub, self.alerts, gate, settings.console)
        add_still_routes(app, self.relay, self.hub, gate)
        add_share_routes(app, self.shares, gate)

        def registered_key(unit_id: str) -> str | None:
            with database.read() as tx:
                return Devices(tx).evidence_key(unit_id)

        self.evidence = EvidenceStore(
            settings.data_dir / "evidence",
            registered_key,
            self._shut_out,
        )
        add_evidence_routes(app, self.evidence, gate)
        add_rewind_routes(app, self.relay, self.hub, self.evidence, gate, settings.relay)
        provision = settings.provision
        assert self.provisioning is not None

        def enrolled_urls() -> tuple[str, str]:
            center = provision.center_url or settings.relay.public_url or self.api_url
            return provision.broker_url or self.mqtt_url, center

        add_provision_routes(
            app, self.provisioning, gate, self.fleet, enrolled_urls, self._devices_changed
        )
        return app

    async def _start_console(self, database: Database) -> None:
        """The pages' live picture, alerts, shares and what happens near a trigger."""
        assert self.fleet and self.streams and self.gate and self.viewers
        console = self.settings.console
        streams = self.streams
        hub = self.hub = ConsoleHub(
            self.fleet, streams, database, console.page_queue, console.feed_history
        )
        self._tasks.spawn("console-hub", hub.run)
        thresholds = Thresholds(console.battery_critical_pct, console.storage_critical_pct)
        self.alerts = AlertDesk(self.fleet, streams, hub, self.gate, thresholds)
        self.shares = ShareService(
            hub, self.gate, self.viewers, console, lambda sid: streams.grant_urls(sid, "")[0]
        )
        self._tasks.spawn("shares", self.shares.run)
        self.nearby = NearbyResponse(self.fleet, self.alerts, self.shares, self.gate, console)
        await self.alerts.load()

    def _https_files(self) -> ServerFiles | None:
        """The certificate to serve, or None for plain HTTP (explicitly asked for)."""
        http = self.settings.http
        if not http.tls:
            log.warning("plain_http", detail="serving HTTP without TLS, as configured")
            return None
        if http.cert_file is not None and http.key_file is not None:
            return ServerFiles(http.cert_file, http.key_file, None)
        public = self.settings.relay.public_url
        hosts = server_hosts(http.host, urlsplit(public).hostname if public else None)
        files = CenterCa(self.settings.data_dir / "tls").server_files(hosts)
        self.ca_file = files.ca_file
        return files

    async def wait_connected(self, timeout: float = 10.0) -> None:
        assert self.fleet is not None
        await asyncio.wait_for(self.fleet.link.connected.wait(), timeout)

    async def stop(self) -> None:
        if self.relay is not None:
            await self.relay.hold.close()  # held viewers are answered before the server waits
        if self._server is not None and self._http_task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._http_task, 5.0)
            except TimeoutError:
                log.warning("http_shutdown_timeout")
        await self._stop_console()
        if self.reconciler is not None:
            await self._tasks.cancel("reconcile")
            await self.reconciler.close()
        if self.relay is not None:
            await self.relay.close()
        if self.fleet is not None:
            self.fleet.commands.close_all()
            await self.fleet.link.close(final=[self.fleet.goodbye()])
        await self._tasks.close()
        if self.evidence is not None:
            self.evidence.close()
        if self.gate is not None:
            await asyncio.to_thread(self.gate.flush_touches)
            await asyncio.to_thread(self.gate.anchor)
        if self.database is not None:
            self.database.close()
        log.info("central_stopped")

    async def _stop_console(self) -> None:
        if self.nearby is not None:
            await self.nearby.close()
        if self.alerts is not None:
            await self.alerts.close()

    async def _anchor_every_while(self) -> None:
        """The audit chain's head goes to the anchor file every ANCHOR_EVERY_S."""
        assert self.gate is not None
        while True:
            await asyncio.sleep(ANCHOR_EVERY_S)
            await asyncio.to_thread(self.gate.anchor)


def kept_token_keys(data_dir: Path) -> TokenKeys:
    """The center's own stream token key: made once, readable by this user only."""
    path = data_dir / "token-keys.json"
    try:
        return TokenKeys.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        pass
    except ValueError as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); restore it or remove it") from None
    keys = TokenKeys(keys={"k1": base64.b64encode(secrets.token_bytes(32)).decode()}, current="k1")
    write_atomic(path, keys.model_dump_json().encode(), mode=0o600)
    return keys


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

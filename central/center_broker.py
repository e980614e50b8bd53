"""The center's own Mosquitto, when no external broker is configured: mutual TLS with
per-unit rights kept in line with the device records and read-only rights for the
configured monitors (the default), or a plain listener for development when asked for."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from central.broker import MosquittoOptions, MosquittoProcess
from central.broker_access import BrokerAccess, CenterHooks
from central.broker_admin import BrokerAdmin
from central.broker_security import BrokerTls
from central.config import CentralSettings
from central.db.devices import DeviceStanding
from central.device_ca import KeyPair, admin_identity, center_identity, monitor_identity
from central.device_watch import DeviceWatch
from central.provisioning import Provisioning
from runtime.config import BrokerUrl, TlsFiles
from runtime.mqtt import MqttLink
from runtime.supervise import TaskGroup

log = structlog.get_logger("rtcc.center_broker")


@dataclasses.dataclass(frozen=True, slots=True)
class _Files:
    tls: BrokerTls
    fleet: TlsFiles
    admin: TlsFiles


class CenterBroker:
    def __init__(
        self, settings: CentralSettings, provisioning: Provisioning, devices: DeviceWatch
    ) -> None:
        self.settings = settings
        self._provisioning = provisioning
        self._devices = devices
        self.process: MosquittoProcess | None = None
        self.access: BrokerAccess | None = None
        self._admin: BrokerAdmin | None = None
        self._applied: DeviceStanding | None = None

    async def start(self, tasks: TaskGroup) -> tuple[str, CentralSettings]:
        """Starts and supervises the broker: its URL, and the settings the fleet service
        connects with (its own certificate under mutual TLS)."""
        settings = self.settings
        options = MosquittoOptions(host=settings.broker.host, port=settings.broker.port)
        fleet_settings = settings
        files = None
        if settings.broker.mtls:
            files = await asyncio.to_thread(self._files)
            options = dataclasses.replace(options, tls=files.tls)
            fleet_settings = _with_mqtt_tls(settings, files.fleet)
        else:
            log.warning("broker_open", detail="plain MQTT, no client certificates, as configured")
        process = self.process = MosquittoProcess(settings.data_dir / "broker", options)
        await asyncio.to_thread(process.start)
        tasks.spawn("broker", process.supervise, supervise=False)
        if files is not None:
            admin = _with_mqtt_tls(settings, files.admin).mqtt
            identity = admin_identity(settings.center_id)
            self._admin = BrokerAdmin(identity, BrokerUrl.parse(process.url), admin)
        log.info("broker_started", url=process.url, data_dir=str(process.data_dir))
        return process.url, fleet_settings

    def keep_in_line(
        self,
        tasks: TaskGroup,
        unit_revoked: Callable[[str], Awaitable[None]],
        fleet_link: MqttLink,
    ) -> None:
        """Under mutual TLS, starts keeping the broker's rights in line with the device
        records (once the center can act on a revoked unit: `unit_revoked`)."""
        if self._admin is None or self.process is None or self._applied is None:
            return
        admin = self._admin

        def reconnect() -> None:
            fleet_link.reconnect("certificate renewed")
            admin.link.reconnect("certificate renewed")

        hooks = CenterHooks(unit_revoked, self.renew_certificates, reconnect)
        self.access = BrokerAccess(
            self._devices, self._provisioning, self.process, admin, self._applied, hooks
        )
        tasks.spawn("broker-access", self.access.run)

    def _files(self) -> _Files:
        """The broker's certificate and the center's two (kept while good, made when not),
        the records and then the CRL made from them, for the broker's first configuration
        (blocking)."""
        settings, ca = self.settings, self._provisioning.ca
        now = dt.datetime.now(dt.UTC)
        server = ca.broker_files(self._hosts(), now)
        fleet = ca.center_files(settings.center_id, now)
        admin = ca.center_files(settings.center_id, now, admin=True)
        # Records first: a revocation committed after this read is new to BrokerAccess.
        applied = self._applied = self._devices.load()
        self._provisioning.write_crl()
        tls = BrokerTls(
            ca_file=ca.ca_file,
            cert_file=server.cert_file,
            key_file=server.key_file,
            crl_file=ca.crl_file,
            center_identity=center_identity(settings.center_id),
            center_id=settings.center_id,
            admin_identity=admin_identity(settings.center_id),
            units=tuple(sorted(applied.enrolled)),
            monitors=tuple(monitor_identity(name) for name in settings.broker.monitors),
        )
        return _Files(tls, _files(ca.ca_file, fleet), _files(ca.ca_file, admin))

    def renew_certificates(self) -> bool:
        """Issues the broker's and the center's certificates again when near their end
        (blocking); whether any changed."""
        ca, center_id = self._provisioning.ca, self.settings.center_id
        now = dt.datetime.now(dt.UTC)
        paths = [ca.folder / f"{stem}.pem" for stem in ("broker", "center", "center-admin")]
        before = [_read(p) for p in paths]
        ca.broker_files(self._hosts(), now)
        ca.center_files(center_id, now)
        ca.center_files(center_id, now, admin=True)
        return [_read(p) for p in paths] != before

    def _hosts(self) -> list[str]:
        return self.settings.broker.names or [self.settings.broker.host]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _files(ca_file: Path, pair: KeyPair) -> TlsFiles:
    return TlsFiles(ca_file=ca_file, cert_file=pair.cert_file, key_file=pair.key_file)


def _with_mqtt_tls(settings: CentralSettings, files: TlsFiles) -> CentralSettings:
    mqtt = settings.mqtt.model_copy(update={"tls": files})
    return settings.model_copy(update={"mqtt": mqtt})

"""Center configuration (env RTCC_..., optional TOML file)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from central.access.settings import AccessSettings
from central.console_settings import ConsoleSettings
from central.db.engine import default_url, parse_url
from central.provision_settings import ProvisionSettings
from protocol.tokens import TokenSigner
from protocol.topics import check_id
from runtime.config import CommonSettings, IceSettings, Section


class HttpSettings(Section):
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8080, ge=0, le=65_535, description="0 picks a free port.")
    tls: bool = Field(
        default=True,
        description="Serve HTTPS; plain HTTP only behind a TLS-terminating proxy.",
    )
    cert_file: Path | None = Field(
        default=None,
        description="The department's server certificate (PEM, chain included); default: "
        "one from the center's own CA in {data_dir}/tls.",
    )
    key_file: Path | None = Field(default=None, description="Its private key (PEM).")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses whose X-Forwarded-For/-Proto are believed (a TLS proxy).",
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> HttpSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both http.cert_file and http.key_file, or neither")
        if "*" in self.trusted_proxies:
            raise ValueError("name the proxies' addresses: '*' would believe any client")
        return self


class BrokerSettings(Section):
    """The supervised Mosquitto child, used when RTCC_MQTT_URL is not set."""

    host: str = Field(default="127.0.0.1", description="Listener address of the child broker.")
    port: int = Field(default=0, ge=0, le=65_535, description="0 picks a free port.")
    mtls: bool = Field(
        default=True,
        description="Mutual TLS: each unit connects with the certificate it enrolled for and "
        "reaches only its own topics; the center with its own. false: a plain listener "
        "anyone may use, for development only.",
    )
    names: list[str] = Field(
        default_factory=list,
        description="Host names and addresses units reach the broker by, for its "
        "certificate (default: the listener address).",
    )
    monitors: list[str] = Field(
        default_factory=list,
        description="Monitoring tools that may read every unit's presence, state, events "
        "and command results on the broker, and do nothing else: each name (unit-id "
        "syntax) is the broker identity rtcc.monitor.<name>, whose certificate "
        "`rtcc provision monitor NAME` issues. A name left out loses its rights at the "
        "next start.",
    )

    @field_validator("monitors")
    @classmethod
    def _check_monitors(cls, names: list[str]) -> list[str]:
        for name in names:
            check_id(name)
        if len(set(names)) != len(names):
            raise ValueError("a monitor is named twice")
        return names


class FleetSettings(Section):
    partition_index: int = Field(default=0, ge=0)
    partition_count: int = Field(
        default=1, ge=1, le=1024, description="Fleet processes sharing the units by hash."
    )
    command_ttl_s: float = Field(
        default=30.0, gt=0, le=3600, description="Commands expire this long after sending."
    )
    rebirth_ttl_s: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _index_in_range(self) -> FleetSettings:
        if self.partition_index >= self.partition_count:
            raise ValueError("partition_index must be below partition_count")
        return self


class TokenKeys(Section):
    """Stream token keys: key id -> base64 secret (>= 32 bytes); `current` signs, all
    verify. Empty: a random key made once and kept in the center's data directory, so the
    tokens of units and viewers outlive a restart of the center."""

    keys: dict[str, str] = Field(default_factory=dict)
    current: str = "k1"

    def signer(self) -> TokenSigner:
        keys = {kid: base64.b64decode(secret) for kid, secret in self.keys.items()}
        return TokenSigner(keys, self.current)


class RelaySettings(Section):
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=64,
        description="Relay media processes (one per core).",
    )
    ice: IceSettings = IceSettings()
    viewer_hold_s: float = Field(
        default=4.0,
        ge=0,
        le=60,
        description="Soon after the center or a relay worker started, how long a viewer's join "
        "waits for the publisher of a stream the center wants before it is answered 404; "
        "keep it under the time clients give a request.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL agents and browsers reach the center at "
        "(default: the API's own address).",
    )
    whip_token_ttl_s: float = Field(default=3600.0, gt=0, le=86_400)
    viewer_token_ttl_s: float = Field(
        default=3600.0,
        gt=0,
        le=86_400,
        description="A viewer token also lets a page rejoin by itself: keep it as long as "
        "streams last.",
    )
    start_timeout_s: float = Field(default=10.0, gt=0, le=120)
    stream_duration_s: float = Field(
        default=3600.0,
        gt=0,
        le=86_400,
        description="How long a remote start or an alert keeps a unit's stream live unless "
        "stopped; the center restarts it whenever its media stops within that time.",
    )
    media_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="A publisher whose media stops this long is dropped at the relay (and "
        "asked back).",
    )
    rewind_s: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="Rewind: the last this many seconds of every live stream are kept at its "
        "relay worker, as the camera sent them (0: off; older video comes from evidence).",
    )
    rewind_max_bytes: int = Field(
        default=64 * 2**20,
        gt=0,
        description="At most this much memory per stream for rewind: past it, the oldest "
        "seconds go first.",
    )
    rewind_worker_max_bytes: int = Field(
        default=512 * 2**20,
        gt=0,
        description="At most this much memory for rewind over all the streams of one relay "
        "worker: past it, the stream holding most gives up its oldest seconds.",
    )
    rewind_cache_bytes: int = Field(
        default=256 * 2**20,
        ge=0,
        description="Rewind clips kept at the center while a player asks for parts of them "
        "(HTTP ranges), over all clips.",
    )


class CentralSettings(CommonSettings):
    center_id: Annotated[str, AfterValidator(check_id)] = Field(
        default="rtcc-1", description="This center's id (status topic, client ids)."
    )
    data_dir: Path = Field(default=Path("/var/lib/rtcc-central"))
    http: HttpSettings = HttpSettings()
    broker: BrokerSettings = BrokerSettings()
    fleet: FleetSettings = FleetSettings()
    relay: RelaySettings = RelaySettings()
    tokens: TokenKeys = TokenKeys()
    access: AccessSettings = AccessSettings()
    console: ConsoleSettings = ConsoleSettings()
    provision: ProvisionSettings = ProvisionSettings()
    database_url: str | None = Field(
        default=None,
        description="The center's database: postgresql://user:password@host/db for a center "
        "of several processes or hosts; default: the SQLite file {data_dir}/center.db.",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_url(value)
        return value

    def database(self) -> str:
        """The database URL to open: RTCC_DATABASE_URL, or the SQLite file in data_dir."""
        return self.database_url or default_url(self.data_dir)

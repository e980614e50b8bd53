"""Configuration shared by agent and center: pydantic-settings, env prefix RTCC_, optional TOML.

Precedence: environment (RTCC_..., nested with "__") over the config file over defaults.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from runtime.logs import LogFormat


class ConfigError(Exception):
    """Configuration is unusable; the message names the field and its environment variable."""


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    scheme: Literal["mqtt", "mqtts"]
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> BrokerUrl:
        parts = urlsplit(text.strip())
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(
                f"broker URL must look like mqtt://host:port or mqtts://host: {text!r}"
            )
        if parts.username or parts.password or parts.path not in ("", "/"):
            raise ValueError(f"broker URL takes no credentials or path: {parts.hostname!r}")
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        return cls(parts.scheme, parts.hostname, port)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_broker_urls(text: str) -> list[BrokerUrl]:
    urls = [BrokerUrl.parse(part) for part in text.split(",") if part.strip()]
    if not urls:
        raise ValueError("no broker URL given")
    return urls


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsFiles(Section):
    ca_file: Path | None = Field(default=None, description="CA bundle that signed the broker.")
    cert_file: Path | None = Field(default=None, description="This client's certificate (PEM).")
    key_file: Path | None = Field(default=None, description="This client's private key (PEM).")


class MqttTuning(Section):
    protocol: Literal["5", "3.1.1"] = Field(
        default="5", description="MQTT 5, or 3.1.1 for brokers such as NATS that lack 5."
    )
    keepalive_s: int = Field(default=30, ge=2, le=3600, description="MQTT keepalive.")
    session_expiry_s: int = Field(
        default=86_400, ge=0, le=2**32 - 1, description="How long the broker keeps our session."
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    reconnect_initial_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(
        default=15.0, gt=0, le=300, description="Cap of the jittered reconnect delay."
    )
    max_inflight: int = Field(default=64, ge=1, le=65_535)
    tls: TlsFiles = TlsFiles()


class IceSettings(Section):
    servers: list[str] = Field(
        default_factory=list,
        description="STUN/TURN URLs; none by default (no traffic to public servers).",
    )
    host_addresses: list[str] | None = Field(
        default=None,
        description="Host addresses ICE may offer; None = every interface. The demo and "
        "tests use 127.0.0.1 so no media leaves loopback.",
    )


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: LogFormat = "auto"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RTCC_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    mqtt_url: str | None = Field(
        default=None,
        description="Broker URL(s), comma-separated for a cluster: mqtt://host:1883,mqtts://...",
    )
    mqtt: MqttTuning = MqttTuning()
    log: LogSettings = LogSettings()

    @field_validator("mqtt_url")
    @classmethod
    def _check_urls(cls, value: str | None) -> str | None:
        if value is not None:
            parse_broker_urls(value)
        return value

    def broker_urls(self) -> list[BrokerUrl]:
        if self.mqtt_url is None:
            raise ConfigError("mqtt_url is not set (RTCC_MQTT_URL)")
        return parse_broker_urls(self.mqtt_url)


SettingsT = TypeVar("SettingsT", bound=CommonSettings)


def load_settings(
    cls: type[SettingsT], config_file: Path | None = None, **overrides: Any
) -> SettingsT:
    """Build settings from env, file and `overrides` (highest), or raise ConfigError."""
    if config_file is not None:
        try:
            tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from None
    target = cls if config_file is None else _with_toml(cls, config_file)
    try:
        return target(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _with_toml(cls: type[SettingsT], path: Path) -> type[SettingsT]:
    class FromFile(cls):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            toml = TomlConfigSettingsSource(settings_cls, toml_file=path)
            return (init_settings, env_settings, toml, file_secret_settings)

    FromFile.__name__ = cls.__name__
    return FromFile


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        env = "RTCC_" + "__".join(loc).upper()
        lines.append(f"{'.'.join(loc) or '(root)'}: {err['msg']} (env {env})")
    return "invalid configuration:\n  " + "\n  ".join(lines)

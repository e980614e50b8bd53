"""Agent configuration (env RTCC_..., optional TOML file)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from agent.triggers import DEFAULT_RULES, TriggerRule
from firmware_bridge.link.transport import BAUD_RATES
from protocol import RuntimeConfig
from protocol.topics import check_id
from runtime.config import CommonSettings, IceSettings, MqttTuning, Section, parse_broker_urls


class SimSettings(Section):
    """The simulated body-cam and vehicle (the real bridge comes with the hardware)."""

    lat: float = Field(default=40.7128, ge=-90, le=90, description="Centre of the patrol area.")
    lon: float = Field(default=-74.0060, ge=-180, le=180)
    radius_m: float = Field(default=800.0, gt=0, le=50_000)
    speed_mps: float = Field(default=9.0, ge=0, le=60)
    event_interval_s: float = Field(
        default=120.0, ge=0, description="Mean time between simulated events; 0 = none."
    )
    seed: int | None = Field(default=None, description="Defaults to a hash of the unit id.")


class VehicleSettings(Section):
    """Where the unit's position comes from: the simulator (a unit driving circles, see
    `sim`) or gpsd on a real gateway. Without a GPS or a fix the unit's state says so."""

    source: Literal["simulator", "gpsd"] = "simulator"
    gpsd_host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    gpsd_port: int = Field(default=2947, ge=1, le=65535)
    fix_stale_s: float = Field(
        default=5.0, gt=0, le=300, description="A fix not renewed this long is no fix."
    )


class StreamSettings(Section):
    """Live publishing over a failing or thin uplink."""

    watchdog_s: float = Field(
        default=3.0,
        ge=1.0,
        le=60.0,
        description="No RTCP from the relay this long while connected: rebuild the session.",
    )
    adapt: bool = Field(
        default=True,
        description="Step video down (bitrate, substream, keyframes only) on a thin uplink.",
    )
    min_bitrate: int = Field(
        default=64_000,
        ge=16_000,
        le=20_000_000,
        description="Lowest bitrate asked of an encoding source before the next step down.",
    )
    media_dscp: int = Field(
        default=18,
        ge=0,
        le=63,
        description="DiffServ code point of the media socket (AF21, below MQTT's AF31).",
    )


class VideoSettings(Section):
    """The body-cam video: the simulator's test pattern, a file, an RTSP camera or a V4L2 /
    UVC device that encodes H.264."""

    source: Literal["simulator", "file", "rtsp", "v4l2"] = "simulator"
    file: Path | None = Field(default=None, description="H.264/VP8 file for source=file.")
    url: str | None = Field(default=None, description="rtsp://... for source=rtsp.")
    substream_url: str | None = Field(
        default=None,
        description="rtsp://... low-rate substream of the same camera, for a thin uplink.",
    )
    device: str = Field(default="/dev/video0", description="Device for source=v4l2.")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    codec: Literal["h264", "vp8"] = "h264"
    width: int = Field(default=640, ge=192, le=3840)
    height: int = Field(default=480, ge=96, le=2160)
    fps: float = Field(default=30.0, ge=1, le=60)
    keyframe_interval_s: float = Field(default=2.0, gt=0, le=60)
    bitrate: int = Field(default=1_000_000, ge=100_000, le=20_000_000)
    live: StreamSettings = StreamSettings()

    @model_validator(mode="after")
    def _file_given(self) -> VideoSettings:
        if self.source == "file" and self.file is None:
            raise ValueError("video.file is required when video.source is file")
        if self.source == "rtsp" and not (self.url or "").startswith(("rtsp://", "rtsps://")):
            raise ValueError("video.url (rtsp://...) is required when video.source is rtsp")
        if self.substream_url is not None and (
            self.source != "rtsp" or not self.substream_url.startswith(("rtsp://", "rtsps://"))
        ):
            raise ValueError("video.substream_url must be rtsp://... with video.source rtsp")
        return self


class DeviceSettings(Section):
    """The body-cam link (firmware_bridge/PROTOCOL.md). Unset: no body-cam is attached and
    only the simulated vehicle reports."""

    link: str | None = Field(
        default=None, description="tcp://host:port, or a serial / USB CDC / pty device path."
    )
    baud: int = Field(default=115200, description="Serial speed (ignored for TCP and pty).")
    stale_after_s: float = Field(
        default=15.0, gt=0, le=300, description="A link silent this long is treated as lost."
    )

    @model_validator(mode="after")
    def _known(self) -> DeviceSettings:
        if self.link is not None and not self.link.startswith(("tcp://", "/")):
            raise ValueError("device.link must be tcp://host:port or a device path")
        if self.baud not in BAUD_RATES:
            raise ValueError(f"device.baud must be one of {sorted(BAUD_RATES)}")
        return self


class EvidenceSettings(Section):
    """Recording on the unit: the pre-event buffer, segments, disk bounds, upload."""

    enabled: bool = Field(
        default=True, description="Keep the camera running for the pre-event buffer and recorder."
    )
    pre_event_s: float = Field(default=30.0, ge=0, le=120)
    pre_event_max_bytes: int = Field(default=64 * 2**20, ge=2**20, le=2**30)
    segment_s: float = Field(default=10.0, ge=1, le=300)
    auto_stop_s: float = Field(
        default=600.0, gt=0, description="A recording ends this long after its last trigger."
    )
    max_bytes: int = Field(default=16 * 2**30, ge=2**20, description="Disk use cap.")
    min_free_bytes: int = Field(
        default=256 * 2**20, ge=0, description="Below this much free disk, recording pauses."
    )
    upload_chunk_bytes: int = Field(default=2**20, ge=4096, le=8 * 2**20)


class OutboxLimits(Section):
    max_rows: int = Field(default=100_000, ge=10)
    max_bytes: int = Field(default=64 * 2**20, ge=65_536)


class HealthSettings(Section):
    """The agent's own health, Prometheus text at http://host:port/metrics, and the systemd
    watchdog it keeps while its loops are healthy (when started with WatchdogSec=)."""

    port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve /metrics on this port; unset: off."
    )
    host: str = Field(
        default="127.0.0.1", min_length=1, description="Address to serve on (local only)."
    )
    stall_after_s: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="A loop that has not completed a round this long is wedged: the systemd "
        "watchdog is no longer fed.",
    )


class RenewalSettings(Section):
    """The unit renews its own certificate (mqtt.tls) at the center before it expires,
    signing the request with its enrollment's evidence key. Only with a client certificate
    and an https:// center_url."""

    enabled: bool = True
    share: float = Field(
        default=1 / 3,
        gt=0,
        le=1,
        description="Renew once less than this share of the certificate's lifetime is left.",
    )
    min_days: float = Field(
        default=30.0,
        ge=0,
        le=3650,
        description="Renew too once fewer than this many days are left (at the earliest half "
        "way through the lifetime: a short-lived certificate is not due as soon as issued).",
    )
    window_s: float = Field(
        default=600.0,
        ge=1,
        le=86_400,
        description="At most one attempt in this long; a failed one is retried after this "
        "plus a growing, jittered backoff.",
    )
    retry_max_s: float = Field(
        default=6 * 3600.0, ge=1, le=7 * 86_400, description="The backoff's ceiling."
    )


class AgentSettings(CommonSettings):
    unit_id: Annotated[str, AfterValidator(check_id)] = Field(
        description="This unit's id: the certificate CN, MQTT username and client id."
    )
    data_dir: Path = Field(
        default=Path("/var/lib/rtcc-agent"), description="Outbox and agent state live here."
    )
    poll_interval_s: float = Field(default=1.0, gt=0, le=60, description="Device poll period.")
    runtime: RuntimeConfig = Field(
        default=RuntimeConfig(), description="Initial runtime settings (config.set changes them)."
    )
    sim: SimSettings = SimSettings()
    vehicle: VehicleSettings = VehicleSettings()
    outbox: OutboxLimits = OutboxLimits()
    center_url: str | None = Field(
        default=None, description="The center's HTTPS base URL (WHIP publishing goes there)."
    )
    center_ca_file: Path | None = Field(
        default=None,
        description="The CA that signed the center's certificate (its own CA's ca.pem); "
        "default: the system's trusted CAs.",
    )

    def center_tls(self) -> ssl.SSLContext | bool:
        """How the center's HTTPS certificate is checked: always, against this CA or the
        system's."""
        if self.center_ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.center_ca_file))

    video: VideoSettings = VideoSettings()
    ice: IceSettings = IceSettings()
    device: DeviceSettings = DeviceSettings()
    evidence: EvidenceSettings = EvidenceSettings()
    health: HealthSettings = HealthSettings()
    renewal: RenewalSettings = RenewalSettings()
    triggers: list[TriggerRule] = Field(
        default=list(DEFAULT_RULES),
        description="Device event -> actions (record, stream, alert); replaces the defaults.",
    )

    @field_validator("mqtt")
    @classmethod
    def _client_certificate_over_tls_only(
        cls, mqtt: MqttTuning, info: ValidationInfo
    ) -> MqttTuning:
        """A unit that holds a client certificate is an enrolled unit: it must never fall
        back to plain MQTT, where its traffic (and the broker's trust in it) is unprotected."""
        tls, url = mqtt.tls, info.data.get("mqtt_url")
        if (tls.cert_file is None) != (tls.key_file is None):
            raise ValueError(
                "mqtt.tls needs both cert_file and key_file (a client certificate and its key),"
                " or neither"
            )
        if tls.cert_file is not None and url is not None:
            plain = [str(u) for u in parse_broker_urls(url) if u.scheme == "mqtt"]
            if plain:
                raise ValueError(
                    f"mqtt.tls.cert_file is set but mqtt_url {', '.join(plain)} is plain MQTT:"
                    " a unit with a client certificate speaks mqtts:// only"
                )
        return mqtt

"""The provisioning section of the center's settings (env RTCC_PROVISION__..., e.g.
RTCC_PROVISION__CERT_DAYS=365)."""

from __future__ import annotations

from pydantic import Field

from runtime.config import Section


class ProvisionSettings(Section):
    """RTCC_PROVISION__*: how long what the device CA issues lasts, and what enrolled
    gateways are told."""

    cert_days: float = Field(default=365.0, gt=0, le=3650, description="Unit certificates.")
    code_ttl_s: float = Field(
        default=86_400.0, gt=0, le=30 * 86_400, description="Enrollment codes, by default."
    )
    broker_url: str | None = Field(
        default=None,
        description="The broker URL gateways are given (mqtts://host:8883); default: the "
        "one the center uses.",
    )
    center_url: str | None = Field(
        default=None, description="The center URL gateways are given; default: its own."
    )
    enroll_attempts: int = Field(
        default=10, ge=1, le=1000, description="Enrollment attempts per address per window."
    )
    enroll_window_s: float = Field(default=60.0, gt=0, le=3600)

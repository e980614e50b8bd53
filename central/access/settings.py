"""The access section of the center's settings (env RTCC_ACCESS__..., e.g.
RTCC_ACCESS__SESSIONS__IDLE_LOCK_S=900 or RTCC_ACCESS__THROTTLE__ACCOUNT__LOCK_AFTER=5)."""

from __future__ import annotations

from pydantic import Field

from central.access.passwords import PasswordSettings
from central.access.sessions import SessionSettings
from central.access.throttle import ThrottleSettings
from runtime.config import Section


class AccessSettings(Section):
    passwords: PasswordSettings = PasswordSettings()
    sessions: SessionSettings = SessionSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    audit_retention_days: float | None = Field(
        default=None,
        ge=365,
        description="`rtcc audit purge` deletes audit records older than this (at least a "
        "year, CJIS 5.4.7); none: the audit log is kept forever and nothing deletes from it.",
    )

"""`rtcc doctor` on a gateway: every check of agent.doctor_checks in order, a report a field
tech can read (each failure with its fix) or JSON for scripts; failing checks make the exit
status 1."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from agent import doctor_checks as checks
from agent.config import AgentSettings
from agent.doctor_certs import Check, certificates
from runtime.config import ConfigError, load_settings


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    config_file: Path | None = None
    max_skew_s: float = 3.0
    gps_wait_s: float = 10.0


def diagnose(options: DoctorOptions, clock: Callable[[], float] = time.time) -> list[Check]:
    """Every check; a configuration that does not load is the only one then."""
    try:
        s = load_settings(AgentSettings, options.config_file)
    except ConfigError as exc:
        return [Check("configuration", "fail", str(exc), _CONFIG_FIX)]
    source = str(options.config_file) if options.config_file else "the environment"
    found = [
        Check(
            "configuration",
            "ok",
            f"loaded from {source} (RTCC_* over it)",
            None,
            {"unit_id": s.unit_id},
        )
    ]
    now = dt.datetime.fromtimestamp(clock(), dt.UTC)
    found.append(certificates(s, now))
    found += checks.center(s, clock, options.max_skew_s)
    if s.mqtt_url is None:
        found.append(Check("broker", "fail", "mqtt_url is not set", "set RTCC_MQTT_URL"))
    else:
        found.append(checks.broker(s))
    found += [
        checks.running_agent(s),
        checks.bodycam(s),
        checks.video(s),
        checks.gps(s, options.gps_wait_s),
        checks.disk(s),
        checks.evidence(s),
    ]
    return found


_CONFIG_FIX = (
    "fix the named setting in the configuration file (--config) or its RTCC_* variable; "
    "a fresh gateway gets both from `rtcc provision enroll`"
)


def failed(found: list[Check]) -> bool:
    return any(c.status == "fail" for c in found)


def as_json(found: list[Check]) -> str:
    return json.dumps({"ok": not failed(found), "checks": [asdict(c) for c in found]}, indent=2)


_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "-"}


def as_text(found: list[Check]) -> str:
    lines = []
    for c in found:
        lines.append(f"{_MARK[c.status]:<5} {c.name:<14} {c.detail}")
        if c.fix is not None and c.status in ("fail", "warn"):
            lines.append(f"{'':<20} fix: {c.fix}")
    bad = [c.name for c in found if c.status == "fail"]
    lines.append(f"{len(bad)} failed: {', '.join(bad)}" if bad else "all checks passed")
    return "\n".join(lines) + "\n"

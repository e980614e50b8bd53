"""`rtcc doctor`: the gateway's checks (agent.doctor)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent.doctor import DoctorOptions, as_json, as_text, diagnose, failed  # noqa: PLC0415
    from runtime.logs import configure_logging  # noqa: PLC0415

    configure_logging("error", "console")
    options = DoctorOptions(args.config, args.max_skew, args.gps_wait)
    found = diagnose(options)
    sys.stdout.write(as_json(found) + "\n" if args.json else as_text(found))
    return 1 if failed(found) else 0


def add_doctor_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check this gateway: configuration, certificate, clock, broker, center, "
        "body-cam, camera, GPS, disk, evidence; exit 1 on a failure",
    )
    doctor.add_argument("--config", type=Path, help="the agent's TOML file; RTCC_* override it")
    doctor.add_argument("--json", action="store_true", help="the report as JSON")
    doctor.add_argument(
        "--max-skew", type=float, default=3.0, help="clock skew to the center that fails, s"
    )
    doctor.add_argument(
        "--gps-wait", type=float, default=10.0, help="how long to wait for a GPS fix, s"
    )
    doctor.set_defaults(func=cmd_doctor)

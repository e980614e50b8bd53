"""`rtcc doctor`: the gateway's checks (agent.doctor), registered by rtcc.cli."""

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


def main(argv: list[str] | None = None) -> int:
    """`python -m rtcc.doctor_cli` until `rtcc doctor` is registered in rtcc.cli."""
    parser = argparse.ArgumentParser(prog="rtcc")
    add_doctor_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["doctor", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

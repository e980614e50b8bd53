"""`rtcc` subcommands. Each imports only what it runs, so an agent never loads the center."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rtcc.doctor_cli import add_doctor_command
from rtcc.provision_cli import add_provision_commands
from runtime.config import ConfigError, load_settings
from runtime.logs import configure_logging

if TYPE_CHECKING:
    from central.config import CentralSettings


def _run(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    async def wrapper() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(wrapper())
    return 0


def cmd_central(args: argparse.Namespace) -> int:
    from central.config import CentralSettings
    from central.service import run_until

    settings = load_settings(CentralSettings, args.config)
    configure_logging(settings.log.level, settings.log.format)
    return _run(lambda stop: run_until(stop, settings))


def cmd_agent(args: argparse.Namespace) -> int:
    from agent.config import AgentSettings
    from agent.runner import run_until

    settings = load_settings(AgentSettings, args.config)
    settings.broker_urls()
    configure_logging(settings.log.level, settings.log.format)
    return _run(lambda stop: run_until(stop, settings))


def cmd_agent_evidence_status(args: argparse.Namespace) -> int:
    import json

    from agent.config import AgentSettings
    from agent.evidence.status import evidence_status

    settings = load_settings(AgentSettings, args.config)
    print(json.dumps(evidence_status(settings.data_dir / "evidence"), indent=2))
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    """A recording folder (its manifest.jsonl and segments) checked here, or a recording id
    checked by the center."""
    import json
    import urllib.error
    import urllib.request

    target = Path(args.recording)
    if target.is_dir():
        from central.evidence.store import verify_directory
        from protocol.evidence import parse_manifest
        from protocol.upload import MANIFEST

        manifest = target / MANIFEST
        if not manifest.is_file():
            print(f"rtcc evidence verify: {manifest} not found", file=sys.stderr)
            return 2
        entries, unreadable = parse_manifest(manifest.read_text(encoding="utf-8"))
        problems = [
            {"index": p.index, "file": p.file, "reason": p.reason}
            for p in unreadable + verify_directory(target, entries, args.key)
        ]
        result = {"recording_id": target.name, "ok": not problems, "problems": problems}
    else:
        url = f"{args.center.rstrip('/')}/api/v1/evidence/{args.recording}/verify"
        # The center answers API keys only (scope evidence:read), from the environment so
        # that no secret shows in the process list.
        key = os.environ.get("RTCC_API_KEY", "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                result = json.load(answer)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(f"rtcc evidence verify: {url}: {exc}", file=sys.stderr)
            return 2
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def cmd_relay_worker(args: argparse.Namespace) -> int:
    from central.relay.worker import RelayWorkerSettings, run_until

    settings = load_settings(RelayWorkerSettings, args.config)
    configure_logging(settings.log.level, settings.log.format)
    return _run(lambda stop: run_until(stop, settings))


def cmd_bodycam_sim(args: argparse.Namespace) -> int:
    import json

    from firmware_bridge.sim.bodycam import SimulatedBodycam
    from firmware_bridge.sim.bodycam_server import ControlError, parse_schedule, run_bodycam_sim

    try:
        schedule = parse_schedule(args.at)
        control = None
        if args.control:
            host, _, port = args.control.rpartition(":")
            control = (host or "127.0.0.1", int(port))
        if args.listen != "pty" and not args.listen.startswith("tcp://"):
            raise ControlError("--listen must be pty or tcp://host:port")
        width, _, height = args.video_size.partition("x")
        rtsp = (args.rtsp_port, int(width), int(height)) if args.rtsp_port else None
    except (ControlError, ValueError) as exc:
        print(f"rtcc bodycam-sim: {exc}", file=sys.stderr)
        return 2
    from runtime.process import die_with_parent

    camera = SimulatedBodycam(
        args.serial, battery_pct=args.battery, clock_offset_s=args.clock_offset
    )

    def announce(ready: dict[str, object]) -> None:
        print(json.dumps(ready), flush=True)

    return _run(
        lambda stop: run_bodycam_sim(
            stop, camera, args.listen, control, schedule, announce, rtsp, die_with_parent
        )
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from rtcc.demo import Demo

    configure_logging("warning", "console")
    return _run(lambda stop: Demo(args.units, args.data_dir, args.http_port).run(stop))


def _center_command(
    args: argparse.Namespace, name: str, run: Callable[[CentralSettings], int]
) -> int:
    """A center admin command: the center's settings, quiet logs, and a refusal said in one
    line on stderr with exit status 2."""
    from central.config import CentralSettings
    from central.people import CommandRefused

    settings = load_settings(CentralSettings, args.config)
    configure_logging("warning", settings.log.format)
    try:
        return run(settings)
    except CommandRefused as exc:
        print(f"rtcc {name}: {exc}", file=sys.stderr)
        return 2


def cmd_users(args: argparse.Namespace) -> int:
    from central.people import UserCommand, run_users_command

    command = UserCommand(
        args.users_command,
        getattr(args, "name", None),
        getattr(args, "role", None),
        getattr(args, "password_stdin", False),
        getattr(args, "unit", None),
    )

    def run(settings: CentralSettings) -> int:
        run_users_command(settings, command, sys.stdin, sys.stdout)
        return 0

    return _center_command(args, f"users {args.users_command}", run)


def cmd_audit(args: argparse.Namespace) -> int:
    from central.audit_tools import ExportRequest, run_export, run_purge, run_verify

    def run(settings: CentralSettings) -> int:
        if args.audit_command == "verify":
            return 0 if run_verify(settings, sys.stdout) else 1
        if args.audit_command == "purge":
            run_purge(settings, sys.stdout)
            return 0
        request = ExportRequest(args.since, args.until, args.format, args.output)
        count = run_export(settings, request, sys.stdout)
        print(f"rtcc audit export: {count} records", file=sys.stderr)
        return 0

    return _center_command(args, f"audit {args.audit_command}", run)


def cmd_clients(args: argparse.Namespace) -> int:
    from central.client_keys import ClientCommand, run_clients_command

    command = ClientCommand(
        args.clients_command,
        getattr(args, "name", None),
        getattr(args, "scope", None) or (),
        getattr(args, "days", None),
        getattr(args, "key_id", None),
    )

    def run(settings: CentralSettings) -> int:
        run_clients_command(settings, command, sys.stdout)
        return 0

    return _center_command(args, f"clients {args.clients_command}", run)


def cmd_provision(args: argparse.Namespace) -> int:
    """The center's side of `rtcc provision` (enroll, the gateway's, is rtcc/provision_cli.py)."""
    from central.provision_commands import ProvisionCommand, run_provision_command

    command = ProvisionCommand(
        args.provision_command,
        unit=getattr(args, "unit", None),
        expires=getattr(args, "expires", None),
        monitor=getattr(args, "name", None),
        folder=getattr(args, "out", None),
    )

    def run(settings: CentralSettings) -> int:
        run_provision_command(settings, command, sys.stdout)
        return 0

    return _center_command(args, f"provision {command.verb}", run)


def add_client_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    clients = sub.add_parser("clients", help="API keys for programs (CAD, scripts, metrics)")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    add = clients_sub.add_parser("add", help="make a key; shown once", parents=[common])
    add.add_argument("name")
    add.add_argument("--scope", action="append", required=True, help="e.g. units:read")
    add.add_argument("--days", type=float, help="expires after this many days")
    revoke = clients_sub.add_parser("revoke", help="revoke a key now", parents=[common])
    revoke.add_argument("key_id")
    clients_sub.add_parser("list", help="every key: name, scopes, state", parents=[common])
    clients.set_defaults(func=cmd_clients)


def add_people_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`rtcc users ...` and `rtcc audit ...`: the center's people and audit log, on its
    database (RTCC_DATABASE_URL, RTCC_DATA_DIR, or --config)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="the center's TOML file; RTCC_* override it")
    users = sub.add_parser("users", help="the people who sign in to the center")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    stdin_help = "read the password from the first line of standard input"
    for verb, help_text in (
        ("add", "add a user; prints a one-time password unless --password-stdin"),
        ("list", "every user: role, disabled, locked, TOTP enrolled, last sign-in"),
        ("disable", "disable a user and end their sessions"),
        ("enable", "enable a disabled user"),
        ("reset-password", "new password (one-time unless --password-stdin); ends sessions"),
        ("set-role", "change a user's role; ends their sessions"),
        ("totp", "new TOTP secret: prints the otpauth URI and a QR code"),
    ):
        p = users_sub.add_parser(verb, help=help_text, parents=[common])
        if verb != "list":
            p.add_argument("name")
        if verb == "set-role":
            p.add_argument("role", help="admin, supervisor, dispatcher, tech or patrol")
        if verb == "add":
            p.add_argument(
                "--role", required=True, help="admin, supervisor, dispatcher, tech or patrol"
            )
            p.add_argument("--unit", help="a patrol login's unit (its vehicle), e.g. P-117")
        if verb in ("add", "reset-password"):
            p.add_argument("--password-stdin", action="store_true", help=stdin_help)
        p.set_defaults(func=cmd_users)
    audit = sub.add_parser("audit", help="the center's hash-chained audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify",
        help="check the chain and its anchor file; exit 1 naming the first bad record",
        parents=[common],
    )
    verify.set_defaults(func=cmd_audit)
    export = audit_sub.add_parser(
        "export", help="records in a time window, oldest first", parents=[common]
    )
    export.add_argument("--since", help="ISO 8601 time, at or after (no zone: UTC)")
    export.add_argument("--until", help="ISO 8601 time, before (no zone: UTC)")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", type=Path, help="file to write (mode 0600); default stdout")
    export.set_defaults(func=cmd_audit)
    purge = audit_sub.add_parser(
        "purge",
        help="delete records older than RTCC_ACCESS__AUDIT_RETENTION_DAYS (audited)",
        parents=[common],
    )
    purge.set_defaults(func=cmd_audit)
    add_client_commands(sub, common)
    add_provision_commands(sub, common, cmd_provision)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtcc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("central", cmd_central, "run the center: broker (unless RTCC_MQTT_URL), fleet, API"),
        ("agent", cmd_agent, "run one patrol unit's agent"),
        ("relay-worker", cmd_relay_worker, "one relay media process (started by central)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", type=Path, help="TOML file; RTCC_* env vars override it")
        p.set_defaults(func=func)
        if name == "agent":
            agent_sub = p.add_subparsers(dest="agent_command")
            evidence = agent_sub.add_parser("evidence", help="this unit's evidence on disk")
            evidence_sub = evidence.add_subparsers(dest="evidence_command", required=True)
            status = evidence_sub.add_parser("status", help="recordings waiting for upload")
            status.set_defaults(func=cmd_agent_evidence_status)
    evidence_cmd = sub.add_parser("evidence", help="work with recorded evidence")
    evidence_sub = evidence_cmd.add_subparsers(dest="evidence_command", required=True)
    verify = evidence_sub.add_parser(
        "verify", help="check a recording's signed chain and every segment's SHA-256"
    )
    verify.add_argument("recording", help="a recording folder, or a recording id at the center")
    verify.add_argument("--center", default="http://127.0.0.1:8080", help="the center's URL")
    verify.add_argument("--key", help="the unit's public key (base64), for a local folder")
    verify.set_defaults(func=cmd_evidence_verify)
    sim = sub.add_parser(
        "bodycam-sim", help="a simulated body-cam speaking the link over TCP or a pty"
    )
    sim.add_argument(
        "--listen", default="tcp://127.0.0.1:7700", help="tcp://host:port (port 0: any) or pty"
    )
    sim.add_argument("--control", help="host:port for control lines (trigger, press, battery)")
    sim.add_argument("--serial", default="SIM-0001")
    sim.add_argument(
        "--rtsp-port",
        type=int,
        help="also serve the camera's video at rtsp://127.0.0.1:PORT/cam (needs GStreamer)",
    )
    sim.add_argument("--video-size", default="640x480", help="WIDTHxHEIGHT of that video")
    sim.add_argument("--battery", type=float, default=100.0, help="starting charge, percent")
    sim.add_argument("--clock-offset", type=float, default=0.0, help="camera clock error, s")
    sim.add_argument(
        "--at",
        action="append",
        default=[],
        metavar="SECONDS=COMMAND",
        help="schedule a control line, e.g. --at '5=trigger holster_draw' (repeatable)",
    )
    sim.set_defaults(func=cmd_bodycam_sim)
    demo = sub.add_parser("demo", help="center + Mosquitto + N simulated units, one command")
    demo.add_argument("--units", type=int, default=5, choices=range(1, 201), metavar="N")
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep demo state here (default: a new temporary directory)",
    )
    demo.add_argument(
        "--http-port", type=int, default=8080, help="API port (a free one is used if it is taken)"
    )
    demo.set_defaults(func=cmd_demo)
    add_people_commands(sub)
    add_doctor_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"rtcc {args.command}: {exc}", file=sys.stderr)
        return 2
    return code

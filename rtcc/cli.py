"""`rtcc` subcommands. Each imports only what it runs, so an agent never loads the center."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from runtime.config import ConfigError, load_settings
from runtime.logs import configure_logging


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


def cmd_relay_worker(args: argparse.Namespace) -> int:
    from central.relay.worker import RelayWorkerSettings, run_until

    settings = load_settings(RelayWorkerSettings, args.config)
    configure_logging(settings.log.level, settings.log.format)
    return _run(lambda stop: run_until(stop, settings))


def cmd_bodycam_sim(args: argparse.Namespace) -> int:
    import json

    from firmware_bridge.bodycam_server import ControlError, parse_schedule, run_bodycam_sim
    from firmware_bridge.bodycam_sim import SimulatedBodycam

    try:
        schedule = parse_schedule(args.at)
        control = None
        if args.control:
            host, _, port = args.control.rpartition(":")
            control = (host or "127.0.0.1", int(port))
        if args.listen != "pty" and not args.listen.startswith("tcp://"):
            raise ControlError("--listen must be pty or tcp://host:port")
    except (ControlError, ValueError) as exc:
        print(f"rtcc bodycam-sim: {exc}", file=sys.stderr)
        return 2
    camera = SimulatedBodycam(
        args.serial, battery_pct=args.battery, clock_offset_s=args.clock_offset
    )

    def announce(ready: dict[str, object]) -> None:
        print(json.dumps(ready), flush=True)

    return _run(
        lambda stop: run_bodycam_sim(stop, camera, args.listen, control, schedule, announce)
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from rtcc.demo import Demo

    configure_logging("warning", "console")
    return _run(lambda stop: Demo(args.units, args.data_dir, args.http_port).run(stop))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtcc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("central", cmd_central, "run the center: broker (unless RTCC_MQTT_URL), fleet, API"),
        ("agent", cmd_agent, "run one patrol unit's agent (simulated body-cam for now)"),
        ("relay-worker", cmd_relay_worker, "one relay media process (started by central)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", type=Path, help="TOML file; RTCC_* env vars override it")
        p.set_defaults(func=func)
    sim = sub.add_parser(
        "bodycam-sim", help="a simulated body-cam speaking the link over TCP or a pty"
    )
    sim.add_argument(
        "--listen", default="tcp://127.0.0.1:7700", help="tcp://host:port (port 0: any) or pty"
    )
    sim.add_argument("--control", help="host:port for control lines (trigger, press, battery)")
    sim.add_argument("--serial", default="SIM-0001")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"rtcc {args.command}: {exc}", file=sys.stderr)
        return 2
    return code

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

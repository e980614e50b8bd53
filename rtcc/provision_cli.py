"""The `rtcc provision ...` arguments: enrollment codes, revocation, the certificate list
and monitors' certificates at the center; enrollment itself on the gateway (run here: it
loads nothing of the center), with `--install-service` installing and starting the agent's
systemd unit."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

DEFAULT_DIR = Path("/var/lib/rtcc-agent")


def add_provision_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
) -> None:
    provision = sub.add_parser("provision", help="enroll gateways: codes, certificates")
    provision_sub = provision.add_subparsers(dest="provision_command", required=True)
    code = provision_sub.add_parser(
        "create-code", help="a one-time enrollment code for a unit", parents=[common]
    )
    code.add_argument("--unit", required=True, help="the unit the gateway will be, e.g. P-117")
    code.add_argument("--expires", help="e.g. 30m, 24h, 7d (default RTCC_PROVISION__CODE_TTL_S)")
    enroll = provision_sub.add_parser("enroll", help="on the gateway: enroll it with a code")
    enroll.add_argument("--center", required=True, help="the center's URL, https://...")
    enroll.add_argument("--code", required=True, help="the code from create-code")
    enroll.add_argument("--ca-file", type=Path, help="the CA of the center's HTTPS certificate")
    enroll.add_argument(
        "--dir",
        type=Path,
        help=f"where to write the files (default {DEFAULT_DIR}; with --install-service, the "
        "unit's StateDirectory=, which this must then be)",
    )
    enroll.add_argument(
        "--install-service",
        action="store_true",
        help="then install the agent's systemd unit, create its user, give it the files, "
        "enable and start it",
    )
    enroll.set_defaults(func=cmd_enroll)
    revoke = provision_sub.add_parser(
        "revoke", help="revoke a unit's certificates now", parents=[common]
    )
    revoke.add_argument("unit")
    provision_sub.add_parser(
        "list", help="every certificate: unit, serial, issued, expires, revoked", parents=[common]
    )
    monitor = provision_sub.add_parser(
        "monitor",
        help="a certificate for a monitoring tool that may only read the units' reports",
        parents=[common],
    )
    monitor.add_argument(
        "name", help="one of RTCC_BROKER__MONITORS, e.g. noc (broker identity rtcc.monitor.noc)"
    )
    monitor.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for its key (0600), its certificate and the device CA",
    )
    provision.set_defaults(func=run)


class _Refused(Exception):
    pass


def cmd_enroll(args: argparse.Namespace) -> int:
    """Enroll, then (with --install-service) install the service; exit 1 naming what failed."""
    from agent import install_service as service  # noqa: PLC0415 - loaded when run only
    from agent.enroll import EnrollFailed, enroll  # noqa: PLC0415

    installing: tuple[service.Layout, str, service.Host] | None = None
    try:
        folder = args.dir or DEFAULT_DIR
        if args.install_service:
            # Checked before the code is spent: the unit can be installed and will find
            # what enrollment writes.
            shipped = service.SHIPPED_UNIT.read_text()
            layout = service.Layout.from_environ(os.environ, shipped)
            folder = _service_folder(args.dir, layout.folder)
            host = service.system_host(layout.root)
            layout.check_writable(host)
            installing = layout, shipped, host
        done = enroll(args.center, args.code, folder, args.ca_file, sys.stdout)
    except (EnrollFailed, service.InstallFailed, _Refused, OSError) as exc:
        print(f"rtcc provision enroll: {exc}", file=sys.stderr)
        return 1
    print(f"Enrolled as unit {done.unit_id} (certificate {done.serial}).", flush=True)
    if done.moved_aside is not None:
        print(f"Files of an earlier enrollment layout were moved to {done.moved_aside}.")
    if installing is None:
        print(f"Start the agent with: rtcc agent --config {done.files.config}")
        return 0
    try:
        service.install(*installing, sys.stdout)
    except (service.InstallFailed, OSError) as exc:
        print(
            f"rtcc provision enroll: enrolled, but the service is not installed: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def _service_folder(given: Path | None, expected: Path) -> Path:
    if given is not None and given.resolve() != expected.resolve():
        raise _Refused(
            f"--install-service runs the agent from {expected}; leave out --dir or give that"
        )
    return expected

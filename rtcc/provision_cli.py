"""The `rtcc provision ...` arguments: enrollment codes, revocation and the certificate
list at the center; enrollment itself on the gateway."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


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
        "--dir", type=Path, default=Path("/var/lib/rtcc-agent"), help="where to write the files"
    )
    revoke = provision_sub.add_parser(
        "revoke", help="revoke a unit's certificates now", parents=[common]
    )
    revoke.add_argument("unit")
    provision_sub.add_parser(
        "list", help="every certificate: unit, serial, issued, expires, revoked", parents=[common]
    )
    provision.set_defaults(func=run)

"""`rtcc provision create-code | revoke | list | monitor`: the center's side of provisioning
at the command line, on the center's database and data directory, as the OS user running
it. A refusal is a CommandRefused with a one-line reason."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from central.config import CentralSettings
from central.db.audit import Audit
from central.db.devices import DeviceCert
from central.device_ca import MonitorFiles
from central.errors import CenterError
from central.people import CommandRefused, Operator, anchor_file, open_center_database
from central.provisioning import Provisioning, iso_time, parse_duration
from protocol.topics import check_id


@dataclass(frozen=True, slots=True)
class ProvisionCommand:
    """One `rtcc provision` verb at the center, with its arguments."""

    verb: str
    unit: str | None = None
    expires: str | None = None
    monitor: str | None = None
    folder: Path | None = None


def run_provision_command(
    settings: CentralSettings, command: ProvisionCommand, out: TextIO
) -> None:
    provision, verb = settings.provision, command.verb
    try:
        ttl = parse_duration(command.expires) if command.expires else None
        unit = check_id(command.unit) if command.unit is not None else None
    except ValueError as exc:
        raise CommandRefused(str(exc)) from None
    if command.monitor is not None:
        check_monitor(settings, command.monitor, command.folder)
    database = open_center_database(settings.database())
    operator = Operator.at_command_line()
    try:
        provisioning = Provisioning(database, settings.data_dir, provision)
        if verb == "create-code":
            assert unit is not None
            code = provisioning.create_code(operator, unit, ttl)
            until = iso_time(time.time() + (ttl or provision.code_ttl_s))
            print(f"Enrollment code for {unit} (one use, until {until}): {code}", file=out)
        elif verb == "revoke":
            assert unit is not None
            serials = provisioning.revoke(operator, unit)
            shown = ", ".join(serials) if serials else "none was valid"
            print(f"{unit}: certificates revoked: {shown}", file=out)
        elif verb == "monitor":
            assert command.monitor is not None and command.folder is not None
            made = provisioning.issue_monitor(operator, command.monitor, command.folder)
            print_monitor(made, settings, out)
        else:
            print_certs(provisioning.certs(), out)
        with database.read() as tx:
            anchor_file(settings.data_dir).record(Audit(tx).head(), time.time())
    except CenterError as exc:
        raise CommandRefused(str(exc)) from None
    except OSError as exc:
        raise CommandRefused(f"{exc.strerror or exc}: {exc.filename or ''}".strip()) from None
    finally:
        database.close()


def check_monitor(settings: CentralSettings, name: str, folder: Path | None) -> None:
    """A monitor's certificate is only worth issuing where its rights are kept: on the
    center's own mutual-TLS broker, for a configured name, into a folder of its own."""
    if settings.mqtt_url is not None:
        raise CommandRefused(
            "this center uses an external broker (RTCC_MQTT_URL): a monitor's rights are "
            "that broker's to grant, not the center's"
        )
    if not settings.broker.mtls:
        raise CommandRefused(
            "the center's broker runs its plain listener (broker.mtls false): anybody may "
            "read it, and no certificate is checked"
        )
    if name not in settings.broker.monitors:
        raise CommandRefused(
            f"{name[:80]!r} is not one of this center's monitors: add it to "
            "RTCC_BROKER__MONITORS (broker.monitors) and restart the center"
        )
    if folder is not None and folder.resolve().is_relative_to(settings.data_dir.resolve()):
        raise CommandRefused(
            f"{folder} is inside the center's data directory: give the monitor a folder of "
            "its own (its key leaves this machine; the center's keys must not be near it)"
        )


def print_monitor(made: MonitorFiles, settings: CentralSettings, out: TextIO) -> None:
    """The files, and where the monitor reads: the broker gateways are told of, or the
    supervised one."""
    broker = settings.broker
    port = f":{broker.port}" if broker.port else " (the port the center's broker listens on)"
    url = settings.provision.broker_url or f"mqtts://{(broker.names or [broker.host])[0]}{port}"
    expires = iso_time(made.issued.cert.not_valid_after_utc.timestamp())
    print(
        f"{made.identity}: certificate {made.issued.serial}, until {expires}\n"
        f"  key          {made.pair.key_file}\n"
        f"  certificate  {made.pair.cert_file}\n"
        f"  device CA    {made.ca_file}\n"
        f"It may read the units' presence, state, events and results at {url} (mutual TLS, "
        "one connection at a time), and nothing else.\n"
        "A certificate issued again does not end this one: to cut a monitor off, take its "
        "name out of broker.monitors and restart the center (its rights go; the certificate "
        "then opens nothing).",
        file=out,
    )


def print_certs(certs: list[DeviceCert], out: TextIO) -> None:
    """The last seen time is the running center's (its API's list has it)."""
    print(f"{'unit':<16} {'serial':<40} {'issued':<20} {'expires':<20} revoked", file=out)
    for c in certs:
        revoked = f"{iso_time(c.revoked_at)} by {c.revoked_by}" if c.revoked_at else "-"
        print(
            f"{c.unit_id:<16} {c.serial:<40} {iso_time(c.issued_at):<20} "
            f"{iso_time(c.expires_at):<20} {revoked}",
            file=out,
        )

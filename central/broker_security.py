"""Who may do what on the broker: the mutual-TLS listener, the per-unit ACL and revocation.

Mosquitto 2.0.11 runs a TLS listener with `require_certificate` and
`use_identity_as_username`: the certificate's CN is the MQTT username (the unit id, or the
center's identity) and no password is checked. Access is granted by the dynamic-security
plugin, which denies everything by default:

- each unit is a dynsec client (username = unit id) with a role of its own that lets it
  publish only its presence, state, events and command results and subscribe to and receive
  only its own commands. Dynsec in 2.0.11 has no %u patterns, hence one role per unit;
- the center's identity (its fleet service) may read every unit's presence, state, events
  and results, send commands and publish its own status and events;
- the center's admin identity (central/broker_admin.py) may only administer dynsec;
- a monitor (`rtcc.monitor.<name>`, one per name in the center's broker settings: a
  department's monitoring tool) may only read every unit's presence, state, events and
  results: no publishing at all, no commands, no $CONTROL.

`use_username_as_clientid` makes every client id the certificate's CN: without it a unit
could connect with another unit's client id and so throw that unit off (the broker drops
the older connection of a client id). Hence one identity, and one certificate, per
connection of the center.

Why dynsec rather than an `acl_file` with %u patterns: revocation must throw out a unit that
is connected. Mosquitto 2.0.11 has no way to disconnect a client except through dynsec
(deleting a client kicks every connection with its username); a reloaded acl_file or CRL
(SIGHUP) checks only new connections, never the certificates of established ones.

Revocation of a unit is two steps, in this order: the device CA's CRL, rewritten with the
unit's serial, is reloaded by the broker (SIGHUP: 2.0.11 re-reads `crlfile` for listeners
with `require_certificate`), so the next TLS handshake with that certificate fails; then
dynsec `deleteClient` + `deleteRole` kicks the live connection and leaves the username with
no permission at all, should the broker be one we cannot send SIGHUP to.

A CRL that does not load on SIGHUP makes Mosquitto 2.0.11 drop CRL checking altogether
(revoked certificates are accepted again), and one past its next update refuses every
client: `crl_problem` is checked before the broker is started or signalled.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from protocol.topics import ROOT, TopicKind, check_id, is_id, unit_filter

DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
CENTER_ROLE = "rtcc-center"
ADMIN_ROLE = "rtcc-center-admin"
MONITOR_ROLE = "rtcc-monitor"
UNIT_ROLE_PREFIX = "rtcc-unit-"

Acl = dict[str, Any]

# A certificate CN of the center or a monitor: a dotted name, which no unit id can take.
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)+")
MAX_IDENTITY = 128


def check_identity(value: str) -> str:
    if len(value) > MAX_IDENTITY or not _IDENTITY.fullmatch(value):
        raise ValueError(f"not a usable broker identity (a dotted certificate CN): {value[:80]!r}")
    return value


@dataclass(frozen=True)
class BrokerTls:
    """The files of the broker's mutual-TLS listener (made by the center's device CA), the
    identities (certificate CNs) the center connects with, the center id of its topics and
    the monitors' identities."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    crl_file: Path
    center_identity: str
    center_id: str
    admin_identity: str
    # Units the plugin's first configuration lets in; later ones are added by control messages.
    units: tuple[str, ...] = ()
    # The monitors' CNs (rtcc.monitor.<name>): they read the units' reports, nothing else.
    monitors: tuple[str, ...] = ()
    plugin: Path = DYNSEC_PLUGIN

    def __post_init__(self) -> None:
        self.identities.check()

    @property
    def identities(self) -> CenterIdentities:
        return CenterIdentities(
            self.center_identity, self.admin_identity, self.center_id, self.monitors
        )

    def dynsec_text(self) -> str:
        return dynsec_config_text(self.identities, self.units)

    def render(self, host: str, port: int, dynsec_file: Path) -> list[str]:
        """mosquitto.conf lines: the TLS listener and the dynsec plugin (global settings)."""
        return [
            "per_listener_settings false",
            f"listener {port} {host}",
            f"cafile {self.ca_file}",
            f"certfile {self.cert_file}",
            f"keyfile {self.key_file}",
            f"crlfile {self.crl_file}",
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true",
            # The minimum version in Mosquitto 2.0.
            "tls_version tlsv1.2",
            "allow_anonymous false",
            f"plugin {self.plugin}",
            f"plugin_opt_config_file {dynsec_file}",
        ]


def _acl(kind: str, topic: str) -> Acl:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


def unit_acls(unit_id: str) -> list[Acl]:
    """A unit writes its presence, state, events and results; reads only its commands."""
    check_id(unit_id)
    writes = [unit_filter(kind, unit_id) for kind in _UNIT_WRITES]
    commands = unit_filter(TopicKind.COMMAND, unit_id)
    return [
        *(_acl("publishClientSend", topic) for topic in writes),
        _acl("subscribePattern", commands),
        _acl("publishClientReceive", commands),
    ]


_UNIT_WRITES = (TopicKind.PRESENCE, TopicKind.STATE, TopicKind.EVENT, TopicKind.RESULT)


@dataclass(frozen=True)
class CenterIdentities:
    """The CNs of the center's two broker connections, the center id of its topics, and the
    CNs of the monitors it lets read the units' reports."""

    fleet: str
    admin: str
    center_id: str
    monitors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuses names that are not dotted identities, a bad center id, and clashes."""
        check_identity(self.fleet)
        check_identity(self.admin)
        check_id(self.center_id)
        if self.fleet == self.admin:
            raise ValueError("the center's fleet and admin identities must differ")
        for monitor in self.monitors:
            check_identity(monitor)
        names = {self.fleet, self.admin, *self.monitors}
        if len(names) != 2 + len(self.monitors):
            raise ValueError("each monitor identity must differ from the others and the center's")


def monitor_acls() -> list[Acl]:
    """Reading every unit's presence, state, events and results, and nothing else."""
    reads = [unit_filter(kind) for kind in _UNIT_WRITES]
    return [
        *(_acl("subscribePattern", topic) for topic in reads),
        *(_acl("publishClientReceive", topic) for topic in reads),
    ]


def center_acls(center_id: str) -> list[Acl]:
    """What the fleet service does: read all units' reports (as a monitor does), command
    them, publish its own status and events."""
    own = f"{ROOT}/centers/{check_id(center_id)}/#"
    return [
        *monitor_acls(),
        _acl("publishClientSend", unit_filter(TopicKind.COMMAND)),
        _acl("publishClientSend", own),
        _acl("subscribePattern", own),
        _acl("publishClientReceive", own),
    ]


def admin_acls() -> list[Acl]:
    """Administering dynsec (adding, removing units), and nothing of the units' traffic."""
    return [
        _acl("publishClientSend", CONTROL_TOPIC),
        _acl("subscribePattern", RESPONSE_TOPIC),
        _acl("publishClientReceive", RESPONSE_TOPIC),
    ]


def unit_role(unit_id: str) -> str:
    return f"{UNIT_ROLE_PREFIX}{check_id(unit_id)}"


def dynsec_config(center: CenterIdentities, units: Iterable[str] = ()) -> dict[str, Any]:
    """The plugin's first configuration file: deny by default, the center, and `units`.
    The plugin rewrites this file itself on every change made through control messages."""
    unit_ids = sorted(set(units))
    for unit in unit_ids:
        check_id(unit)
    roles = _center_roles(center)
    roles += [{"rolename": unit_role(u), "acls": unit_acls(u)} for u in unit_ids]
    clients = _center_clients(center) + [_client(u, unit_role(u)) for u in unit_ids]
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def _center_roles(center: CenterIdentities) -> list[dict[str, Any]]:
    return [
        {"rolename": CENTER_ROLE, "acls": center_acls(center.center_id)},
        {"rolename": ADMIN_ROLE, "acls": admin_acls()},
        {"rolename": MONITOR_ROLE, "acls": monitor_acls()},
    ]


def _center_clients(center: CenterIdentities) -> list[dict[str, Any]]:
    return [
        _client(center.fleet, CENTER_ROLE),
        _client(center.admin, ADMIN_ROLE),
        *(_client(monitor, MONITOR_ROLE) for monitor in sorted(center.monitors)),
    ]


def _client(username: str, role: str) -> dict[str, Any]:
    # No password: with use_identity_as_username Mosquitto never checks one.
    return {"username": username, "roles": [{"rolename": role}]}


def dynsec_config_text(center: CenterIdentities, units: Iterable[str] = ()) -> str:
    return json.dumps(dynsec_config(center, units), indent=2) + "\n"


def dynsec_with_center(text: str, center: CenterIdentities) -> str:
    """The plugin's file made anew from the units it kept: every unit keeps its client, and
    every client and role gets the rights this version gives (the center's, under its id and
    identities now; the monitors configured now; each unit's own role). Rights therefore
    follow an upgrade at the next start instead of staying what the version that enrolled a
    unit wrote. Dotted names are the center's and its monitors', made from `center` alone (a
    monitor no longer configured is gone); anything not a valid unit id is dropped."""
    config = json.loads(text)
    if not isinstance(config, dict):
        raise ValueError("the dynamic-security file is not a JSON object")
    kept = (c.get("username") for c in config.get("clients", []) if isinstance(c, dict))
    units = [u for u in kept if isinstance(u, str) and is_id(u)]
    return dynsec_config_text(center, units)


def add_unit_commands(unit_id: str) -> list[dict[str, Any]]:
    """Control commands that let a newly enrolled unit speak for itself."""
    role = unit_role(unit_id)
    return [
        {"command": "createRole", "rolename": role, "acls": unit_acls(unit_id)},
        {"command": "createClient", "username": unit_id, "roles": [{"rolename": role}]},
    ]


def remove_unit_commands(unit_id: str) -> list[dict[str, Any]]:
    """Control commands that kick a unit's connections and leave it no permission.
    (`disableClient` would not do: 2.0.11 checks `disabled` only with a password, which
    use_identity_as_username skips, so a disabled unit could reconnect with its rights.)"""
    return [
        {"command": "deleteClient", "username": check_id(unit_id)},
        {"command": "deleteRole", "rolename": unit_role(unit_id)},
    ]


def control_payload(commands: list[dict[str, Any]], correlation: str) -> bytes:
    tagged = [
        {**command, "correlationData": f"{correlation}-{i}"} for i, command in enumerate(commands)
    ]
    return json.dumps({"commands": tagged}).encode()


def control_answers(payload: bytes, correlation: str) -> list[dict[str, Any]] | None:
    """The answers to `control_payload(..., correlation)` in a response, in command order,
    or None when the response answers another request."""
    try:
        found = json.loads(payload)
    except ValueError:
        return None
    responses = found.get("responses") if isinstance(found, dict) else None
    if not isinstance(responses, list):
        return None
    prefix = f"{correlation}-"
    ours = [
        r
        for r in responses
        if isinstance(r, dict) and str(r.get("correlationData", "")).startswith(prefix)
    ]
    return ours or None


def control_errors(answers: list[dict[str, Any]]) -> list[str]:
    """The errors among answers. "not found" answers are not errors: removing a unit
    twice, or one that was never added, leaves the same state; nor "already exists" ones:
    adding a unit twice neither."""
    return [
        f"{r.get('command')}: {r['error']}"
        for r in answers
        if r.get("error") and not _idempotent(str(r["error"]))
    ]


def sync_commands(listed: Iterable[str], enrolled: Iterable[str]) -> list[dict[str, Any]]:
    """Commands that make the plugin's clients (`listed`, from listClients) exactly the
    center's (dotted names, left alone) and the `enrolled` units."""
    wanted = {unit for unit in enrolled if is_id(unit)}
    present = {name for name in listed if is_id(name)}
    commands = [c for unit in sorted(present - wanted) for c in remove_unit_commands(unit)]
    return commands + [c for unit in sorted(wanted - present) for c in add_unit_commands(unit)]


def _idempotent(error: str) -> bool:
    return any(words in error.lower() for words in ("not found", "already exists"))


def crl_problem(crl_pem: bytes, ca_pem: bytes, now: dt.datetime) -> str | None:
    """Why Mosquitto could not use this CRL for this CA, or None if it can."""
    try:
        crl = x509.load_pem_x509_crl(crl_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        return f"unreadable CRL or CA: {exc}"
    key = ca.public_key()
    if crl.issuer != ca.subject or not isinstance(
        key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    ):
        return "the CRL is not from the device CA"
    if not crl.is_signature_valid(key):
        return "the CRL is not signed by the device CA"
    next_update = crl.next_update_utc
    if next_update is not None and next_update <= now:
        return f"the CRL expired at {next_update.isoformat()}: every unit would be refused"
    return None

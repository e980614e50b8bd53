"""Who may do what on the broker: the mutual-TLS listener, the per-unit ACL and revocation.

Mosquitto 2.0.11 runs a TLS listener with `require_certificate` and
`use_identity_as_username`: the certificate's CN is the MQTT username (the unit id, or the
center's identity) and no password is checked. Access is granted by the dynamic-security
plugin, which denies everything by default:

- each unit is a dynsec client (username = unit id) with a role of its own that lets it
  publish only its presence, state, events and command results and subscribe to and receive
  only its own commands. Dynsec in 2.0.11 has no %u patterns, hence one role per unit;
- the center's identity may read every unit's presence, state, events and results, send
  commands, publish its own status and events, and administer dynsec.

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

from protocol.topics import ROOT, TopicKind, check_id, unit_filter

DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
CENTER_ROLE = "rtcc-center"
UNIT_ROLE_PREFIX = "rtcc-unit-"

Acl = dict[str, Any]

# A certificate CN the center may use: its id, or (better) a dotted name no unit id can take.
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_identity(value: str) -> str:
    if not _IDENTITY.fullmatch(value):
        raise ValueError(f"not a usable center identity (certificate CN): {value[:80]!r}")
    return value


@dataclass(frozen=True)
class BrokerTls:
    """The files of the broker's mutual-TLS listener (made by the center's device CA), the
    identity (certificate CN) the center connects with and the center id of its topics."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    crl_file: Path
    center_identity: str
    center_id: str
    # Units the plugin's first configuration lets in; later ones are added by control messages.
    units: tuple[str, ...] = ()
    plugin: Path = DYNSEC_PLUGIN

    def __post_init__(self) -> None:
        check_identity(self.center_identity)
        check_id(self.center_id)

    def dynsec_text(self) -> str:
        return dynsec_config_text(self.center_identity, self.center_id, self.units)

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


def center_acls(center_id: str) -> list[Acl]:
    """What the fleet service does: read all units' reports, command them, publish its own
    status and events; and administer dynsec (add, remove units)."""
    reads = [unit_filter(kind) for kind in _UNIT_WRITES]
    own = f"{ROOT}/centers/{check_id(center_id)}/#"
    return [
        *(_acl("subscribePattern", topic) for topic in reads),
        *(_acl("publishClientReceive", topic) for topic in reads),
        _acl("publishClientSend", unit_filter(TopicKind.COMMAND)),
        _acl("publishClientSend", own),
        _acl("subscribePattern", own),
        _acl("publishClientReceive", own),
        _acl("publishClientSend", CONTROL_TOPIC),
        _acl("subscribePattern", RESPONSE_TOPIC),
        _acl("publishClientReceive", RESPONSE_TOPIC),
    ]


def unit_role(unit_id: str) -> str:
    return f"{UNIT_ROLE_PREFIX}{check_id(unit_id)}"


def dynsec_config(
    center_identity: str, center_id: str, units: Iterable[str] = ()
) -> dict[str, Any]:
    """The plugin's first configuration file: deny by default, the center, and `units`.
    The plugin rewrites this file itself on every change made through control messages."""
    unit_ids = sorted(set(units))
    if center_identity in unit_ids:
        raise ValueError(f"a unit may not have the center's identity: {center_identity!r}")
    roles = [{"rolename": CENTER_ROLE, "acls": center_acls(center_id)}]
    roles += [{"rolename": unit_role(u), "acls": unit_acls(u)} for u in unit_ids]
    clients = [_client(check_identity(center_identity), CENTER_ROLE)]
    clients += [_client(u, unit_role(u)) for u in unit_ids]
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


def _client(username: str, role: str) -> dict[str, Any]:
    # No password: with use_identity_as_username Mosquitto never checks one.
    return {"username": username, "roles": [{"rolename": role}]}


def dynsec_config_text(center_identity: str, center_id: str, units: Iterable[str] = ()) -> str:
    return json.dumps(dynsec_config(center_identity, center_id, units), indent=2) + "\n"


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
    responses = json.loads(payload).get("responses", [])
    ours = [r for r in responses if str(r.get("correlationData", "")).startswith(f"{correlation}-")]
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


def sync_commands(
    listed: Iterable[str], enrolled: Iterable[str], center_identity: str
) -> list[dict[str, Any]]:
    """Commands that make the plugin's clients (`listed`, from listClients) exactly the
    center and the `enrolled` units."""
    wanted = set(enrolled)
    if center_identity in wanted:
        raise ValueError(f"a unit may not have the center's identity: {center_identity!r}")
    present = set(listed) - {center_identity}
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

"""API clients (dispatch/CAD integrations, scripts, the metrics scraper): `rtcc clients add
NAME --scope units:read ...` shows a key once and keeps only its hash; `list` and `revoke`.
Every change is audited as the operator who made it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from pydantic import JsonValue

from central.access.credentials import issue_api_key
from central.access.policy import Scope
from central.config import CentralSettings
from central.db.api_clients import ApiClient, ApiClients
from central.db.audit import Audit
from central.db.audit_chain import AuditEntry
from central.db.engine import Database
from central.db.schema import open_migrated
from central.db.viewer_grants import ViewerGrants
from central.errors import CenterError
from central.people import CommandRefused, Operator, anchor_file, check_name

SCOPES = ", ".join(s.value for s in Scope)


@dataclass(frozen=True, slots=True)
class ClientCommand:
    verb: str  # add | list | revoke
    name: str | None = None
    scopes: Sequence[str] = ()
    days: float | None = None
    key_id: str | None = None


def add_client(
    database: Database,
    operator: Operator,
    name: str,
    scopes: Sequence[str],
    days: float | None = None,
    now: float | None = None,
) -> str:
    """Makes a client key and returns it (it is stored only as a hash)."""
    now = time.time() if now is None else now
    try:
        wanted = frozenset(Scope(s) for s in scopes)
    except ValueError:
        raise CommandRefused(f"unknown scope in {', '.join(scopes)}; known: {SCOPES}") from None
    if not wanted:
        raise CommandRefused(f"give at least one --scope ({SCOPES})")
    expires = now + days * 86_400 if days is not None else None
    issued = issue_api_key(check_name(name), wanted, now, expires)
    record = issued.record
    with database.write() as tx:
        ApiClients(tx).create(
            record.key_id, name, record.key_hash, [s.value for s in wanted], now, expires
        )
        scope_names: list[JsonValue] = [s.value for s in sorted(wanted)]
        detail: dict[str, JsonValue] = {"key_id": record.key_id, "scopes": scope_names}
        Audit(tx).append(_entry(operator, now, "apikey.create", name, detail))
    return issued.key


def run_clients_command(settings: CentralSettings, command: ClientCommand, out: TextIO) -> None:
    database = open_migrated(settings.database())
    anchors = anchor_file(settings.data_dir)
    operator = Operator.at_command_line()
    try:
        if command.verb == "add":
            key = add_client(database, operator, command.name or "", command.scopes, command.days)
            print(f"API key for {command.name} (shown once): {key}", file=out)
        elif command.verb == "revoke":
            _revoke(database, operator, command.key_id or "")
            print(f"API key {command.key_id} revoked", file=out)
        else:
            with database.read() as tx:
                _print(ApiClients(tx).all(), out)
        with database.read() as tx:
            anchors.record(Audit(tx).head(), time.time())
    except CenterError as exc:
        raise CommandRefused(str(exc)) from None
    finally:
        database.close()


def _revoke(database: Database, operator: Operator, key_id: str) -> None:
    now = time.time()
    with database.write() as tx:
        client = ApiClients(tx).revoke(key_id, now)
        # A client's viewer tokens are its key's: they end with it.
        grants = ViewerGrants(tx).revoke_held_by(client.name, now)
        detail: dict[str, JsonValue] = {"key_id": key_id, "viewer_tokens_revoked": grants}
        Audit(tx).append(_entry(operator, now, "apikey.revoke", client.name, detail))


def _entry(
    operator: Operator, now: float, action: str, name: str, detail: Mapping[str, JsonValue]
) -> AuditEntry:
    return AuditEntry(
        now, operator.actor, action, "ok", operator.role, operator.source, name, dict(detail)
    )


def _print(clients: list[ApiClient], out: TextIO) -> None:
    print("key_id        name                  scopes / state", file=out)
    for c in clients:
        state = "revoked" if c.revoked_at is not None else "active"
        scopes = ",".join(sorted(c.scopes))
        print(f"{c.key_id}  {c.name:<20}  {scopes} ({state})", file=out)

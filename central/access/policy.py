"""Who may do what: roles, actions and the one table that joins them (pure).

Every route and command handler asks `allowed(role, action)` for people and
`client_allowed(scopes, action)` for programs; nothing else decides. Object-level checks
(a patrol opens only a share addressed to its unit) are made by the share's owner after the
action itself is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    DISPATCHER = "dispatcher"
    TECH = "tech"
    PATROL = "patrol"


class Action(StrEnum):
    UNITS_LIST = "units.list"
    UNIT_VIEW = "units.view"
    COMMAND_SEND = "commands.send"
    REMOTE_START = "streams.remote_start"
    LIVE_WATCH = "streams.watch"  # issuing a viewer token for one stream
    STREAMS_LIST = "streams.list"
    STREAM_STOP = "streams.stop"
    VIEWER_TOKEN_REVOKE = "streams.revoke_viewer"
    EVIDENCE_SEARCH = "evidence.search"
    EVIDENCE_PLAYBACK = "evidence.playback"
    EVIDENCE_DOWNLOAD = "evidence.download"
    EVIDENCE_VERIFY = "evidence.verify"
    AUDIT_READ = "audit.read"
    AUDIT_EXPORT = "audit.export"
    AUDIT_PURGE = "audit.purge"
    USERS_MANAGE = "users.manage"
    SETTINGS_MANAGE = "settings.manage"
    API_CLIENTS_MANAGE = "api_clients.manage"
    DEVICES_HEALTH = "devices.health"
    DEVICES_PROVISION = "devices.provision"
    METRICS_SCRAPE = "metrics.scrape"
    SHARES_CREATE = "shares.create"
    SHARES_REVOKE = "shares.revoke"
    SHARES_RECEIVE = "shares.receive"
    SHARES_OPEN = "shares.open"
    ALERTS_READ = "alerts.read"
    ALERTS_ACKNOWLEDGE = "alerts.acknowledge"
    API_DOCS = "api.docs"


class Scope(StrEnum):
    """What an API client (a dispatch/CAD integration, a script) may be granted."""

    UNITS_READ = "units:read"
    UNITS_COMMAND = "units:command"
    STREAMS_START = "streams:start"
    STREAMS_WATCH = "streams:watch"
    STREAMS_MANAGE = "streams:manage"
    EVIDENCE_READ = "evidence:read"
    EVIDENCE_PLAYBACK = "evidence:playback"
    EVIDENCE_DOWNLOAD = "evidence:download"
    ALERTS_READ = "alerts:read"
    ALERTS_ACKNOWLEDGE = "alerts:acknowledge"
    AUDIT_READ = "audit:read"
    DEVICES_READ = "devices:read"
    METRICS_SCRAPE = "metrics:scrape"


_DISPATCHER = frozenset(
    {
        Action.UNITS_LIST,
        Action.UNIT_VIEW,
        Action.COMMAND_SEND,
        Action.REMOTE_START,
        Action.LIVE_WATCH,
        Action.STREAMS_LIST,
        Action.STREAM_STOP,
        Action.EVIDENCE_SEARCH,
        Action.EVIDENCE_PLAYBACK,
        Action.EVIDENCE_VERIFY,
        Action.SHARES_CREATE,
        Action.SHARES_REVOKE,
        Action.ALERTS_READ,
        Action.ALERTS_ACKNOWLEDGE,
        Action.API_DOCS,
    }
)

# The one table. Admins run people and settings but see no video; supervisors can do all a
# dispatcher can and own the audit log (its purge too, so that the admin who sets the
# retention is not also the person who deletes); techs look after devices and never watch;
# a patrol car's login sees only what is shared with it.
POLICY: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(
        {
            Action.USERS_MANAGE,
            Action.SETTINGS_MANAGE,
            Action.API_CLIENTS_MANAGE,
            Action.METRICS_SCRAPE,
            Action.API_DOCS,
        }
    ),
    Role.SUPERVISOR: _DISPATCHER
    | {
        Action.VIEWER_TOKEN_REVOKE,
        Action.EVIDENCE_DOWNLOAD,
        Action.AUDIT_READ,
        Action.AUDIT_EXPORT,
        Action.AUDIT_PURGE,
    },
    Role.DISPATCHER: _DISPATCHER,
    Role.TECH: frozenset(
        {
            Action.DEVICES_HEALTH,
            Action.DEVICES_PROVISION,
            Action.METRICS_SCRAPE,
            Action.API_DOCS,
        }
    ),
    Role.PATROL: frozenset({Action.SHARES_RECEIVE, Action.SHARES_OPEN}),
}

# Programs act through scopes. Managing people, settings, keys, shares, provisioning and the
# audit purge stay with signed-in people: no scope grants them.
SCOPE_ACTIONS: dict[Scope, frozenset[Action]] = {
    Scope.UNITS_READ: frozenset({Action.UNITS_LIST, Action.UNIT_VIEW}),
    Scope.UNITS_COMMAND: frozenset({Action.COMMAND_SEND}),
    Scope.STREAMS_START: frozenset({Action.REMOTE_START}),
    Scope.STREAMS_WATCH: frozenset({Action.LIVE_WATCH, Action.STREAMS_LIST}),
    Scope.STREAMS_MANAGE: frozenset(
        {Action.STREAMS_LIST, Action.STREAM_STOP, Action.VIEWER_TOKEN_REVOKE}
    ),
    Scope.EVIDENCE_READ: frozenset({Action.EVIDENCE_SEARCH, Action.EVIDENCE_VERIFY}),
    Scope.EVIDENCE_PLAYBACK: frozenset({Action.EVIDENCE_PLAYBACK}),
    Scope.EVIDENCE_DOWNLOAD: frozenset({Action.EVIDENCE_DOWNLOAD}),
    Scope.ALERTS_READ: frozenset({Action.ALERTS_READ}),
    Scope.ALERTS_ACKNOWLEDGE: frozenset({Action.ALERTS_ACKNOWLEDGE}),
    Scope.AUDIT_READ: frozenset({Action.AUDIT_READ, Action.AUDIT_EXPORT}),
    Scope.DEVICES_READ: frozenset({Action.DEVICES_HEALTH}),
    Scope.METRICS_SCRAPE: frozenset({Action.METRICS_SCRAPE}),
}

# Actions that are refused without a stated reason (free text and/or incident number).
REASON_REQUIRED: frozenset[Action] = frozenset({Action.REMOTE_START})

# Roles that sign in with a second factor (TOTP) besides the password.
SECOND_FACTOR_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.DISPATCHER})


def allowed(role: Role, action: Action) -> bool:
    return action in POLICY[role]


def client_allowed(scopes: Iterable[Scope], action: Action) -> bool:
    return any(action in SCOPE_ACTIONS[scope] for scope in scopes)


def needs_reason(action: Action) -> bool:
    return action in REASON_REQUIRED


def needs_second_factor(role: Role) -> bool:
    return role in SECOND_FACTOR_ROLES


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: a signed-in person (by role) or an API client (by scopes)."""

    name: str
    role: Role | None = None
    scopes: frozenset[Scope] = frozenset()
    unit_id: str | None = None  # a patrol login's vehicle: what is shared with it

    def __post_init__(self) -> None:
        if (self.role is None) == (not self.scopes):
            raise ValueError("a principal is a person with a role or a client with scopes")

    def may(self, action: Action) -> bool:
        if self.role is not None:
            return allowed(self.role, action)
        return client_allowed(self.scopes, action)

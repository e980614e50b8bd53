"""Who is asking, and may they. Every HTTP route but `/healthz` names the action it does
(`Depends(gate.require(Action...))`); the gate finds the caller — a browser session by its
cookie, or a program by its API key — asks the one policy table, and audits what it must:
refusals, session locks, and API key use (once a minute per key, since a CAD integration
polls). State-changing requests on a session also need its CSRF token in a header.

The lookups are blocking database calls: the dependencies are plain functions, which FastAPI
runs in its thread pool, never on the event loop."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import JsonValue

from central.access import sessions
from central.access.credentials import (
    KEY_PREFIX,
    ApiKey,
    KeyCheck,
    check_api_key,
    hash_secret,
    key_id_of,
)
from central.access.policy import Action, Principal, Role, Scope
from central.access.settings import AccessSettings
from central.db.anchors import AnchorFile
from central.db.api_clients import ApiClients
from central.db.audit import Audit
from central.db.audit_chain import AuditEntry
from central.db.engine import Database
from central.db.sessions import SessionRecord, Sessions
from central.db.users import User, Users
from central.errors import Forbidden, NotAuthorized

log = structlog.get_logger("rtcc.gate")

SESSION_COOKIE = "rtcc_session"
CSRF_COOKIE = "rtcc_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEY_USE_AUDIT_S = 60.0
MAX_TOUCH_INTERVAL_S = 15.0
MAX_KEYS_REMEMBERED = 10_000
# How the OpenAPI document names the two ways in; `identify` does the checking.
SESSION_SCHEME = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="A person's session (sign in first)."
)
KEY_SCHEME = HTTPBearer(auto_error=False, description="A program's API key: rtcc_<id>_<secret>.")


def csrf_token(session_id: str) -> str:
    """The session's CSRF token: derived from its id (one-way), so it needs no storage and
    a page can read it from a cookie that, unlike the session's, scripts may see."""
    return hash_secret("csrf:" + session_id)[:40]


def check_csrf(request: Request, session_id: str) -> None:
    given = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(given.encode(), csrf_token(session_id).encode()):
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request, from where, and through which credential."""

    principal: Principal
    source: str
    session_hash: str | None = None
    key_id: str | None = None

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def role(self) -> str:
        role = self.principal.role
        return role.value if role is not None else "api_client"


def source_of(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def as_session(record: SessionRecord) -> sessions.Session:
    # The rows keep finer reasons (password_reset, user_disabled): all end the session.
    reason = None
    if record.end_reason is not None:
        known = {r.value for r in sessions.EndReason}
        given = record.end_reason
        reason = sessions.EndReason(given if given in known else "ended_by_admin")
    return sessions.Session(
        record.token_hash,
        record.user,
        record.created_at,
        record.last_seen_at,
        record.locked_at,
        record.ended_at,
        reason,
    )


def session_and_user(database: Database, token_hash: str) -> tuple[SessionRecord, User]:
    """The session and its user; NotAuthorized when either is gone or the user is disabled."""
    with database.read() as tx:
        record = Sessions(tx).get(token_hash)
        user = Users(tx).get(record.user) if record is not None else None
    if record is None or user is None or user.disabled:
        raise NotAuthorized("sign in first", session="none")
    return record, user


class Gate:
    def __init__(
        self,
        database: Database,
        settings: AccessSettings,
        anchors: AnchorFile | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.settings = settings
        self.anchors = anchors
        self._clock = clock
        self._key_audited: dict[str, float] = {}
        self._lock = threading.Lock()
        idle = settings.sessions.idle_lock_s
        self._touch_every = min(MAX_TOUCH_INTERVAL_S, idle / 10)

    # ---- who is asking ------------------------------------------------------------------

    def require(self, action: Action) -> Callable[..., Caller]:
        """A route dependency: the caller, if they may do `action`; else 401 or 403."""

        def allowed_caller(
            request: Request,
            _session: Annotated[str | None, Depends(SESSION_SCHEME)],
            _key: Annotated[HTTPAuthorizationCredentials | None, Depends(KEY_SCHEME)],
        ) -> Caller:
            caller = self.identify(request)
            if not caller.principal.may(action):
                self.audit(caller, "access.denied", "refused", request.url.path, {"action": action})
                raise Forbidden(f"{caller.role} {caller.name} may not {action.value}")
            return caller

        return allowed_caller

    def identify(self, request: Request) -> Caller:
        source = source_of(request)
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, presented = authorization.partition(" ")
            presented = presented.strip()
            if scheme.lower() != "bearer" or not presented.startswith(KEY_PREFIX):
                raise NotAuthorized("Authorization must be 'Bearer rtcc_...' (an API key)")
            return self._by_key(presented, source)
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            raise NotAuthorized("sign in first", session="none")
        if request.method not in SAFE_METHODS:
            check_csrf(request, session_id)
        return self._by_session(session_id, source)

    def _by_session(self, session_id: str, source: str) -> Caller:
        now = self._clock()
        token_hash = hash_secret(session_id)
        record, user = session_and_user(self.database, token_hash)
        settings = self.settings.sessions
        session = as_session(record)
        try:
            sessions.use(session, settings, now, user.sessions_valid_after)
        except sessions.SessionRefused as refused:
            if refused.state is sessions.SessionState.LOCKED and record.locked_at is None:
                self._record_lock(session, user.role, source, now)
            state = refused.state.value
            raise NotAuthorized(f"session {state}", session=state) from None
        if now - record.last_seen_at >= self._touch_every:
            with self.database.write() as tx:
                Sessions(tx).touch(token_hash, now)
        principal = Principal(user.name, role=Role(user.role))
        return Caller(principal, source, session_hash=token_hash)

    def _record_lock(self, session: sessions.Session, role: str, source: str, now: float) -> None:
        locked = sessions.lock(session, self.settings.sessions, now)
        with self.database.write() as tx:
            if locked.locked_at is not None and Sessions(tx).lock(
                session.token_hash, locked.locked_at
            ):
                entry = AuditEntry(now, session.user, "session.lock", "ok", role, source)
                Audit(tx).append(entry)

    def _by_key(self, presented: str, source: str) -> Caller:
        now = self._clock()
        key_id = key_id_of(presented)
        with self.database.read() as tx:
            client = ApiClients(tx).get(key_id) if key_id is not None else None
        record = None
        if client is not None:
            scopes = frozenset(Scope(s) for s in client.scopes if s in Scope.__members__.values())
            record = ApiKey(
                client.key_id,
                client.key_hash,
                client.name,
                scopes,
                client.created_at,
                client.expires_at,
                client.revoked_at,
            )
        check = check_api_key(record, presented, now)
        if record is None or check is not KeyCheck.VALID or not record.scopes:
            name = record.client if record is not None else "unknown"
            refusal = AuditEntry(now, name, "apikey.use", check.value, "api_client", source, key_id)
            self.append(refusal)
            raise NotAuthorized(f"API key {check.value}")
        caller = Caller(Principal(record.client, scopes=record.scopes), source, key_id=key_id)
        if self._first_use_in_a_while(record.key_id, now):
            with self.database.write() as tx:
                ApiClients(tx).touch(record.key_id, now)
                Audit(tx).append(
                    AuditEntry(now, caller.name, "apikey.use", "ok", caller.role, source, key_id)
                )
        return caller

    def _first_use_in_a_while(self, key_id: str, now: float) -> bool:
        with self._lock:
            last = self._key_audited.get(key_id)
            if last is not None and now - last < KEY_USE_AUDIT_S:
                return False
            if len(self._key_audited) >= MAX_KEYS_REMEMBERED:
                self._key_audited.clear()
            self._key_audited[key_id] = now
            return True

    # ---- the audit log ------------------------------------------------------------------

    def audit(
        self,
        caller: Caller,
        action: str,
        outcome: str,
        obj: str | None = None,
        detail: Mapping[str, JsonValue] | None = None,
    ) -> None:
        """Appends one record about what `caller` did (blocking: call it in a thread from
        the event loop)."""
        entry = AuditEntry(
            self._clock(),
            caller.name,
            action,
            outcome,
            caller.role,
            caller.source,
            obj,
            dict(detail or {}),
        )
        self.append(entry)

    def append(self, entry: AuditEntry) -> None:
        with self.database.write() as tx:
            Audit(tx).append(entry)

    def anchor(self) -> None:
        """Writes the chain's head to the anchor file when it moved (call it every little
        while and at shutdown)."""
        if self.anchors is None:
            return
        with self.database.read() as tx:
            head = Audit(tx).head()
        self.anchors.record(head, self._clock())

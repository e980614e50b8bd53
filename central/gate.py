"""Who is asking, and may they. Every HTTP route for people and programs names the action
it does (`Depends(gate.require(Action...))`): all but `/healthz`, the pages that hold no data
(`/`, `/view/{id}`), the media routes (their stream tokens are checked by the relay front)
and the units' evidence uploads (signed by the unit; device certificates come with
provisioning). The gate finds the caller — a browser session by its cookie, or a program by
its API key — asks the one policy table, and audits what it must: denials, session locks,
and API key use and refusals (once a minute per key or address, with a count, since a CAD
integration polls and a script may hammer). Changes on a session also need its CSRF token
in a header.

The lookups are blocking database calls: the dependencies are plain functions, which FastAPI
runs in its thread pool, never on the event loop."""

from __future__ import annotations

import asyncio
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
from central.access.tally import AuditTally
from central.db.anchors import AnchorFile
from central.db.api_clients import ApiClients, find_key
from central.db.audit import Audit
from central.db.audit_chain import AuditEntry
from central.db.engine import Database
from central.db.sessions import SessionHolder, SessionRecord, Sessions, find_holder
from central.errors import Forbidden, NotAuthorized

log = structlog.get_logger("rtcc.gate")

SESSION_COOKIE = "rtcc_session"
CSRF_COOKIE = "rtcc_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEY_USE_AUDIT_S = 60.0
MAX_TOUCH_INTERVAL_S = 15.0
TOUCH_FLUSH_S = 1.0
MAX_KEYS_REMEMBERED = 10_000
MAX_AUDITED_PATH = 200  # the audit record's object column holds 256
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


def session_holder(database: Database, token_hash: str) -> SessionHolder:
    """The session and its user's standing; NotAuthorized when it is unknown or the user is
    disabled."""
    with database.lookup() as connection:
        holder = find_holder(connection, token_hash)
    if holder is None or holder.disabled:
        raise NotAuthorized("sign in first", session="none")
    return holder


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
        self._tally = AuditTally(KEY_USE_AUDIT_S, MAX_KEYS_REMEMBERED)
        self._touches: dict[str, float] = {}  # session use not yet written
        self._lock = threading.Lock()
        idle = settings.sessions.idle_lock_s
        self._touch_every = min(MAX_TOUCH_INTERVAL_S, idle / 10)

    # ---- who is asking ------------------------------------------------------------------

    def require(self, action: Action, *alternatives: Action) -> Callable[..., Caller]:
        """A route dependency: the caller, if they may do `action` (or one of the
        `alternatives`: the route then serves each what it may see); else 401 or 403."""
        actions = (action, *alternatives)

        def allowed_caller(
            request: Request,
            _session: Annotated[str | None, Depends(SESSION_SCHEME)],
            _key: Annotated[HTTPAuthorizationCredentials | None, Depends(KEY_SCHEME)],
        ) -> Caller:
            caller = self.identify(request)
            if not any(caller.principal.may(a) for a in actions):
                path = request.url.path[:MAX_AUDITED_PATH]
                self.audit(caller, "access.denied", "refused", path, {"action": action})
                raise Forbidden(f"{caller.role} {caller.name} may not {action.value}")
            return caller

        return allowed_caller

    def identify(self, request: Request, touch: bool = True) -> Caller:
        """Who asks; `touch=False` checks a session still holds without counting it as
        used (a page's open live feed is not a person at the keyboard)."""
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
        return self._by_session(session_id, source, touch)

    def _by_session(self, session_id: str, source: str, touch: bool = True) -> Caller:
        now = self._clock()
        token_hash = hash_secret(session_id)
        holder = session_holder(self.database, token_hash)
        record = holder.session
        settings = self.settings.sessions
        session = as_session(record)
        try:
            sessions.use(session, settings, now, holder.sessions_valid_after)
        except sessions.SessionRefused as refused:
            if refused.state is sessions.SessionState.LOCKED and record.locked_at is None:
                self._record_lock(session, holder.role, source, now)
            state = refused.state.value
            raise NotAuthorized(f"session {state}", session=state) from None
        if touch and now - record.last_seen_at >= self._touch_every:
            with self._lock:
                self._touches[token_hash] = now
        try:
            role = Role(holder.role)
        except ValueError:
            raise NotAuthorized("this account has no valid role", session="none") from None
        principal = Principal(record.user, role=role, unit_id=holder.unit_id)
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
        with self.database.lookup() as connection:
            client = find_key(connection, key_id) if key_id is not None else None
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
            # Per address, not per key: varying the key must not buy more writes.
            self._tallied(("refused", source), name, check.value, source, key_id)
            raise NotAuthorized(f"API key {check.value}")
        caller = Caller(Principal(record.client, scopes=record.scopes), source, key_id=key_id)
        self._tallied(("used", key_id), caller.name, "ok", source, key_id, touch=True)
        return caller

    def _tallied(
        self,
        key: tuple[str, str | None],
        actor: str,
        outcome: str,
        source: str,
        key_id: str | None,
        touch: bool = False,
    ) -> None:
        """An `apikey.use` record, when one is due for `key` (see AuditTally)."""
        now = self._clock()
        with self._lock:
            folded = self._tally.due(key, now)
        if folded is None:
            return
        detail: dict[str, JsonValue] = {"folded": folded} if folded else {}
        entry = AuditEntry(now, actor, "apikey.use", outcome, "api_client", source, key_id, detail)
        try:
            with self.database.write() as tx:
                if touch and key_id is not None:
                    ApiClients(tx).touch(key_id, now)
                Audit(tx).append(entry)
        except Exception:
            with self._lock:
                self._tally.unrecorded(key, folded)
            raise

    async def keep_sessions_current(self) -> None:
        """Writes the sessions' last use every TOUCH_FLUSH_S, off the requests' path (the
        idle lock is counted from it, so it may lag by that much)."""
        while True:
            await asyncio.sleep(TOUCH_FLUSH_S)
            await asyncio.to_thread(self.flush_touches)

    def flush_touches(self) -> None:
        with self._lock:
            pending, self._touches = self._touches, {}
        if pending:
            with self.database.write() as tx:
                for token_hash, used_at in pending.items():
                    Sessions(tx).touch(token_hash, used_at)

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

"""Signing in, unlocking a locked session and signing out, against the database; the
decisions are the pure cores' (`central.access.signin`, `.sessions`, `.throttle`).

An attempt reads the counts, decides (hashing the password outside any transaction, so a
slow hash never holds the database's write lock), then counts a failure on the counts as
they are by then: two attempts at once cannot both be forgotten. Attempts on one account
in this process wait for each other, so a burst cannot outrun the throttle. Every attempt is
audited, with its outcome, the name typed and the address it came from.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from central.access import sessions
from central.access.credentials import hash_secret, new_session_id
from central.access.passwords import PasswordHasher
from central.access.policy import Role
from central.access.settings import AccessSettings
from central.access.signin import Attempt, Credentials, Outcome, SignInDesk, SignInResult
from central.access.throttle import Failures, SignInThrottle
from central.db.audit import Audit
from central.db.audit_chain import AuditEntry
from central.db.engine import Database
from central.db.sessions import Sessions
from central.db.users import AddressFailures, FailureCount, User, Users
from central.errors import NotAuthorized
from central.gate import as_session, csrf_token, session_and_user

MAX_ACCOUNT_LOCKS = 4096


@dataclass(frozen=True, slots=True)
class SignedIn:
    """`session_id` goes into the HttpOnly cookie; `csrf` into the page's header."""

    session_id: str
    csrf: str
    user: str
    role: Role
    expires_at: float


def _failures(count: FailureCount) -> Failures:
    return Failures(count.count, count.last_at, count.locked_until)


def _stored(failures: Failures) -> FailureCount:
    return FailureCount(failures.count, failures.last_at, failures.locked_until)


class SignInService:
    def __init__(
        self, database: Database, settings: AccessSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self.database = database
        self.settings = settings
        self.hasher = PasswordHasher(settings.passwords)
        self.desk = SignInDesk(self.hasher, SignInThrottle(settings.throttle))
        self._clock = clock
        self._accounts: dict[str, threading.Lock] = {}
        self._accounts_lock = threading.Lock()

    def sign_in(self, name: str, password: str, code: str | None, source: str) -> SignedIn:
        """Blocking (the password hash): call it in a thread. Raises NotAuthorized saying
        only what the person may know (locked, wait, or wrong), with `retry_after_s`."""
        with self._account_lock(name):
            now = self._clock()
            with self.database.read() as tx:
                user = Users(tx).get(name)
                address = AddressFailures(tx).get(source)
            account = user.failures if user is not None else FailureCount()
            attempt = Attempt(password, code or None, _failures(account), _failures(address), now)
            result = self.desk.sign_in(_credentials(user), attempt)
            return self._settle(name, user, result, source, now)

    def _settle(
        self, name: str, user: User | None, result: SignInResult, source: str, now: float
    ) -> SignedIn:
        role = user.role if user is not None else None
        issued = new_session_id()
        with self.database.write() as tx:
            users = Users(tx)
            self._count(tx, users, name if user is not None else None, result, source, now)
            if result.signed_in and user is not None:
                users.set_signed_in(name, now, result.totp_step, result.new_password_hash)
                Sessions(tx).create(issued.token_hash, name, now, source)
            detail: dict[str, str | float] = {}
            if result.retry_after_s:
                detail["retry_after_s"] = round(result.retry_after_s, 1)
            outcome = "ok" if result.signed_in else result.outcome.value
            Audit(tx).append(AuditEntry(now, name, "signin", outcome, role, source, None, detail))
        if not result.signed_in or user is None:
            raise _refusal(result)
        expires = now + self.settings.sessions.absolute_s
        return SignedIn(issued.token, csrf_token(issued.token), name, Role(user.role), expires)

    def _count(
        self,
        tx: Session,
        users: Users,
        name: str | None,
        result: SignInResult,
        source: str,
        now: float,
    ) -> None:
        """Stores the counts after the attempt, recounted on the rows as they are now."""
        if result.outcome not in (Outcome.WRONG, Outcome.SIGNED_IN):
            return
        addresses = AddressFailures(tx)
        fresh_address = _failures(addresses.get(source, for_update=True))
        fresh_account = Failures()
        if name is not None:
            found = users.get(name, for_update=True)
            fresh_account = _failures(found.failures) if found is not None else Failures()
        account, address = self.desk.throttle.record(
            fresh_account, fresh_address, result.signed_in, now
        )
        addresses.store(source, _stored(address))
        if name is not None and not result.signed_in:
            users.store_failures(name, _stored(account), now)

    def unlock(self, session_id: str, password: str, source: str) -> SignedIn:
        """The password again on a locked session opens it (audited either way)."""
        now = self._clock()
        token_hash = hash_secret(session_id)
        record, user = session_and_user(self.database, token_hash)
        password_ok = self.hasher.verify(user.password_hash, password)
        settings = self.settings.sessions
        refusal: NotAuthorized | None = None
        with self.database.write() as tx:
            try:
                sessions.unlock(
                    as_session(record), settings, now, password_ok, user.sessions_valid_after
                )
            except sessions.SessionRefused as refused:
                outcome = "wrong_credentials" if not password_ok else refused.state.value
                entry = AuditEntry(now, user.name, "session.unlock", outcome, user.role, source)
                Audit(tx).append(entry)
                refusal = NotAuthorized("wrong password", session=refused.state.value)
                if refused.state in (sessions.SessionState.EXPIRED, sessions.SessionState.ENDED):
                    refusal = NotAuthorized("sign in again", session=refused.state.value)
            else:
                Sessions(tx).unlock(token_hash, now)
                entry = AuditEntry(now, user.name, "session.unlock", "ok", user.role, source)
                Audit(tx).append(entry)
        if refusal is not None:
            raise refusal
        expires = sessions.expires_at(as_session(record), settings)
        return SignedIn(session_id, csrf_token(session_id), user.name, Role(user.role), expires)

    def sign_out(self, session_id: str, source: str) -> None:
        """Ends the session everywhere (every center process shares the row) and revokes
        the viewer tokens issued in it."""
        now = self._clock()
        token_hash = hash_secret(session_id)
        with self.database.write() as tx:
            record = Sessions(tx).get(token_hash)
            if record is None or not Sessions(tx).end(token_hash, now, "signed_out"):
                return
            user = Users(tx).get(record.user)
            role = user.role if user is not None else None
            Audit(tx).append(AuditEntry(now, record.user, "signout", "ok", role, source))

    def _account_lock(self, name: str) -> threading.Lock:
        with self._accounts_lock:
            if len(self._accounts) >= MAX_ACCOUNT_LOCKS:
                self._accounts.clear()
            return self._accounts.setdefault(name, threading.Lock())


def _credentials(user: User | None) -> Credentials | None:
    if user is None:
        return None
    return Credentials(
        user.name,
        Role(user.role),
        user.password_hash,
        user.disabled,
        user.totp_secret,
        user.last_totp_step,
    )


def _refusal(result: SignInResult) -> NotAuthorized:
    messages = {
        Outcome.LOCKED: "account locked after repeated failures; try again later",
        Outcome.TOO_SOON: "too many attempts; wait before trying again",
        Outcome.SECOND_FACTOR_NOT_ENROLLED: "this role needs a second factor: ask an admin "
        "to enroll one (rtcc users totp NAME)",
    }
    message = messages.get(result.outcome, "wrong name, password or code")
    retry = round(result.retry_after_s, 1)
    return NotAuthorized(message, outcome=result.outcome.value, retry_after_s=retry)

"""Signing in, unlocking a locked session and signing out, against the database; the
decisions are the pure cores' (`central.access.signin`, `.sessions`, `.throttle`).

An attempt reads the counts, decides (hashing the password outside any transaction, so a
slow hash never holds the database's write lock), then settles on the counts as they are by
then, locked for update: an attempt admitted on counts another attempt has since raised to
a lock is refused after all, and a failure is counted on the newest count. Attempts on one
account in this process wait for each other. A name nobody has is counted like an account
(under a hash of the name), so that waits and locks tell nothing about which names exist.
A TOTP step is taken once per account, across center processes. Unlocking a locked session
is a password attempt like any other: throttled, counted, and a lockout ends the session.
Every attempt is audited with its real outcome; the person is told only wrong, wait or
locked.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from central.access import sessions
from central.access.credentials import hash_secret, new_session_id
from central.access.passwords import PasswordHasher
from central.access.policy import Role
from central.access.settings import AccessSettings
from central.access.signin import Attempt, Credentials, Outcome, SignInDesk, SignInResult
from central.access.throttle import Failures, Refusal, SignInThrottle
from central.db.audit import Audit
from central.db.audit_chain import AuditEntry
from central.db.engine import Database
from central.db.sessions import SessionHolder, Sessions
from central.db.users import AddressFailures, FailureCount, User, Users
from central.errors import NotAuthorized
from central.gate import as_session, csrf_token, session_holder

MAX_ACCOUNT_LOCKS = 4096
WRONG = "wrong name, password or code"


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


def _unknown_name_key(name: str) -> str:
    """Where the failures of a name nobody has are counted (the address table's rows)."""
    return "name:" + hashlib.sha256(name.encode()).hexdigest()[:40]


class _Counts:
    """The account's and the address's failure counts in one transaction."""

    def __init__(self, tx: Session, name: str, known: bool, source: str) -> None:
        self.users = Users(tx)
        self.addresses = AddressFailures(tx)
        self.name = name
        self.known = known
        self.source = source

    def read(self, for_update: bool = False) -> tuple[Failures, Failures]:
        if self.known:
            user = self.users.get(self.name, for_update=for_update)
            account = user.failures if user is not None else FailureCount()
        else:
            account = self.addresses.get(_unknown_name_key(self.name), for_update=for_update)
        address = self.addresses.get(self.source, for_update=for_update)
        return _failures(account), _failures(address)

    def store(self, account: Failures, address: Failures, now: float) -> None:
        self.addresses.store(self.source, _stored(address))
        if self.known:
            self.users.store_failures(self.name, _stored(account), now)
        else:
            self.addresses.store(_unknown_name_key(self.name), _stored(account))


class SignInService:
    def __init__(
        self, database: Database, settings: AccessSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self.database = database
        self.settings = settings
        self.hasher = PasswordHasher(settings.passwords)
        self.throttle = SignInThrottle(settings.throttle)
        self.desk = SignInDesk(self.hasher, self.throttle)
        self._clock = clock
        self._accounts: dict[str, threading.Lock] = {}
        self._accounts_lock = threading.Lock()

    def sign_in(self, name: str, password: str, code: str | None, source: str) -> SignedIn:
        """Blocking (the password hash): call it in a thread. Raises NotAuthorized saying
        only what the person may know (wrong, wait, or locked), with `retry_after_s`."""
        with self._account_lock(name):
            now = self._clock()
            with self.database.read() as tx:
                user = Users(tx).get(name)
                account, address = _Counts(tx, name, user is not None, source).read()
            attempt = Attempt(password, code or None, account, address, now)
            result = self.desk.sign_in(_credentials(user), attempt)
            return self._settle(name, user, result, source, now)

    def _settle(
        self, name: str, user: User | None, result: SignInResult, source: str, now: float
    ) -> SignedIn:
        issued = new_session_id()
        with self.database.write() as tx:
            result = self._recount(_Counts(tx, name, user is not None, source), result, now)
            if result.signed_in and user is not None:
                if result.totp_step is not None and not Users(tx).use_totp_step(
                    name, result.totp_step
                ):
                    result = self._recount(_Counts(tx, name, True, source), _replayed(result), now)
                else:
                    Users(tx).set_signed_in(name, now, result.new_password_hash)
                    Sessions(tx).create(issued.token_hash, name, now, source)
            detail: dict[str, str | float] = {}
            if result.retry_after_s:
                detail["retry_after_s"] = round(result.retry_after_s, 1)
            outcome = "ok" if result.signed_in else result.outcome.value
            role = user.role if user is not None else None
            Audit(tx).append(AuditEntry(now, name, "signin", outcome, role, source, None, detail))
        if not result.signed_in or user is None:
            raise _refusal(result)
        expires = now + self.settings.sessions.absolute_s
        return SignedIn(issued.token, csrf_token(issued.token), name, Role(user.role), expires)

    def _recount(self, counts: _Counts, result: SignInResult, now: float) -> SignInResult:
        """`result` settled on the counts as they are now (locked for update): stored when
        the attempt was checked, and refused after all when they lock it out by now."""
        if result.outcome not in (Outcome.WRONG, Outcome.SIGNED_IN):
            return result
        account, address = counts.read(for_update=True)
        if result.signed_in:
            admission = self.throttle.admit(account, address, now)
            if admission.refusal is not None:
                outcome = (
                    Outcome.LOCKED if admission.refusal is Refusal.LOCKED else Outcome.TOO_SOON
                )
                return SignInResult(outcome, account, address, admission.retry_after_s)
        account, address = self.throttle.record(account, address, result.signed_in, now)
        counts.store(account, address, now)
        return replace(result, account_failures=account, address_failures=address)

    def unlock(self, session_id: str, password: str, source: str) -> SignedIn:
        """The password again on a locked session opens it: throttled and counted like a
        sign-in (a lockout ends the session), audited either way."""
        token_hash = hash_secret(session_id)
        holder = session_holder(self.database, token_hash)
        name = holder.session.user
        with self._account_lock(name):
            now = self._clock()
            with self.database.read() as tx:
                account, address = _Counts(tx, name, True, source).read()
            admission = self.throttle.admit(account, address, now)
            ok = admission.admitted and self.hasher.verify(holder.password_hash, password)
            with self.database.write() as tx:
                refusal = self._settle_unlock(tx, holder, admission.refusal, ok, source, now)
        if refusal is not None:
            raise refusal
        settings = self.settings.sessions
        expires = sessions.expires_at(as_session(holder.session), settings)
        return SignedIn(session_id, csrf_token(session_id), name, Role(holder.role), expires)

    def _settle_unlock(
        self,
        tx: Session,
        holder: SessionHolder,
        throttled: Refusal | None,
        password_ok: bool,
        source: str,
        now: float,
    ) -> NotAuthorized | None:
        """Records the unlock attempt; the refusal to raise, if any."""
        record, name = holder.session, holder.session.user

        def audit(outcome: str) -> None:
            entry = AuditEntry(now, name, "session.unlock", outcome, holder.role, source)
            Audit(tx).append(entry)

        if throttled is not None:
            audit(throttled.value)
            return NotAuthorized(_MESSAGES[Outcome(throttled.value)], session="locked")
        counts = _Counts(tx, name, True, source)
        account, address = counts.read(for_update=True)
        account, address = self.throttle.record(account, address, password_ok, now)
        counts.store(account, address, now)
        if not password_ok:
            audit("wrong_credentials")
            if account.locked_until is not None:
                Sessions(tx).end(record.token_hash, now, "locked_out")
                return NotAuthorized(_MESSAGES[Outcome.LOCKED], session="ended")
            return NotAuthorized("wrong password", session="locked")
        try:
            sessions.unlock(
                as_session(record), self.settings.sessions, now, True, holder.sessions_valid_after
            )
        except sessions.SessionRefused as refused:
            audit(refused.state.value)
            return NotAuthorized("sign in again", session=refused.state.value)
        Sessions(tx).unlock(record.token_hash, now)
        audit("ok")
        return None

    def sign_out(self, session_id: str, source: str) -> None:
        """Ends the session everywhere (every center process shares the row) and revokes
        the viewer tokens issued in it."""
        token_hash = hash_secret(session_id)
        with self.database.write() as tx:
            now = self._clock()
            holder = Sessions(tx).holder(token_hash)
            if holder is None or not Sessions(tx).end(token_hash, now, "signed_out"):
                return
            name = holder.session.user
            Audit(tx).append(AuditEntry(now, name, "signout", "ok", holder.role, source))

    def _account_lock(self, name: str) -> threading.Lock:
        """The lock attempts on `name` in this process take turns on. A full table is
        trimmed of the locks nobody holds, never of one in use."""
        with self._accounts_lock:
            if len(self._accounts) >= MAX_ACCOUNT_LOCKS:
                for held_name, lock in list(self._accounts.items()):
                    if not lock.locked():
                        del self._accounts[held_name]
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


def _replayed(result: SignInResult) -> SignInResult:
    """A code whose step another attempt took first: a wrong code, counted as one."""
    return SignInResult(Outcome.WRONG, result.account_failures, result.address_failures)


_MESSAGES = {
    Outcome.LOCKED: "locked after repeated failures; try again later",
    Outcome.TOO_SOON: "too many attempts; wait before trying again",
}


def _refusal(result: SignInResult) -> NotAuthorized:
    """Only wrong, wait or locked: a disabled account or a missing second factor reads as
    wrong, so that no answer confirms a password."""
    message = _MESSAGES.get(result.outcome, WRONG)
    outcome = result.outcome if result.outcome in _MESSAGES else Outcome.WRONG
    retry = round(result.retry_after_s, 1)
    return NotAuthorized(message, outcome=outcome.value, retry_after_s=retry)

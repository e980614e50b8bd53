"""People who sign in, and the failed sign-ins counted per account and per source address.

Repositories work inside a transaction the caller opens (`Database.write()` or `.read()`),
so that one request's changes and its audit record commit together. Times are epoch
seconds; the caller passes `now`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.db.models import AddressFailuresRow, UserRow
from central.db.records import record_of
from central.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: str
    password_hash: str
    totp_secret: str | None
    last_totp_step: int | None
    disabled: bool
    failed_attempts: int
    last_failed_at: float | None
    locked_until: float | None
    sessions_valid_after: float | None
    created_at: float
    updated_at: float
    unit_id: str | None = None

    @classmethod
    def of(cls, row: UserRow) -> User:
        return record_of(cls, row)

    @property
    def failures(self) -> FailureCount:
        return FailureCount(self.failed_attempts, self.last_failed_at, self.locked_until)


@dataclass(frozen=True, slots=True)
class FailureCount:
    """Consecutive failed sign-ins of one account or address (what the throttle keeps)."""

    count: int = 0
    last_at: float | None = None
    locked_until: float | None = None


class Users:
    def __init__(self, session: Session) -> None:
        self._session = session

    def create(
        self,
        name: str,
        role: str,
        password_hash: str,
        now: float,
        totp_secret: str | None = None,
        unit_id: str | None = None,
    ) -> User:
        """Raises Conflict when the name is taken."""
        row = UserRow(
            name=name,
            role=role,
            unit_id=unit_id,
            password_hash=password_hash,
            totp_secret=totp_secret,
            disabled=False,
            failed_attempts=0,
            created_at=now,
            updated_at=now,
        )
        try:
            with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError:
            raise Conflict(f"user {name} exists") from None
        return User.of(row)

    def get(self, name: str, *, for_update: bool = False) -> User | None:
        """`for_update` locks the row until the transaction ends (PostgreSQL; an SQLite
        write transaction holds the whole file already)."""
        row = self._row(name, for_update)
        return None if row is None else User.of(row)

    def get_by_id(self, user_id: int) -> User | None:
        row = self._session.get(UserRow, user_id)
        return None if row is None else User.of(row)

    def all(self) -> list[User]:
        rows = self._session.scalars(select(UserRow).order_by(UserRow.name))
        return [User.of(row) for row in rows]

    def patrol_logins(self) -> dict[str, list[str]]:
        """unit id -> the enabled patrol logins bound to it."""
        rows = self._session.execute(
            select(UserRow.unit_id, UserRow.name)
            .where(UserRow.unit_id.is_not(None), UserRow.disabled.is_(False))
            .order_by(UserRow.name)
        )
        found: dict[str, list[str]] = {}
        for unit_id, name in rows:
            found.setdefault(unit_id, []).append(name)
        return found

    def set_role(self, name: str, role: str, now: float) -> User:
        return self._change(name, now, role=role)

    def set_password(self, name: str, password_hash: str, now: float) -> User:
        return self._change(name, now, password_hash=password_hash)

    def set_totp_secret(self, name: str, secret: str | None, now: float) -> User:
        return self._change(name, now, totp_secret=secret, last_totp_step=None)

    def set_signed_in(self, name: str, now: float, password_hash: str | None) -> User:
        """A successful sign-in: its failures are cleared, and a password hashed at an
        older cost is stored at the current one."""
        values: dict[str, object] = {
            "failed_attempts": 0,
            "last_failed_at": None,
            "locked_until": None,
        }
        if password_hash is not None:
            values["password_hash"] = password_hash
        return self._change(name, now, **values)

    def use_totp_step(self, name: str, step: int) -> bool:
        """Takes TOTP step `step` for the account unless it (or a later one) was taken
        already, by any center process: a code is accepted once."""
        taken = self._session.execute(
            update(UserRow)
            .where(
                UserRow.name == name,
                (UserRow.last_totp_step.is_(None)) | (UserRow.last_totp_step < step),
            )
            .values(last_totp_step=step)
        )
        return bool(getattr(taken, "rowcount", 0))

    def set_disabled(self, name: str, disabled: bool, now: float) -> User:
        return self._change(name, now, disabled=disabled)

    def store_failures(self, name: str, failures: FailureCount, now: float) -> User:
        return self._change(
            name,
            now,
            failed_attempts=failures.count,
            last_failed_at=failures.last_at,
            locked_until=failures.locked_until,
        )

    def _row(self, name: str, for_update: bool = False) -> UserRow | None:
        query = select(UserRow).where(UserRow.name == name)
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self._session.scalars(query).one_or_none()

    def _change(self, name: str, now: float, **values: object) -> User:
        row = self._row(name)
        if row is None:
            raise NotFound(f"no user {name}")
        for column, value in values.items():
            setattr(row, column, value)
        row.updated_at = now
        self._session.flush()
        return User.of(row)


class AddressFailures:
    """Failed sign-ins per source address; `get(..., for_update=True)` then `store` counts
    an attempt without losing one to a concurrent center process."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, address: str, *, for_update: bool = False) -> FailureCount:
        if for_update:
            self._ensure_row(address)
        query = select(AddressFailuresRow).where(AddressFailuresRow.address == address)
        if for_update:
            query = query.with_for_update()
        row = self._session.scalars(query.execution_options(populate_existing=True)).first()
        if row is None:
            return FailureCount()
        return FailureCount(row.failed_attempts, row.last_failed_at, row.locked_until)

    def store(self, address: str, failures: FailureCount) -> None:
        self._ensure_row(address)
        self._session.execute(
            update(AddressFailuresRow)
            .where(AddressFailuresRow.address == address)
            .values(
                failed_attempts=failures.count,
                last_failed_at=failures.last_at,
                locked_until=failures.locked_until,
            )
        )

    def _ensure_row(self, address: str) -> None:
        if self._session.get(AddressFailuresRow, address) is not None:
            return
        try:
            with self._session.begin_nested():
                self._session.add(AddressFailuresRow(address=address, failed_attempts=0))
        except IntegrityError:
            pass  # another process made it first: the row is there, which is all we need

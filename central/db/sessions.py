"""Browser sessions, kept in the database so that every center process sees a lock or an
end at once. Only the SHA-256 of the opaque id in the cookie is stored (`token_hash`).
Ending a session also revokes the viewer tokens issued in it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, CursorResult, Row, and_, bindparam, select, update
from sqlalchemy.orm import Session

from central.db.models import SessionRow, UserRow, ViewerGrantRow
from central.db.records import record_of
from central.errors import NotFound


@dataclass(frozen=True, slots=True)
class SessionRecord:
    token_hash: str
    user: str
    user_id: int
    created_at: float
    last_seen_at: float
    locked_at: float | None
    ended_at: float | None
    end_reason: str | None
    source: str | None

    @classmethod
    def of(cls, row: SessionRow, user: str) -> SessionRecord:
        return record_of(cls, row, user=user)


_open = SessionRow.ended_at.is_(None)


@dataclass(frozen=True, slots=True)
class SessionHolder:
    """A session with what a request needs of its user, read in one query."""

    session: SessionRecord
    role: str
    disabled: bool
    sessions_valid_after: float | None
    password_hash: str
    unit_id: str | None = None


_HOLDER = (
    select(
        SessionRow.token_hash,
        UserRow.name,
        SessionRow.user_id,
        SessionRow.created_at,
        SessionRow.last_seen_at,
        SessionRow.locked_at,
        SessionRow.ended_at,
        SessionRow.end_reason,
        SessionRow.source,
        UserRow.role,
        UserRow.disabled,
        UserRow.sessions_valid_after,
        UserRow.password_hash,
        UserRow.unit_id,
    )
    .join(UserRow, UserRow.id == SessionRow.user_id)
    .where(SessionRow.token_hash == bindparam("token_hash"))
)


def find_holder(connection: Connection, token_hash: str) -> SessionHolder | None:
    """The session and its user's standing, in one statement (this runs on every request)."""
    found = connection.execute(_HOLDER, {"token_hash": token_hash}).one_or_none()
    if found is None:
        return None
    return SessionHolder(SessionRecord(*found[:9]), *found[9:])


class Sessions:
    def __init__(self, session: Session) -> None:
        self._session = session

    def create(
        self, token_hash: str, user: str, now: float, source: str | None = None
    ) -> SessionRecord:
        user_id = self._session.scalar(select(UserRow.id).where(UserRow.name == user))
        if user_id is None:
            raise NotFound(f"no user {user}")
        row = SessionRow(
            token_hash=token_hash,
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            source=source,
        )
        self._session.add(row)
        self._session.flush()
        return SessionRecord.of(row, user)

    def get(self, token_hash: str) -> SessionRecord | None:
        found = self._session.execute(
            select(SessionRow, UserRow.name)
            .join(UserRow, UserRow.id == SessionRow.user_id)
            .where(SessionRow.token_hash == token_hash)
            .execution_options(populate_existing=True)
        ).one_or_none()
        return None if found is None else _record(found)

    def holder(self, token_hash: str) -> SessionHolder | None:
        return find_holder(self._session.connection(), token_hash)

    def of_user(self, user: str, *, open_only: bool = True) -> list[SessionRecord]:
        query = (
            select(SessionRow, UserRow.name)
            .join(UserRow, UserRow.id == SessionRow.user_id)
            .where(UserRow.name == user)
            .order_by(SessionRow.created_at)
        )
        if open_only:
            query = query.where(_open)
        return [_record(found) for found in self._session.execute(query)]

    def touch(self, token_hash: str, now: float) -> bool:
        """A request used the session; False when it is ended (or unknown)."""
        self._set(
            and_(SessionRow.token_hash == token_hash, SessionRow.last_seen_at < now),
            last_seen_at=now,
        )
        found = self.get(token_hash)
        return found is not None and found.ended_at is None

    def lock(self, token_hash: str, locked_at: float) -> bool:
        return self._set(SessionRow.token_hash == token_hash, locked_at=locked_at) > 0

    def unlock(self, token_hash: str, now: float) -> bool:
        return self._set(SessionRow.token_hash == token_hash, locked_at=None, last_seen_at=now) > 0

    def end(self, token_hash: str, now: float, reason: str = "signed_out") -> bool:
        """Ends one open session and revokes its viewer tokens; False if it was not open."""
        ended = self._set(SessionRow.token_hash == token_hash, ended_at=now, end_reason=reason)
        self._revoke_grants([token_hash], now)
        return ended > 0

    def end_all_of_user(self, user: str, now: float, reason: str = "ended_by_admin") -> int:
        """Ends every open session of `user` (sign-out everywhere, disabled account, new
        password) and revokes their viewer tokens; sessions made before `now` stay over
        even if a row was missed (`sessions_valid_after`). Returns how many were open."""
        user_id = self._session.scalar(select(UserRow.id).where(UserRow.name == user))
        if user_id is None:
            raise NotFound(f"no user {user}")
        self._session.execute(
            update(UserRow).where(UserRow.id == user_id).values(sessions_valid_after=now)
        )
        hashes = self._session.scalars(
            select(SessionRow.token_hash).where(SessionRow.user_id == user_id, _open)
        ).all()
        ended = self._set(SessionRow.user_id == user_id, ended_at=now, end_reason=reason)
        self._revoke_grants(hashes, now)
        return ended

    def _set(self, which: ColumnElement[bool], **values: object) -> int:
        result = self._session.execute(
            update(SessionRow)
            .where(which, _open)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount

    def _revoke_grants(self, token_hashes: Sequence[str], now: float) -> None:
        if token_hashes:
            self._session.execute(
                update(ViewerGrantRow)
                .where(
                    ViewerGrantRow.session_hash.in_(token_hashes),
                    ViewerGrantRow.revoked_at.is_(None),
                )
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )


def _record(found: Row[tuple[SessionRow, str]]) -> SessionRecord:
    row, user = found
    return SessionRecord.of(row, user)

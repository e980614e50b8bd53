"""Viewer tokens as issued: to whom, for which stream, in which session, until when.

The token itself is signed and checks without the database; this record is what lets the
center take it back before it expires (a supervisor revokes it, or the session it was
issued in ends). The relay asks `revoked_since` every few seconds and drops those viewers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.db.models import ViewerGrantRow
from central.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class ViewerGrant:
    token_id: str
    holder: str
    stream_id: str
    session_hash: str | None
    issued_at: float
    expires_at: float
    revoked_at: float | None

    @classmethod
    def of(cls, row: ViewerGrantRow) -> ViewerGrant:
        return cls(
            row.token_id,
            row.holder,
            row.stream_id,
            row.session_hash,
            row.issued_at,
            row.expires_at,
            row.revoked_at,
        )

    def holds(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at


class ViewerGrants:
    def __init__(self, session: Session) -> None:
        self._session = session

    def issue(
        self,
        token_id: str,
        holder: str,
        stream_id: str,
        now: float,
        expires_at: float,
        session_hash: str | None = None,
    ) -> ViewerGrant:
        row = ViewerGrantRow(
            token_id=token_id,
            holder=holder,
            stream_id=stream_id,
            session_hash=session_hash,
            issued_at=now,
            expires_at=expires_at,
        )
        try:
            with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError:
            raise Conflict(f"viewer token {token_id} exists") from None
        return ViewerGrant.of(row)

    def get(self, token_id: str) -> ViewerGrant | None:
        row = self._session.get(ViewerGrantRow, token_id, populate_existing=True)
        return None if row is None else ViewerGrant.of(row)

    def revoke(self, token_id: str, now: float) -> ViewerGrant:
        """Revokes from `now` on; a token revoked before keeps its first revocation."""
        row = self._session.get(ViewerGrantRow, token_id, populate_existing=True)
        if row is None:
            raise NotFound(f"no viewer token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = now
            self._session.flush()
        return ViewerGrant.of(row)

    def active(self, now: float, stream_id: str | None = None) -> list[ViewerGrant]:
        """Grants neither revoked nor expired, for one stream or all."""
        query = select(ViewerGrantRow).where(
            ViewerGrantRow.revoked_at.is_(None), ViewerGrantRow.expires_at > now
        )
        if stream_id is not None:
            query = query.where(ViewerGrantRow.stream_id == stream_id)
        rows = self._session.scalars(query.order_by(ViewerGrantRow.issued_at))
        return [ViewerGrant.of(row) for row in rows]

    def revoked_since(self, since: float) -> list[str]:
        """Ids of the tokens revoked at or after `since` (what the relay polls)."""
        return list(
            self._session.scalars(
                select(ViewerGrantRow.token_id)
                .where(ViewerGrantRow.revoked_at >= since)
                .order_by(ViewerGrantRow.revoked_at)
            )
        )

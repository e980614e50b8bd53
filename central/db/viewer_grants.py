"""Viewer tokens as issued: to whom, for which stream, in which session, until when.

The token itself is signed and checks without the database; this record is what lets the
center take it back before it expires (a supervisor revokes it, the session it was issued
in ends, or the API key it was issued to is revoked). The center asks `revoked_among` for
the views it watches every second and drops those viewers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.db.models import ViewerGrantRow
from central.db.records import record_of
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
        return record_of(cls, row)

    def holds(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at


_IN_CHUNK = 500


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
        share_id: str | None = None,
    ) -> ViewerGrant:
        row = ViewerGrantRow(
            token_id=token_id,
            share_id=share_id,
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

    def revoked_among(self, token_ids: Sequence[str]) -> list[str]:
        """Which of `token_ids` are revoked (what the center asks for the views it
        watches), in chunks that every database takes in one IN list."""
        found: list[str] = []
        for start in range(0, len(token_ids), _IN_CHUNK):
            chunk = token_ids[start : start + _IN_CHUNK]
            found += self._session.scalars(
                select(ViewerGrantRow.token_id).where(
                    ViewerGrantRow.token_id.in_(chunk), ViewerGrantRow.revoked_at.is_not(None)
                )
            )
        return found

    def revoke_held_by(self, holder: str, now: float) -> int:
        """Revokes the tokens issued to `holder` outside any session (an API client's),
        when its key is revoked; returns how many."""
        revoked = self._session.execute(
            update(ViewerGrantRow)
            .where(
                ViewerGrantRow.holder == holder,
                ViewerGrantRow.session_hash.is_(None),
                ViewerGrantRow.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return int(getattr(revoked, "rowcount", 0) or 0)

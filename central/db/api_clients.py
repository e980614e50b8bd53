"""API clients: programs (dispatch/CAD integrations, scripts) holding a scoped bearer key.
A row per key, found by the key's public id; only the SHA-256 of the key is stored."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.db.models import ApiClientRow
from central.db.records import record_of
from central.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class ApiClient:
    key_id: str
    name: str
    key_hash: str
    scopes: frozenset[str]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    @classmethod
    def of(cls, row: ApiClientRow) -> ApiClient:
        return record_of(cls, row, scopes=frozenset(row.scopes))


_LOOKUP = select(
    ApiClientRow.key_id,
    ApiClientRow.name,
    ApiClientRow.key_hash,
    ApiClientRow.scopes,
    ApiClientRow.created_at,
    ApiClientRow.expires_at,
    ApiClientRow.revoked_at,
    ApiClientRow.last_used_at,
).where(ApiClientRow.key_id == bindparam("key_id"))


def find_key(connection: Connection, key_id: str) -> ApiClient | None:
    """The key's record by one plain statement (this runs on every request)."""
    found = connection.execute(_LOOKUP, {"key_id": key_id}).one_or_none()
    if found is None:
        return None
    return record_of(ApiClient, found, scopes=frozenset(found.scopes))


class ApiClients:
    def __init__(self, session: Session) -> None:
        self._session = session

    def create(
        self,
        key_id: str,
        name: str,
        key_hash: str,
        scopes: Iterable[str],
        now: float,
        expires_at: float | None = None,
    ) -> ApiClient:
        row = ApiClientRow(
            key_id=key_id,
            name=name,
            key_hash=key_hash,
            scopes=sorted(set(scopes)),
            created_at=now,
            expires_at=expires_at,
        )
        try:
            with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError:
            raise Conflict(f"API key {key_id} exists") from None
        return ApiClient.of(row)

    def get(self, key_id: str) -> ApiClient | None:
        row = self._session.get(ApiClientRow, key_id, populate_existing=True)
        return None if row is None else ApiClient.of(row)

    def all(self, name: str | None = None) -> list[ApiClient]:
        query = select(ApiClientRow).order_by(ApiClientRow.name, ApiClientRow.created_at)
        if name is not None:
            query = query.where(ApiClientRow.name == name)
        return [ApiClient.of(row) for row in self._session.scalars(query)]

    def revoke(self, key_id: str, now: float) -> ApiClient:
        """Revokes the key from `now` on; a key revoked before keeps its first revocation."""
        row = self._row(key_id)
        if row.revoked_at is None:
            row.revoked_at = now
            self._session.flush()
        return ApiClient.of(row)

    def touch(self, key_id: str, now: float) -> None:
        """The key was used (shown to admins; worth doing once a minute, not per call)."""
        row = self._row(key_id)
        row.last_used_at = max(now, row.last_used_at or now)
        self._session.flush()

    def _row(self, key_id: str) -> ApiClientRow:
        row = self._session.get(ApiClientRow, key_id)
        if row is None:
            raise NotFound(f"no API key {key_id}")
        return row

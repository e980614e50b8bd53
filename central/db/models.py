"""The center's tables (SQLAlchemy 2, typed). The schema itself changes only through the
migrations in `central.db.migrations`; these classes describe the head of that history.

Times are epoch seconds (float) in Python, as everywhere in the center, and timestamps
with time zone in the database (UTC, microseconds), so that records read well and sort
in SQL on either engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HASH_LENGTH = 64  # SHA-256, hex


def to_datetime(epoch_s: float) -> datetime:
    """Epoch seconds as a UTC datetime, rounded to the microsecond the database keeps
    (timedelta rounds the fraction alone, exact where `epoch_s * 1e6` would not be)."""
    return EPOCH + timedelta(seconds=epoch_s)


def to_epoch(moment: datetime) -> float:
    # SQLite keeps no zone: what it returns was written as UTC.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - EPOCH).total_seconds()


class EpochTime(TypeDecorator[float]):
    """Epoch seconds in Python, a UTC timestamp with time zone in the database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Dialect) -> datetime | None:
        return None if value is None else to_datetime(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        return None if value is None else to_epoch(value)


class Base(DeclarativeBase):
    # Named constraints: later migrations can drop or alter them by name on either engine.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # One of central.access.policy.Role; the policy, not the storage, knows the roles.
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(256))
    totp_secret: Mapped[str | None] = mapped_column(String(128))
    # The TOTP step of the last accepted code: the same code is not accepted twice.
    last_totp_step: Mapped[int | None] = mapped_column(BigInteger)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[float | None] = mapped_column(EpochTime)
    locked_until: Mapped[float | None] = mapped_column(EpochTime)
    # Sessions created at or before this moment are over (sign-out everywhere, new password).
    sessions_valid_after: Mapped[float | None] = mapped_column(EpochTime)
    created_at: Mapped[float] = mapped_column(EpochTime)
    updated_at: Mapped[float] = mapped_column(EpochTime)
    # A patrol login is its vehicle's: the unit whose shares it receives.
    unit_id: Mapped[str | None] = mapped_column(String(64), index=True)


class AddressFailuresRow(Base):
    """Failed sign-ins per source address (the account's count lives on its user row)."""

    __tablename__ = "address_failures"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[float | None] = mapped_column(EpochTime)
    locked_until: Mapped[float | None] = mapped_column(EpochTime)


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("sessions_by_user", "user_id", "ended_at"),)

    # SHA-256 of the opaque id in the cookie; the id itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[float] = mapped_column(EpochTime)
    last_seen_at: Mapped[float] = mapped_column(EpochTime)
    locked_at: Mapped[float | None] = mapped_column(EpochTime)
    ended_at: Mapped[float | None] = mapped_column(EpochTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(64))


class ApiClientRow(Base):
    __tablename__ = "api_clients"

    # The public part of the key (`rtcc_<key id>_<secret>`): finds the row, names the client.
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    key_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(EpochTime)
    expires_at: Mapped[float | None] = mapped_column(EpochTime)
    revoked_at: Mapped[float | None] = mapped_column(EpochTime)
    last_used_at: Mapped[float | None] = mapped_column(EpochTime)


class AuditRow(Base):
    """Append-only; each row's `hash` seals its fields and `prev_hash` (see audit_chain)."""

    __tablename__ = "audit"
    __table_args__ = (
        Index("audit_by_actor", "actor", "seq"),
        Index("audit_by_action", "action", "seq"),
        Index("audit_by_object", "object", "seq"),
        Index("audit_by_time", "at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[float] = mapped_column(EpochTime)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str | None] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(32))
    # Plain JSON (not PostgreSQL's JSONB), so the text comes back exactly as it was sealed.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH), unique=True)


class AuditHeadRow(Base):
    """The chain's head, one row: appends lock it, so that several center processes extend
    one chain in turn."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    # The record the oldest kept one follows: GENESIS (0) until records are purged.
    base_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    base_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), server_default="0" * 64)


class ViewerGrantRow(Base):
    """A viewer token issued to a person for one stream; the relay asks whether it still
    holds (revoked by a supervisor, or ended with the session it was issued in)."""

    __tablename__ = "viewer_grants"
    __table_args__ = (Index("viewer_grants_by_stream", "stream_id", "expires_at"),)

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    session_hash: Mapped[str | None] = mapped_column(
        ForeignKey("sessions.token_hash", ondelete="SET NULL"), index=True
    )
    stream_id: Mapped[str] = mapped_column(String(128))
    issued_at: Mapped[float] = mapped_column(EpochTime)
    expires_at: Mapped[float] = mapped_column(EpochTime)
    revoked_at: Mapped[float | None] = mapped_column(EpochTime, index=True)
    # A token a patrol holds through a share ends with the share.
    share_id: Mapped[str | None] = mapped_column(String(32), index=True)


class AlertRow(Base):
    """An alert a unit raised (or the center noticed), kept until acknowledged and after."""

    __tablename__ = "alerts"
    __table_args__ = (Index("alerts_open", "acked_at", "received"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str | None] = mapped_column(String(64))
    ts: Mapped[float] = mapped_column(EpochTime)
    received: Mapped[float] = mapped_column(EpochTime)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    stream_id: Mapped[str | None] = mapped_column(String(128))
    stream_error: Mapped[str | None] = mapped_column(String(256))
    acked_at: Mapped[float | None] = mapped_column(EpochTime)
    acked_by: Mapped[str | None] = mapped_column(String(128))
    ack_note: Mapped[str | None] = mapped_column(String(1024))


class StillRow(Base):
    """A picture decoded at the center from a live stream's latest keyframe."""

    __tablename__ = "stills"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    stream_id: Mapped[str] = mapped_column(String(128))
    unit_id: Mapped[str] = mapped_column(String(64), index=True)
    taken_at: Mapped[float] = mapped_column(EpochTime)
    taken_by: Mapped[str] = mapped_column(String(128))
    alert_id: Mapped[str | None] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(HASH_LENGTH))
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)


class ShareRow(Base):
    """What a dispatcher pushed to the patrols near a scene: a live stream, a still, a text."""

    __tablename__ = "shares"
    __table_args__ = (Index("shares_active", "revoked_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(EpochTime)
    expires_at: Mapped[float] = mapped_column(EpochTime)
    revoked_at: Mapped[float | None] = mapped_column(EpochTime)
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    stream_id: Mapped[str | None] = mapped_column(String(128))
    unit_id: Mapped[str | None] = mapped_column(String(64))
    still_id: Mapped[str | None] = mapped_column(ForeignKey("stills.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(String(2048))
    scene_lat: Mapped[float] = mapped_column(Float)
    scene_lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float | None] = mapped_column(Float)


class ShareRecipientRow(Base):
    __tablename__ = "share_recipients"

    share_id: Mapped[str] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    distance_m: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[float | None] = mapped_column(EpochTime)
    opened_at: Mapped[float | None] = mapped_column(EpochTime)

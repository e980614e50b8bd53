"""People, sessions, API clients, the audit chain and viewer grants.

Revision ID: r0001
Revises: none
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

GENESIS_HASH = "0" * 64


def _time(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _users() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("totp_secret", sa.String(128), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        _time("last_failed_at"),
        _time("locked_until"),
        _time("sessions_valid_after"),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "address_failures",
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        _time("last_failed_at"),
        _time("locked_until"),
        sa.PrimaryKeyConstraint("address", name="pk_address_failures"),
    )


def _sessions() -> None:
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _time("created_at", nullable=False),
        _time("last_seen_at", nullable=False),
        _time("locked_at"),
        _time("ended_at"),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("sessions_by_user", "sessions", ["user_id", "ended_at"])
    op.create_table(
        "api_clients",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _time("created_at", nullable=False),
        _time("expires_at"),
        _time("revoked_at"),
        _time("last_used_at"),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_clients"),
    )
    op.create_index("ix_api_clients_name", "api_clients", ["name"])


def _audit() -> None:
    op.create_table(
        "audit",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        _time("at", nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.String(256), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit"),
        sa.UniqueConstraint("hash", name="uq_audit_hash"),
    )
    op.create_index("audit_by_actor", "audit", ["actor", "seq"])
    op.create_index("audit_by_action", "audit", ["action", "seq"])
    op.create_index("audit_by_object", "audit", ["object", "seq"])
    op.create_index("audit_by_time", "audit", ["at"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])


def _viewer_grants() -> None:
    op.create_table(
        "viewer_grants",
        sa.Column("token_id", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("session_hash", sa.String(64), nullable=True),
        sa.Column("stream_id", sa.String(128), nullable=False),
        _time("issued_at", nullable=False),
        _time("expires_at", nullable=False),
        _time("revoked_at"),
        sa.PrimaryKeyConstraint("token_id", name="pk_viewer_grants"),
        sa.ForeignKeyConstraint(
            ["session_hash"],
            ["sessions.token_hash"],
            name="fk_viewer_grants_session_hash_sessions",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_viewer_grants_session_hash", "viewer_grants", ["session_hash"])
    op.create_index("ix_viewer_grants_revoked_at", "viewer_grants", ["revoked_at"])
    op.create_index("viewer_grants_by_stream", "viewer_grants", ["stream_id", "expires_at"])


def upgrade() -> None:
    _users()
    _sessions()
    _audit()
    _viewer_grants()

"""The console's records: stored alerts, stills, shares to patrols and their recipients; a
patrol login's unit; viewer grants bound to a share.

Revision ID: r0004
Revises: r0003
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "r0004"
down_revision: str | None = "r0003"
branch_labels: str | None = None
depends_on: str | None = None


def _time(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("unit_id", sa.String(64), nullable=True))
        users.create_index("ix_users_unit_id", ["unit_id"])
    with op.batch_alter_table("viewer_grants") as grants:
        grants.add_column(sa.Column("share_id", sa.String(32), nullable=True))
        grants.create_index("ix_viewer_grants_share_id", ["share_id"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(64), nullable=True),
        _time("ts", nullable=False),
        _time("received", nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("stream_id", sa.String(128), nullable=True),
        sa.Column("stream_error", sa.String(256), nullable=True),
        _time("acked_at"),
        sa.Column("acked_by", sa.String(128), nullable=True),
        sa.Column("ack_note", sa.String(1024), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_unit_id", "alerts", ["unit_id"])
    op.create_index("alerts_open", "alerts", ["acked_at", "received"])
    op.create_table(
        "stills",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("stream_id", sa.String(128), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        _time("taken_at", nullable=False),
        sa.Column("taken_by", sa.String(128), nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stills"),
    )
    op.create_index("ix_stills_unit_id", "stills", ["unit_id"])
    op.create_index("ix_stills_alert_id", "stills", ["alert_id"])
    op.create_table(
        "shares",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _time("created_at", nullable=False),
        _time("expires_at", nullable=False),
        _time("revoked_at"),
        sa.Column("revoked_by", sa.String(128), nullable=True),
        sa.Column("stream_id", sa.String(128), nullable=True),
        sa.Column("unit_id", sa.String(64), nullable=True),
        sa.Column("still_id", sa.String(32), nullable=True),
        sa.Column("text", sa.String(2048), nullable=False),
        sa.Column("scene_lat", sa.Float(), nullable=False),
        sa.Column("scene_lon", sa.Float(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["still_id"], ["stills.id"], name="fk_shares_still_id_stills", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_shares"),
    )
    op.create_index("shares_active", "shares", ["revoked_at", "expires_at"])
    op.create_table(
        "share_recipients",
        sa.Column("share_id", sa.String(32), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=True),
        _time("received_at"),
        _time("opened_at"),
        sa.ForeignKeyConstraint(
            ["share_id"],
            ["shares.id"],
            name="fk_share_recipients_share_id_shares",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("share_id", "unit_id", name="pk_share_recipients"),
    )
    op.create_index("ix_share_recipients_unit_id", "share_recipients", ["unit_id"])


def downgrade() -> None:
    op.drop_table("share_recipients")
    op.drop_table("shares")
    op.drop_table("stills")
    op.drop_table("alerts")
    with op.batch_alter_table("viewer_grants") as grants:
        grants.drop_index("ix_viewer_grants_share_id")
        grants.drop_column("share_id")
    with op.batch_alter_table("users") as users:
        users.drop_index("ix_users_unit_id")
        users.drop_column("unit_id")

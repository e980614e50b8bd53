"""Devices: one-time enrollment codes, the certificates the device CA issued and their
revocation, each unit's evidence key registered at enrollment.

Revision ID: r0005
Revises: r0004
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "r0005"
down_revision: str | None = "r0004"
branch_labels: str | None = None
depends_on: str | None = None


def _time(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "enroll_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        _time("created_at", nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _time("expires_at", nullable=False),
        _time("used_at"),
        sa.Column("used_from", sa.String(64), nullable=True),
        sa.Column("serial", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_enroll_codes"),
    )
    op.create_index("ix_enroll_codes_unit_id", "enroll_codes", ["unit_id"])
    op.create_table(
        "device_certs",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        _time("issued_at", nullable=False),
        _time("expires_at", nullable=False),
        _time("revoked_at"),
        sa.Column("revoked_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("serial", name="pk_device_certs"),
    )
    op.create_index("device_certs_by_unit", "device_certs", ["unit_id", "issued_at"])
    op.create_index("ix_device_certs_revoked_at", "device_certs", ["revoked_at"])
    op.create_table(
        "unit_evidence_keys",
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("evidence_key", sa.String(64), nullable=False),
        _time("registered_at", nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["serial"], ["device_certs.serial"], name="fk_unit_evidence_keys_serial_device_certs"
        ),
        sa.PrimaryKeyConstraint("unit_id", name="pk_unit_evidence_keys"),
    )


def downgrade() -> None:
    op.drop_table("unit_evidence_keys")
    op.drop_table("device_certs")
    op.drop_table("enroll_codes")

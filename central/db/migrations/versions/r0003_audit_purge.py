"""Where the audit chain starts after a purge of records older than the retention.

Revision ID: r0003
Revises: r0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0003"
down_revision: str | None = "r0002"
branch_labels: str | None = None
depends_on: str | None = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    with op.batch_alter_table("audit_head") as table:
        table.add_column(sa.Column("base_seq", sa.BigInteger(), nullable=False, server_default="0"))
        table.add_column(
            sa.Column("base_hash", sa.String(64), nullable=False, server_default=GENESIS_HASH)
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_head") as table:
        table.drop_column("base_hash")
        table.drop_column("base_seq")

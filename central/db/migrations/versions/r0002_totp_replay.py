"""The last TOTP step each account signed in with, so that a code is accepted once.

Revision ID: r0002
Revises: r0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision: str | None = "r0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("last_totp_step", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "last_totp_step")

"""The dp_budget table: each tenant's differential-privacy spending per window.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "dp_budget",
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("spent_micro", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "window"),
    )


def downgrade() -> None:
    op.drop_table("dp_budget")

"""Audit records keep what a secure backend reported (measurement, timings) and PPVD's answer hits.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.add_column(sa.Column("backend_facts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("ppvd_hits", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.drop_column("ppvd_hits")
        batch.drop_column("backend_facts")

"""The denial report: no-opinions answered for nodes, aggregated, shared by every replica.

Additive: code of the previous revision never reads or writes ``denials`` and keeps working with it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
compatibility = "expand"  # a new table: code at 0002 keeps working
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 253
KIND = 32
REASON = 512


def upgrade() -> None:
    op.create_table(
        "denials",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("node", sa.String(NAME), nullable=False),
        sa.Column("verb", sa.String(KIND), nullable=False),
        sa.Column("resource", sa.String(NAME), nullable=False),
        sa.Column("subresource", sa.String(NAME), nullable=False),
        sa.Column("namespace", sa.String(NAME), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("reason", sa.String(REASON), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_denials")),
    )
    op.create_index(op.f("ix_denials_last_seen"), "denials", ["last_seen"])


def downgrade() -> None:
    op.drop_index(op.f("ix_denials_last_seen"), table_name="denials")
    op.drop_table("denials")

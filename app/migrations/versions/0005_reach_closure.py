"""The write-time closure of plain-edge walks: a PV's secret -> the nodes its claim's pods run on.

``reach_closure(source_id, node_id)`` holds, for every vertex with plain out-edges (a PV's
secret, a PV), the nodes its walk over plain edges reaches, so the check for a PV secret is one
index probe instead of the recursive walk (``app.graph.closure``). ``reach_closure_state`` names
the writer term (lease, holder, epoch) that keeps the rows current.

Expand: code of the previous revision neither reads nor writes these tables and keeps answering
with its recursive walk. An old writer during a rollout changes edges without updating the rows,
but it writes under its own lease epoch: new readers trust the rows only while the epoch recorded
in ``reach_closure_state`` still holds the lease, and a new writer rebuilds them the first time it
writes under a new epoch. Until then new readers walk, as old code does.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
compatibility = "expand"  # new tables that old code never reads: code at 0004 keeps working
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NAME = 253


def upgrade() -> None:
    op.create_table(
        "reach_closure",
        sa.Column("source_id", ID, nullable=False),
        sa.Column("node_id", ID, nullable=False),
        sa.PrimaryKeyConstraint("source_id", "node_id", name=op.f("pk_reach_closure")),
    )
    op.create_table(
        "reach_closure_state",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("lease", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(NAME), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_reach_closure_state")),
    )


def downgrade() -> None:
    op.drop_table("reach_closure_state")
    op.drop_table("reach_closure")

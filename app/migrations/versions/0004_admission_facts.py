"""NodeRestriction's facts about watched objects: what the audience and PodCertificateRequest checks read.

Additive: code of the previous revision never reads or writes these tables and keeps working with them.
A writer of this version re-lists each resource once to fill ``admission_facts`` (see
``admission_fact_lists``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
compatibility = "expand"  # new tables: code at 0003 keeps working
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 253
KIND = 32


def upgrade() -> None:
    op.create_table(
        "admission_facts",
        sa.Column("kind", sa.String(KIND), nullable=False),
        sa.Column("namespace", sa.String(NAME), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "namespace", "name", name=op.f("pk_admission_facts")),
    )
    op.create_table(
        "admission_fact_lists",
        sa.Column("resource", sa.String(128), nullable=False),
        sa.Column("resource_version", sa.String(64), nullable=False),
        sa.Column("listed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resource", name=op.f("pk_admission_fact_lists")),
    )


def downgrade() -> None:
    op.drop_table("admission_fact_lists")
    op.drop_table("admission_facts")

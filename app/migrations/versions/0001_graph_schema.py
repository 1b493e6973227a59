"""The graph schema: vertices, edges, owning objects, sync state, writer lease.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatibility = "contract"  # the first schema: no older code can serve on it

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NAME = 253
KIND = 32


def upgrade() -> None:
    op.create_table(
        "vertices",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(KIND), nullable=False),
        sa.Column("namespace", sa.String(NAME), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vertices")),
        sa.UniqueConstraint("kind", "namespace", "name", name=op.f("uq_vertices_kind_namespace_name")),
    )
    op.create_table(
        "objects",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(KIND), nullable=False),
        sa.Column("namespace", sa.String(NAME), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("uid", sa.String(64), nullable=False),
        sa.Column("resource_version", sa.String(64), nullable=False),
        sa.Column("node_name", sa.String(NAME), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objects")),
        sa.UniqueConstraint("kind", "namespace", "name", name=op.f("uq_objects_kind_namespace_name")),
    )
    op.create_table(
        "edges",
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("from_id", ID, nullable=False),
        sa.Column("to_id", ID, nullable=False),
        sa.Column("node_id", ID, nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["objects.id"], name=op.f("fk_edges_owner_id_objects")),
        sa.ForeignKeyConstraint(["from_id"], ["vertices.id"], name=op.f("fk_edges_from_id_vertices")),
        sa.ForeignKeyConstraint(["to_id"], ["vertices.id"], name=op.f("fk_edges_to_id_vertices")),
        sa.PrimaryKeyConstraint("owner_id", "from_id", "to_id", name=op.f("pk_edges")),
    )
    op.create_index(op.f("ix_edges_from_id_node_id_to_id"), "edges", ["from_id", "node_id", "to_id"])
    op.create_index(op.f("ix_edges_to_id_from_id"), "edges", ["to_id", "from_id"])
    op.create_table(
        "sync_state",
        sa.Column("resource", sa.String(128), nullable=False),
        sa.Column("resource_version", sa.String(64), nullable=False),
        sa.Column("writer", sa.String(NAME), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resource", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "writer_lease",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(NAME), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_writer_lease")),
    )


def downgrade() -> None:
    op.drop_table("writer_lease")
    op.drop_table("sync_state")
    op.drop_index(op.f("ix_edges_to_id_from_id"), table_name="edges")
    op.drop_index(op.f("ix_edges_from_id_node_id_to_id"), table_name="edges")
    op.drop_table("edges")
    op.drop_table("objects")
    op.drop_table("vertices")

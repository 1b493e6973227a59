"""Names as long as Kubernetes derives them; objects the store could not hold; the compatibility window.

- ``vertices.name`` to 512: an ephemeral volume's claim is named ``<pod>-<volume>``, up to
  253 + 1 + 63 = 317 characters; at 253 PostgreSQL refused the insert and the pod informer
  retried that batch forever.
- ``unstored_objects``: watched objects set aside because the database refused them, so
  one object can never stop the objects after it (and operators can see which, in ``stats``).

- ``schema_window``: which code revisions may serve on the schema (README "Upgrading").

Expand: code at 0001 keeps working on this schema (a wider column, extra tables). Code at 0001
predates the window, so its replicas still report the schema as unknown until replaced.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# expand: code of the previous revision keeps working on this schema; contract: it does not.
compatibility = "expand"

NAME = 253
VERTEX_NAME = 512
KIND = 32


def upgrade() -> None:
    with op.batch_alter_table("vertices") as batch:
        batch.alter_column(
            "name", type_=sa.String(VERTEX_NAME), existing_type=sa.String(NAME), existing_nullable=False
        )
    op.create_table(
        "unstored_objects",
        sa.Column("kind", sa.String(KIND), nullable=False),
        sa.Column("namespace", sa.String(NAME), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("resource_version", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "namespace", "name", name=op.f("pk_unstored_objects")),
    )
    op.create_table(
        "schema_window",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("serves_from", sa.String(32), nullable=False),
        sa.Column("head", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_schema_window")),
    )


def downgrade() -> None:
    op.drop_table("schema_window")
    op.drop_table("unstored_objects")
    with op.batch_alter_table("vertices") as batch:
        batch.alter_column(
            "name", type_=sa.String(NAME), existing_type=sa.String(VERTEX_NAME), existing_nullable=False
        )

"""registry revision: one counter of changes to what a certificate verification shows

``registry_revision`` holds one row (id 1). Every transaction that writes a right, a certificate,
an asset, a lineage link or an objection registration bumps it as it commits (ORM hooks in
``registry/models.py``), so the public verification API can reuse a verification computed at the
same counter value instead of recomputing the chain of title on every lookup; and an index on
``registry_application.right_id`` (objection registrations on a right). Written by hand
(the row must exist), then checked against the models with ``alembic check``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 19:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "registry_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_revision")),
    )
    op.bulk_insert(table, [{"id": 1, "value": 0}])
    # Objection registrations on a right: every verification and certification looks them up.
    op.create_index(
        "ix_registry_application_right", "registry_application", ["right_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_registry_application_right", table_name="registry_application")
    op.drop_table("registry_revision")

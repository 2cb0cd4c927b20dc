"""sandbox: a salt per query, so the ledger's hash of a query's text is a commitment (a public
ledger must not let anyone confirm a guessed query text)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 07:49:48.977256
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sandbox_query", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sql_salt", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sandbox_query", schema=None) as batch_op:
        batch_op.drop_column("sql_salt")

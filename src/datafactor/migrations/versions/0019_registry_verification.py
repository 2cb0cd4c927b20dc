"""registry: public verifications shared by the server's worker processes (PostgreSQL; an
UNLOGGED table — a cache, rebuilt on demand)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-26 11:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_verification",
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_registry_verification")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE registry_verification SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("registry_verification")

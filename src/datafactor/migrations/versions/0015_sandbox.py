"""sandbox: the holders' profiles of their data sets, the privacy-budget accounts, the record of
every query

Tables of ``datafactor.sandbox.models`` (generated from the models, checked by ``alembic check``
in the tests).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 04:45:43.271505
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import datafactor.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_budget",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("grant_ref", sa.String(length=36), nullable=False),
        sa.Column("grant_kind", sa.String(length=16), nullable=False),
        sa.Column("grantee_id", sa.String(length=36), nullable=False),
        sa.Column("holder_id", sa.String(length=36), nullable=False),
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column("total_micro", sa.BigInteger(), nullable=False),
        sa.Column("spent_micro", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_budget")),
        sa.UniqueConstraint("grant_ref", "asset_id", name=op.f("uq_sandbox_budget_grant_ref")),
    )
    with op.batch_alter_table("sandbox_budget", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sandbox_budget_grantee_id"), ["grantee_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sandbox_budget_holder_id"), ["holder_id"], unique=False
        )

    op.create_table(
        "sandbox_profile",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column("holder_id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=True),
        sa.Column("version_id", sa.String(length=36), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("large", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_profile")),
        sa.UniqueConstraint("asset_id", name=op.f("uq_sandbox_profile_asset_id")),
    )
    with op.batch_alter_table("sandbox_profile", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sandbox_profile_holder_id"), ["holder_id"], unique=False
        )

    op.create_table(
        "sandbox_query",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("grant_ref", sa.String(length=36), nullable=False),
        sa.Column("grant_kind", sa.String(length=16), nullable=False),
        sa.Column("grantee_id", sa.String(length=36), nullable=False),
        sa.Column("holder_id", sa.String(length=36), nullable=False),
        sa.Column("asset_ids", sa.JSON(), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("epsilon_micro", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.Boolean(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=True),
        sa.Column("engine", sa.String(length=16), nullable=True),
        sa.Column("result_hash", sa.String(length=64), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=36), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=False),
        sa.Column("reviewed_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_query")),
    )
    with op.batch_alter_table("sandbox_query", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sandbox_query_grant_created", ["grant_ref", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_sandbox_query_grantee_created", ["grantee_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_sandbox_query_holder_created", ["holder_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sandbox_query", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_query_holder_created")
        batch_op.drop_index("ix_sandbox_query_grantee_created")
        batch_op.drop_index("ix_sandbox_query_grant_created")

    op.drop_table("sandbox_query")
    with op.batch_alter_table("sandbox_profile", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sandbox_profile_holder_id"))

    op.drop_table("sandbox_profile")
    with op.batch_alter_table("sandbox_budget", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sandbox_budget_holder_id"))
        batch_op.drop_index(batch_op.f("ix_sandbox_budget_grantee_id"))

    op.drop_table("sandbox_budget")

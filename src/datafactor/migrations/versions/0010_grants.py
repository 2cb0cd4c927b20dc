"""authorisation grants: grants of use under a policy, their history, the per-year number

``policy_grant`` holds one authorisation (授权) each: parties, asset and right by id, the policy
(JSON-LD as the engine reads it) and its hash, the licence scope derived from it, the term, the
use counter, the registry licence it is registered as, and its signed decision record with its
ledger index. ``policy_grant_event`` is its append-only history; ``policy_grant_serial`` the
row-locked per-year counter behind the numbers (GX-SQ-2026-000001). Written by hand from the
models, checked with ``alembic check``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import datafactor.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=36)


def upgrade() -> None:
    op.create_table(
        "policy_grant",
        sa.Column("id", ID, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("regime", sa.String(length=32), nullable=False),
        sa.Column("reference_id", ID, nullable=True),
        sa.Column("mandate", sa.JSON(), nullable=True),
        sa.Column("holder_id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("grantee_id", ID, nullable=False),
        sa.Column("asset_id", ID, nullable=False),
        sa.Column("right_id", ID, nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("policy_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("term_start", sa.Date(), nullable=False),
        sa.Column("term_end", sa.Date(), nullable=False),
        sa.Column("purpose_note", sa.Text(), nullable=False),
        sa.Column("use_class", sa.String(length=32), nullable=True),
        sa.Column("fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("licence_application_id", ID, nullable=True),
        sa.Column("licence_right_id", ID, nullable=True),
        sa.Column("licence_certificate", sa.String(length=32), nullable=True),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("signing_key", sa.Text(), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("state_since", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_params", sa.JSON(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_grant")),
        sa.UniqueConstraint("number", name=op.f("uq_policy_grant_number")),
    )
    op.create_index("ix_policy_grant_agent_state", "policy_grant", ["agent_id", "state"])
    op.create_index(op.f("ix_policy_grant_asset_id"), "policy_grant", ["asset_id"])
    op.create_index("ix_policy_grant_grantee_state", "policy_grant", ["grantee_id", "state"])
    op.create_index("ix_policy_grant_holder_state", "policy_grant", ["holder_id", "state"])
    op.create_index(
        op.f("ix_policy_grant_licence_application_id"), "policy_grant", ["licence_application_id"]
    )
    op.create_index(op.f("ix_policy_grant_licence_right_id"), "policy_grant", ["licence_right_id"])
    op.create_index("ix_policy_grant_reference", "policy_grant", ["regime", "reference_id"])
    op.create_index("ix_policy_grant_state_end", "policy_grant", ["state", "term_end"])
    op.create_table(
        "policy_grant_serial",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_serial", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_policy_grant_serial")),
    )
    op.create_table(
        "policy_grant_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("grant_id", ID, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("actor_user_id", ID, nullable=True),
        sa.Column("actor_name", sa.String(length=128), nullable=False),
        sa.Column("actor_party_id", ID, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_params", sa.JSON(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["policy_grant.id"],
            name=op.f("fk_policy_grant_event_grant_id_policy_grant"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_grant_event")),
    )
    op.create_index(op.f("ix_policy_grant_event_grant_id"), "policy_grant_event", ["grant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_policy_grant_event_grant_id"), table_name="policy_grant_event")
    op.drop_table("policy_grant_event")
    op.drop_table("policy_grant_serial")
    for name in (
        "ix_policy_grant_state_end",
        "ix_policy_grant_reference",
        "ix_policy_grant_holder_state",
        "ix_policy_grant_grantee_state",
        "ix_policy_grant_agent_state",
    ):
        op.drop_index(name, table_name="policy_grant")
    for column in ("licence_right_id", "licence_application_id", "asset_id"):
        op.drop_index(op.f(f"ix_policy_grant_{column}"), table_name="policy_grant")
    op.drop_table("policy_grant")

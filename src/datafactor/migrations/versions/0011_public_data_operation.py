"""public data authorised operation: agreements, caps, rates, fees, uses, costs, reports

``policy_operation_agreement`` holds each authorisation agreement (授权运营协议) with the recorded
selection procedure, its term, scope, state and ledger index; ``policy_operation_agreement_asset``
the public data sets it covers. ``policy_operation_fee_cap`` and ``policy_operation_profit_rate``
are the bureau's caps and reasonable-profit rates, ``policy_operation_fee`` the operators' published
fees — all versioned by effective date, never updated in place. ``policy_operation_use`` records
each use made under an agreement (class, purpose, unit, quantity, fee, cap; the grant it became),
``policy_operation_cost`` the operators' costs per year, ``policy_operation_report`` the filed
annual reports. Written by hand from the models, checked with ``alembic check``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import datafactor.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=36)


def _party_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["party.id"], name=op.f(f"fk_{table}_{column}_party"))


def upgrade() -> None:
    op.create_table(
        "policy_operation_agreement",
        sa.Column("id", ID, nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("body_id", ID, nullable=False),
        sa.Column("body_name", sa.String(length=128), nullable=False),
        sa.Column("operator_id", ID, nullable=False),
        sa.Column("operator_name", sa.String(length=128), nullable=False),
        sa.Column("procedure", sa.String(length=32), nullable=False),
        sa.Column("procedure_reference", sa.String(length=128), nullable=False),
        sa.Column("selected_on", sa.Date(), nullable=False),
        sa.Column("selection_record", sa.Text(), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("term_start", sa.Date(), nullable=False),
        sa.Column("term_end", sa.Date(), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_since", sa.Date(), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=False),
        sa.Column("suspended_grants", sa.JSON(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        _party_fk("policy_operation_agreement", "body_id"),
        _party_fk("policy_operation_agreement", "operator_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_operation_agreement")),
        sa.UniqueConstraint(
            "body_id", "number", name=op.f("uq_policy_operation_agreement_body_id")
        ),
    )
    op.create_index(
        op.f("ix_policy_operation_agreement_body_id"), "policy_operation_agreement", ["body_id"]
    )
    op.create_index(
        "ix_policy_operation_agreement_operator_state",
        "policy_operation_agreement",
        ["operator_id", "state"],
    )
    op.create_index(
        "ix_policy_operation_agreement_state_end",
        "policy_operation_agreement",
        ["state", "term_end"],
    )
    op.create_table(
        "policy_operation_agreement_asset",
        sa.Column("agreement_id", ID, nullable=False),
        sa.Column("asset_id", ID, nullable=False),
        sa.Column("asset_name", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["policy_operation_agreement.id"],
            name=op.f(
                "fk_policy_operation_agreement_asset_agreement_id_policy_operation_agreement"
            ),
        ),
        sa.PrimaryKeyConstraint(
            "agreement_id", "asset_id", name=op.f("pk_policy_operation_agreement_asset")
        ),
    )
    op.create_index(
        op.f("ix_policy_operation_agreement_asset_asset_id"),
        "policy_operation_agreement_asset",
        ["asset_id"],
    )
    op.create_table(
        "policy_operation_fee_cap",
        sa.Column("id", ID, nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("source_document", sa.String(length=256), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("set_by_party_id", ID, nullable=False),
        sa.Column("set_by", ID, nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_operation_fee_cap")),
    )
    op.create_index(
        "ix_policy_operation_fee_cap_unit_from",
        "policy_operation_fee_cap",
        ["unit", "effective_from"],
    )
    op.create_table(
        "policy_operation_profit_rate",
        sa.Column("id", ID, nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("source_document", sa.String(length=256), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("set_by_party_id", ID, nullable=False),
        sa.Column("set_by", ID, nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_operation_profit_rate")),
    )
    op.create_index(
        op.f("ix_policy_operation_profit_rate_effective_from"),
        "policy_operation_profit_rate",
        ["effective_from"],
    )
    op.create_table(
        "policy_operation_fee",
        sa.Column("id", ID, nullable=False),
        sa.Column("operator_id", ID, nullable=False),
        sa.Column("operator_name", sa.String(length=128), nullable=False),
        sa.Column("asset_id", ID, nullable=False),
        sa.Column("asset_name", sa.String(length=256), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("cap_fen", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("published_by", ID, nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        _party_fk("policy_operation_fee", "operator_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_operation_fee")),
    )
    op.create_index(
        "ix_policy_operation_fee_operator_asset",
        "policy_operation_fee",
        ["operator_id", "asset_id", "unit"],
    )
    op.create_table(
        "policy_operation_use",
        sa.Column("id", ID, nullable=False),
        sa.Column("grant_id", ID, nullable=False),
        sa.Column("grant_number", sa.String(length=32), nullable=False),
        sa.Column("agreement_id", ID, nullable=False),
        sa.Column("operator_id", ID, nullable=False),
        sa.Column("body_id", ID, nullable=False),
        sa.Column("grantee_id", ID, nullable=False),
        sa.Column("grantee_name", sa.String(length=128), nullable=False),
        sa.Column("asset_id", ID, nullable=False),
        sa.Column("asset_name", sa.String(length=256), nullable=False),
        sa.Column("use_class", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("cap_fen", sa.BigInteger(), nullable=True),
        sa.Column("term_start", sa.Date(), nullable=False),
        sa.Column("term_end", sa.Date(), nullable=False),
        sa.Column("purpose_note", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("requested_by", ID, nullable=True),
        sa.Column("decided_by", ID, nullable=True),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["policy_operation_agreement.id"],
            name=op.f("fk_policy_operation_use_agreement_id_policy_operation_agreement"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_operation_use")),
        sa.UniqueConstraint("grant_id", name=op.f("uq_policy_operation_use_grant_id")),
    )
    op.create_index(
        op.f("ix_policy_operation_use_agreement_id"), "policy_operation_use", ["agreement_id"]
    )
    op.create_index(
        "ix_policy_operation_use_grantee", "policy_operation_use", ["grantee_id", "created_at"]
    )
    op.create_index(
        "ix_policy_operation_use_operator_decided",
        "policy_operation_use",
        ["operator_id", "decided_on"],
    )
    op.create_table(
        "policy_operation_cost",
        sa.Column("id", ID, nullable=False),
        sa.Column("operator_id", ID, nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_by", ID, nullable=True),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        _party_fk("policy_operation_cost", "operator_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_operation_cost")),
    )
    op.create_index(
        "ix_policy_operation_cost_operator_year", "policy_operation_cost", ["operator_id", "year"]
    )
    op.create_table(
        "policy_operation_report",
        sa.Column("id", ID, nullable=False),
        sa.Column("operator_id", ID, nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("filed_on", sa.Date(), nullable=False),
        sa.Column("filed_by", ID, nullable=True),
        sa.Column("filed_by_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        _party_fk("policy_operation_report", "operator_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_operation_report")),
        sa.UniqueConstraint(
            "operator_id", "year", name=op.f("uq_policy_operation_report_operator_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("policy_operation_report")
    op.drop_index("ix_policy_operation_cost_operator_year", table_name="policy_operation_cost")
    op.drop_table("policy_operation_cost")
    op.drop_index("ix_policy_operation_use_operator_decided", table_name="policy_operation_use")
    op.drop_index("ix_policy_operation_use_grantee", table_name="policy_operation_use")
    op.drop_index(op.f("ix_policy_operation_use_agreement_id"), table_name="policy_operation_use")
    op.drop_table("policy_operation_use")
    op.drop_index("ix_policy_operation_fee_operator_asset", table_name="policy_operation_fee")
    op.drop_table("policy_operation_fee")
    op.drop_index(
        op.f("ix_policy_operation_profit_rate_effective_from"),
        table_name="policy_operation_profit_rate",
    )
    op.drop_table("policy_operation_profit_rate")
    op.drop_index("ix_policy_operation_fee_cap_unit_from", table_name="policy_operation_fee_cap")
    op.drop_table("policy_operation_fee_cap")
    op.drop_index(
        op.f("ix_policy_operation_agreement_asset_asset_id"),
        table_name="policy_operation_agreement_asset",
    )
    op.drop_table("policy_operation_agreement_asset")
    op.drop_index(
        "ix_policy_operation_agreement_state_end", table_name="policy_operation_agreement"
    )
    op.drop_index(
        "ix_policy_operation_agreement_operator_state", table_name="policy_operation_agreement"
    )
    op.drop_index(
        op.f("ix_policy_operation_agreement_body_id"), table_name="policy_operation_agreement"
    )
    op.drop_table("policy_operation_agreement")

"""settlement: the double-entry money ledger

Tables of ``datafactor.settlement.models`` (accounts, balances, journals, lines, escrow holds,
the local bank's transfers, batches, reconciliations, daily anchors); the exchange's own accounts
with their zero balances (custody bank, fee income, broker commissions payable, the treasury's
non-tax revenue — the last three as 8 sub-accounts each); and the triggers that make journals and lines append-only in the database
itself — an ``UPDATE`` or ``DELETE`` (and on PostgreSQL a ``TRUNCATE``) is refused whoever runs
it. Written by hand to match the models (``alembic check`` runs in the tests).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25 22:40:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import datafactor.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The exchange's own accounts; fee income, commissions payable and the treasury's non-tax revenue
# are each kept as 8 sub-accounts (``…``, ``…:1`` … ``…:7``) that captures spread over, so
# concurrent settlements do not all queue on one balance row (settlement/domain.py).
SHARDS = 8
SYSTEM_ACCOUNTS = (
    ("sys:bank", "bank"),
    *(
        (base if n == 0 else f"{base}:{n}", kind)
        for base, kind in (
            ("sys:commissions", "commissions"),
            ("sys:fee-income", "fee_income"),
            ("sys:treasury", "treasury"),
        )
        for n in range(SHARDS)
    ),
)
APPEND_ONLY = ("settlement_journal", "settlement_line")


def upgrade() -> None:
    op.create_table(
        "settlement_account",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("party_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"], ["party.id"], name=op.f("fk_settlement_account_party_id_party")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_account")),
        sa.UniqueConstraint("party_id", "kind", name=op.f("uq_settlement_account_party_id")),
    )
    op.create_table(
        "settlement_balance",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["settlement_account.id"],
            name=op.f("fk_settlement_balance_account_id_settlement_account"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_settlement_balance")),
    )
    op.create_table(
        "settlement_journal",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("hold_id", sa.String(length=36), nullable=True),
        sa.Column("related_journal_id", sa.String(length=36), nullable=True),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("bank_reference", sa.String(length=40), nullable=True),
        sa.Column("memo", sa.String(length=200), nullable=False),
        sa.Column("actor_user_id", sa.String(length=36), nullable=True),
        sa.Column("actor_name", sa.String(length=64), nullable=False),
        sa.Column("posted_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("rules_version", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_journal")),
        sa.UniqueConstraint("scope", "idempotency_key", name=op.f("uq_settlement_journal_scope")),
    )
    with op.batch_alter_table("settlement_journal", schema=None) as batch_op:
        batch_op.create_index("ix_settlement_journal_posted", ["posted_at", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_settlement_journal_batch_id"), ["batch_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_settlement_journal_hold_id"), ["hold_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_settlement_journal_reference"), ["reference"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_settlement_journal_related_journal_id"),
            ["related_journal_id"],
            unique=False,
        )

    op.create_table(
        "settlement_line",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("journal_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
        sa.Column("posted_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["settlement_account.id"],
            name=op.f("fk_settlement_line_account_id_settlement_account"),
        ),
        sa.ForeignKeyConstraint(
            ["journal_id"],
            ["settlement_journal.id"],
            name=op.f("fk_settlement_line_journal_id_settlement_journal"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_line")),
        sa.UniqueConstraint("account_id", "seq", name=op.f("uq_settlement_line_account_id")),
    )
    with op.batch_alter_table("settlement_line", schema=None) as batch_op:
        batch_op.create_index(
            "ix_settlement_line_account_posted", ["account_id", "posted_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_settlement_line_journal_id"), ["journal_id"], unique=False
        )

    op.create_table(
        "settlement_hold",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("party_id", sa.String(length=36), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("released_fen", sa.BigInteger(), nullable=False),
        sa.Column("captured_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("freeze_journal_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"], ["party.id"], name=op.f("fk_settlement_hold_party_id_party")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_hold")),
    )
    with op.batch_alter_table("settlement_hold", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlement_hold_party_id"), ["party_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_settlement_hold_reference"), ["reference"], unique=False
        )

    op.create_table(
        "settlement_bank_transfer",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("party_id", sa.String(length=36), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("bank_reference", sa.String(length=40), nullable=False),
        sa.Column("journal_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"], ["party.id"], name=op.f("fk_settlement_bank_transfer_party_id_party")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_bank_transfer")),
        sa.UniqueConstraint(
            "bank_reference", name=op.f("uq_settlement_bank_transfer_bank_reference")
        ),
        sa.UniqueConstraint("journal_id", name=op.f("uq_settlement_bank_transfer_journal_id")),
    )
    with op.batch_alter_table("settlement_bank_transfer", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_settlement_bank_transfer_party_id"), ["party_id"], unique=False
        )

    op.create_table(
        "settlement_batch",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("instructions", sa.Integer(), nullable=False),
        sa.Column("settled", sa.Integer(), nullable=False),
        sa.Column("replayed", sa.Integer(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("actor_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_batch")),
        sa.UniqueConstraint("scope", "idempotency_key", name=op.f("uq_settlement_batch_scope")),
    )
    op.create_table(
        "settlement_reconciliation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.Column("actor_user_id", sa.String(length=36), nullable=True),
        sa.Column("actor_name", sa.String(length=64), nullable=False),
        sa.Column("balanced", sa.Boolean(), nullable=False),
        sa.Column("sum_fen", sa.String(length=40), nullable=False),
        sa.Column("journals", sa.BigInteger(), nullable=False),
        sa.Column("accounts", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("days_anchored", sa.Integer(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_reconciliation")),
    )
    with op.batch_alter_table("settlement_reconciliation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_settlement_reconciliation_run_at"), ["run_at"], unique=False
        )

    op.create_table(
        "settlement_day_anchor",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("journals", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("anchored_at", datafactor.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_settlement_day_anchor")),
    )

    # The exchange's own accounts, with their zero balances.
    now = datetime.now(UTC).replace(tzinfo=None)
    account = sa.table(
        "settlement_account",
        sa.column("id", sa.String),
        sa.column("party_id", sa.String),
        sa.column("kind", sa.String),
        sa.column("created_at", sa.DateTime),
    )
    balance = sa.table(
        "settlement_balance",
        sa.column("account_id", sa.String),
        sa.column("balance_fen", sa.BigInteger),
        sa.column("lines", sa.BigInteger),
        sa.column("updated_at", sa.DateTime),
    )
    op.bulk_insert(
        account,
        [{"id": i, "party_id": None, "kind": k, "created_at": now} for i, k in SYSTEM_ACCOUNTS],
    )
    op.bulk_insert(
        balance,
        [
            {"account_id": i, "balance_fen": 0, "lines": 0, "updated_at": now}
            for i, _ in SYSTEM_ACCOUNTS
        ],
    )

    # Journals and lines are append-only in the database itself.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION settlement_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'settlement: % is append-only (rule SET-APPEND-ONLY)', "
            "TG_TABLE_NAME USING ERRCODE = 'raise_exception'; END $$"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION settlement_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION settlement_append_only()"
            )
    else:
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'settlement: {table} is append-only "
                    "(rule SET-APPEND-ONLY)'); END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS settlement_append_only()")
    else:
        for table in APPEND_ONLY:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{event}")

    op.drop_table("settlement_day_anchor")
    with op.batch_alter_table("settlement_reconciliation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_reconciliation_run_at"))
    op.drop_table("settlement_reconciliation")
    op.drop_table("settlement_batch")
    with op.batch_alter_table("settlement_bank_transfer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_bank_transfer_party_id"))
    op.drop_table("settlement_bank_transfer")
    with op.batch_alter_table("settlement_hold", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_hold_reference"))
        batch_op.drop_index(batch_op.f("ix_settlement_hold_party_id"))
    op.drop_table("settlement_hold")
    with op.batch_alter_table("settlement_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_line_journal_id"))
        batch_op.drop_index("ix_settlement_line_account_posted")
    op.drop_table("settlement_line")
    with op.batch_alter_table("settlement_journal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_journal_related_journal_id"))
        batch_op.drop_index(batch_op.f("ix_settlement_journal_reference"))
        batch_op.drop_index(batch_op.f("ix_settlement_journal_hold_id"))
        batch_op.drop_index(batch_op.f("ix_settlement_journal_batch_id"))
        batch_op.drop_index("ix_settlement_journal_posted")
    op.drop_table("settlement_journal")
    op.drop_table("settlement_balance")
    op.drop_table("settlement_account")

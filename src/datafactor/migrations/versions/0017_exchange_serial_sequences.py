"""exchange: on PostgreSQL, order, contract and the other exchange numbers drawn from a sequence
per kind (no row lock held to commit by every trade; a rolled-back step leaves a gap); the year's
row keeps the sequence value its serials count from

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-26 11:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The kinds of ``datafactor.exchange.serials.KINDS`` (a migration does not import the app).
KINDS = ("l", "o", "c", "a", "n")


def upgrade() -> None:
    with op.batch_alter_table("exchange_serial", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sequence_base", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # Rows of years numbered before this revision get their base on their next number
        # (``serials.take``: the sequence's last value minus the serials already issued).
        for kind in KINDS:
            op.execute(f"CREATE SEQUENCE exchange_serial_{kind} AS bigint START WITH 1")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for kind in KINDS:
            # Back to row counters: each year's last serial is its last drawn value.
            op.get_bind().execute(
                sa.text(
                    "UPDATE exchange_serial SET last_serial = GREATEST(last_serial, "
                    "COALESCE(pg_sequence_last_value(CAST(:sequence AS regclass)), 0) "
                    "- sequence_base) WHERE kind = :kind AND sequence_base IS NOT NULL"
                ),
                {"sequence": f"exchange_serial_{kind}", "kind": kind.upper()},
            )
            op.execute(f"DROP SEQUENCE exchange_serial_{kind}")
    with op.batch_alter_table("exchange_serial", schema=None) as batch_op:
        batch_op.drop_column("sequence_base")

"""audit: several chains on PostgreSQL (a transaction appends to one, picked at random), so
writers no longer all wait on one head row through each other's commits; each event's place in
its chain (``chain``, ``chain_seq``), each head's last event in the whole trail (``event_seq``),
and the trail's places drawn from a sequence on PostgreSQL

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-26 11:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAINS = 8  # ``datafactor.audit.CHAINS`` (a migration does not import the app)
GENESIS_HASH = "0" * 64


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain", sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
    # Every event so far is in chain 1, in the order of its place in the trail.
    op.execute("UPDATE audit_event SET chain = 1, chain_seq = seq")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.alter_column("chain", existing_type=sa.SmallInteger(), nullable=False)
        batch_op.alter_column("chain_seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_audit_event_chain"), ["chain", "chain_seq"]
        )
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_seq", sa.BigInteger(), nullable=True))
    op.execute("UPDATE audit_chain_head SET event_seq = seq")
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.alter_column("event_seq", existing_type=sa.BigInteger(), nullable=False)
    head = sa.table(
        "audit_chain_head",
        sa.column("id", sa.Integer),
        sa.column("seq", sa.BigInteger),
        sa.column("hash", sa.String),
        sa.column("event_seq", sa.BigInteger),
    )
    op.bulk_insert(
        head,
        [
            {"id": chain, "seq": 0, "hash": GENESIS_HASH, "event_seq": 0}
            for chain in range(2, CHAINS + 1)
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE audit_event_seq AS bigint START WITH 1")
        op.execute(
            "SELECT setval('audit_event_seq', GREATEST(COALESCE(MAX(seq), 0), 1), "
            "MAX(seq) IS NOT NULL) FROM audit_event"
        )


def downgrade() -> None:
    # One chain again: only a trail written to chain 1 alone can go back.
    found = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM audit_event WHERE chain <> 1"))
    if found.scalar_one():
        raise RuntimeError("events were written to audit chains other than 1: cannot downgrade")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE audit_event_seq")
    op.execute("DELETE FROM audit_chain_head WHERE id <> 1")
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.drop_column("event_seq")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_event_chain"), type_="unique")
        batch_op.drop_column("chain_seq")
        batch_op.drop_column("chain")

"""ledger: look entries up by leaf hash through an index keyed (idx >> 12, leaf_hash)

A plain index on ``leaf_hash`` puts each new entry on a random page of a B-tree as large as the
log, so every group commit wrote (and fsynced) about one index page per entry — more than the
entries and subtree hashes themselves. Keyed first by the entry's block of 4,096 indexes, a
batch's index rows land on the few pages of the current block. A lookup then seeks once per
block (``services.find_by_leaf_hash``): about 250 seeks at 10^6 entries.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-26 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_ledger_entry_leaf_hash", table_name="ledger_entry")
    op.create_index(
        "ix_ledger_entry_leaf_bucket", "ledger_entry", [sa.text("(idx >> 12)"), "leaf_hash"]
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entry_leaf_bucket", table_name="ledger_entry")
    op.create_index("ix_ledger_entry_leaf_hash", "ledger_entry", ["leaf_hash"])

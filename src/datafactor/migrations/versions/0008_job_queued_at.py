"""job queued_at: scan and de-identification jobs say when they last entered the queue

``scan_job.queued_at`` and ``deidentification_job.queued_at`` are set when a job is queued and
again whenever it goes back to the queue (a stale runner, a shutdown), and the queue timeout
counts from them — from ``requested_at`` a job re-queued after a long run expired at once.
Existing rows get their ``requested_at``. The status index follows the column the runners claim
and sweep by. ``detokenisation_quota`` is one row per trustee party, locked by each reversal so
that concurrent requests cannot both pass the hourly limit. Written by hand (the column needs its
backfill before it is NOT NULL), then checked against the models with ``alembic check``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import datafactor.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("scan_job", "deidentification_job")


def upgrade() -> None:
    op.create_table(
        "detokenisation_quota",
        sa.Column("party_id", sa.String(length=36), nullable=False),
        sa.Column("reversed_total", sa.BigInteger(), nullable=False),
        sa.Column("last_at", datafactor.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("party_id", name=op.f("pk_detokenisation_quota")),
    )
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("queued_at", datafactor.db.UTCDateTime(), nullable=True))
        job = sa.table(table, sa.column("queued_at"), sa.column("requested_at"))
        op.execute(job.update().values(queued_at=job.c.requested_at))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "queued_at", existing_type=datafactor.db.UTCDateTime(), nullable=False
            )
            batch_op.drop_index(f"ix_{table}_status_requested")
            batch_op.create_index(
                f"ix_{table}_status_queued", ["status", "queued_at"], unique=False
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_status_queued")
            batch_op.create_index(
                f"ix_{table}_status_requested", ["status", "requested_at"], unique=False
            )
            batch_op.drop_column("queued_at")
    op.drop_table("detokenisation_quota")

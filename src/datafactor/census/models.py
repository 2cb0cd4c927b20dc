"""Census tables: runs over a department's database, and one inventory entry per table found."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import ID, Base, UTCDateTime, new_id, utcnow


class CensusRun(Base):
    """One census (普查任务) of one department database, run in the background or by the CLI.

    ``party_id`` is the department the inventory is attributed to; ``started_by_party_id`` the
    party that asked for it (the department itself, or the big-data bureau on its behalf). The
    URL is stored sealed (``source_url_sealed``); ``source_url`` is its redacted form for display
    and ``source_key`` (backend, host, port, database) says which database it is across runs.
    ``status`` walks queued → running → succeeded | failed | cancelled (the last two resumable);
    the progress counters are kept in step with the tables as each is stored, and
    ``current_table`` / ``current_rows`` by the runner's heartbeat.
    """

    __tablename__ = "census_run"
    __table_args__ = (
        Index("ix_census_run_status_queued", "status", "queued_at"),
        Index("ix_census_run_party_requested", "party_id", "requested_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    party_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    party_name: Mapped[str] = mapped_column(String(128))
    started_by_party_id: Mapped[str] = mapped_column(ID)
    requested_by: Mapped[str | None] = mapped_column(ID)
    requested_by_name: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source_url_sealed: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str] = mapped_column(String(512))
    source_key: Mapped[str] = mapped_column(String(512))
    backend: Mapped[str] = mapped_column(String(16))
    schema_filter: Mapped[str | None] = mapped_column(String(128))
    sample_rows: Mapped[int] = mapped_column(Integer)
    domain: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    # When it last entered the queue (request, requeue or resume): the queue timeout counts from it.
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runner_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(64))
    listed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    schemas_total: Mapped[int | None] = mapped_column(Integer)
    tables_total: Mapped[int | None] = mapped_column(Integer)
    tables_done: Mapped[int] = mapped_column(Integer, default=0)
    tables_failed: Mapped[int] = mapped_column(Integer, default=0)
    rows_counted: Mapped[int] = mapped_column(BigInteger, default=0)
    current_table: Mapped[str | None] = mapped_column(String(512))
    current_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CensusTable(Base):
    """One table (or view) a census found: the inventory entry attributed to the department.

    Written pending when the run lists the database, then completed as the table is read: row
    count, columns (name, type, nullable, entity types found, sensitive), the entity types of the
    table, grade and quality score from the sample scan — or the reason it could not be read.
    ``reads`` counts how often it was read (a resumed run never reads a done table again).
    ``current`` marks the entries of a department's current inventory: those of the last
    succeeded run over the same database (``source_key``) and schemas.
    """

    __tablename__ = "census_table"
    __table_args__ = (
        UniqueConstraint("run_id", "schema_name", "table_name"),
        Index("ix_census_table_run_position", "run_id", "position"),
        Index("ix_census_table_party_current", "party_id", "current"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("census_run.id"))
    party_id: Mapped[str] = mapped_column(ID)
    source_key: Mapped[str] = mapped_column(String(512))
    position: Mapped[int] = mapped_column(Integer)
    schema_name: Mapped[str] = mapped_column(String(128))
    table_name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    column_count: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    pi_types: Mapped[list[str] | None] = mapped_column(JSON)
    has_pi: Mapped[bool] = mapped_column(Boolean, default=False)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    grade: Mapped[str | None] = mapped_column(String(16))
    quality_score: Mapped[float | None] = mapped_column(Float)
    rows_scanned: Mapped[int | None] = mapped_column(BigInteger)
    individuals: Mapped[int | None] = mapped_column(BigInteger)
    reads: Mapped[int] = mapped_column(Integer, default=0)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    current: Mapped[bool] = mapped_column(Boolean, default=False)

"""Tables of the sandbox: the holders' profiles of their data sets, the privacy-budget accounts,
and the record of every query.

Party, asset, grant, contract and data-set ids are kept by id only: they belong to other domains
(identity, registry, policy, exchange, data plane). ε is stored as whole micro-ε (``BigInteger``,
1 ε = 1,000,000) so that charges and refunds add up exactly on both databases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import ID, Base, UTCDateTime, new_id, utcnow

MICRO: int = 1_000_000  # micro-ε per ε


class SandboxProfile(Base):
    """How the holder of a registered asset lets it be computed on: the data-set version the
    sandbox reads, the table name grantees write, each column's role (``domain.ColumnRole``)
    with its type and, for measures, the clamping bounds; ``large`` runs it on Spark."""

    __tablename__ = "sandbox_profile"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    asset_id: Mapped[str] = mapped_column(ID, unique=True)
    holder_id: Mapped[str] = mapped_column(ID, index=True)
    dataset_id: Mapped[str | None] = mapped_column(ID)
    version_id: Mapped[str] = mapped_column(ID)
    table_name: Mapped[str] = mapped_column(String(64))
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    large: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SandboxBudget(Base):
    """The privacy-budget account of one grant (or contract) over one asset: total and spent
    in micro-ε. Charged under its row lock before a query runs, refunded if the query fails."""

    __tablename__ = "sandbox_budget"
    __table_args__ = (UniqueConstraint("grant_ref", "asset_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    grant_ref: Mapped[str] = mapped_column(ID)  # a policy grant's or an exchange contract's id
    grant_kind: Mapped[str] = mapped_column(String(16))  # "grant" or "contract"
    grantee_id: Mapped[str] = mapped_column(ID, index=True)
    holder_id: Mapped[str] = mapped_column(ID, index=True)
    asset_id: Mapped[str] = mapped_column(ID)
    total_micro: Mapped[int] = mapped_column(BigInteger)
    spent_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SandboxQuery(Base):
    """One query: who asked under which grant, the text, the decision with its reasons and rule
    ids, the ε charged (and whether refunded), k, the engine, the result's hash and — while held
    for review or once released — the result itself (capped in size), the ledger index."""

    __tablename__ = "sandbox_query"
    __table_args__ = (
        Index("ix_sandbox_query_grantee_created", "grantee_id", "created_at"),
        Index("ix_sandbox_query_holder_created", "holder_id", "created_at"),
        Index("ix_sandbox_query_grant_created", "grant_ref", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    grant_ref: Mapped[str] = mapped_column(ID)
    grant_kind: Mapped[str] = mapped_column(String(16))
    grantee_id: Mapped[str] = mapped_column(ID)
    holder_id: Mapped[str] = mapped_column(ID)
    asset_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    user_id: Mapped[str | None] = mapped_column(ID)
    username: Mapped[str] = mapped_column(String(64))
    sql: Mapped[str] = mapped_column(Text)
    # 128 random bits: the ledger's sql_sha256 is over {"salt", "sql"}, so a public ledger does
    # not let anyone confirm a guessed query text (None on rows written before it existed).
    sql_salt: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # domain.QueryState
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    epsilon_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    k: Mapped[int | None] = mapped_column(Integer)
    engine: Mapped[str | None] = mapped_column(String(16))
    result_hash: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"columns": [...], "rows": [...]}
    row_count: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    reviewed_by: Mapped[str | None] = mapped_column(ID)
    review_note: Mapped[str] = mapped_column(Text, default="")
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

"""Request and response bodies of the sandbox API (``/api/v1/sandbox``).

The query answer's shape is the integrators' contract (issue 8, item 6): ``decision``,
``reasons``, ``columns``, ``rows``, ``epsilon_spent`` — plus ``id``, ``state``, ``k``, ``held``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datafactor.sandbox import services


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryCreate(Strict):
    grant_id: str = Field(min_length=1, max_length=64)
    sql: str = Field(min_length=1, max_length=100_000)
    epsilon: float | None = Field(default=None, description="ε this query may spend.")


class ReasonPublic(BaseModel):
    rule: str
    en: str
    zh: str


class QueryAnswer(BaseModel):
    decision: str
    reasons: list[ReasonPublic]
    columns: list[str]
    rows: list[list[Any]]
    epsilon_spent: float
    id: str | None = None
    state: str | None = None
    k: int | None = None
    held: bool = False
    engine: str | None = None
    result_hash: str | None = None


class PreviewAnswer(BaseModel):
    decision: str
    reasons: list[ReasonPublic]
    columns: list[str]
    epsilon: float
    epsilon_left: float | None
    k: int
    review: bool


class ColumnPublic(BaseModel):
    name: str
    type: str
    role: str
    lower: float | None = None
    upper: float | None = None


class TablePublic(BaseModel):
    name: str
    columns: list[ColumnPublic]


class GrantPublic(BaseModel):
    id: str
    kind: str
    number: str
    state: str
    holder_id: str
    grantee_id: str
    asset_id: str
    term_start: str
    term_end: str
    tables: list[TablePublic]
    k: int
    epsilon_total: float | None
    budget_left: float | None
    review: bool
    usable: bool
    reasons: list[ReasonPublic]


class QueryRecord(BaseModel):
    id: str
    grant_id: str
    grant_kind: str
    grantee_id: str
    holder_id: str
    asset_ids: list[str]
    username: str
    sql: str
    sql_sha256: str  # as on the ledger: SHA-256 over {"salt": sql_salt, "sql": sql}
    sql_salt: str | None = None
    decision: str
    state: str
    reasons: list[ReasonPublic]
    rules: list[str]
    epsilon_spent: float
    refunded: bool
    k: int | None
    engine: str | None
    held: bool
    result_hash: str | None
    columns: list[str]
    rows: list[list[Any]]
    result_salt: str | None = None  # with the result: result_hash = SHA-256 over it and this
    row_count: int | None
    duration_ms: int | None
    ledger_index: int | None
    review_note: str
    reviewed_at: str | None
    created_at: str


class QueryPage(BaseModel):
    items: list[QueryRecord]
    total: int
    limit: int
    offset: int


class ColumnDeclare(Strict):
    name: str = Field(min_length=1, max_length=256)
    role: str
    lower: float | None = None
    upper: float | None = None


class ProfileDeclare(Strict):
    table: str = Field(min_length=1, max_length=64)
    columns: list[ColumnDeclare]
    version_id: str | None = None
    large: bool = False

    def draft(self, asset_id: str) -> services.ProfileDraft:
        return services.ProfileDraft(
            asset_id=asset_id,
            table_name=self.table,
            columns=tuple(
                services.ColumnDraft(c.name, c.role, c.lower, c.upper) for c in self.columns
            ),
            version_id=self.version_id,
            large=self.large,
        )


class ProfilePublic(BaseModel):
    asset_id: str
    holder_id: str
    dataset_id: str | None
    version_id: str
    table: str
    large: bool
    columns: list[ColumnPublic]
    updated_at: str


class ReviewCreate(Strict):
    release: bool
    note: str = Field(default="", max_length=2000)

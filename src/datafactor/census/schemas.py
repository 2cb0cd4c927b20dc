"""API shapes of the census: requests to start, resume and force-cancel a run; a run with its
progress; the inventory entries; the figures of a run, a department and the province."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datafactor.census.domain import (
    ENDED,
    MAX_SAMPLE_ROWS,
    RESUMABLE,
    CensusStatus,
    DepartmentTotals,
    Rollup,
    TableStatus,
    Totals,
    progress_percent,
)
from datafactor.census.models import CensusRun, CensusTable
from datafactor.web.i18n import gettext


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CensusCreate(Strict):
    url: str = Field(
        max_length=2000,
        description="SQLAlchemy URL of the department's database, e.g. "
        "postgresql+psycopg://user:password@host/dbname. Stored encrypted; shown only with the "
        "password hidden.",
    )
    party_id: str | None = Field(
        None,
        max_length=36,
        description="The department censused (the big-data bureau names one); default: your own.",
    )
    schema_name: str | None = Field(
        None, alias="schema", max_length=128, description="Only this schema (default: all)."
    )
    sample_rows: int | None = Field(
        None,
        ge=1,
        le=MAX_SAMPLE_ROWS,
        description="Rows read from each table for its scan (default: DATAFACTOR_CENSUS_SAMPLE_ROWS).",
    )
    domain: str | None = Field(
        None,
        max_length=32,
        description="The department's domain for the grading rules' important-data catalogues.",
    )


class CensusResume(Strict):
    url: str | None = Field(
        None,
        max_length=2000,
        description="A new URL of the same database (new credentials); default: the stored one.",
    )


class ForceCancel(Strict):
    reason: str = Field(max_length=2000, description="Why the census is force-cancelled (audited).")


class Problem(BaseModel):
    code: str
    message: str


def _error(code: str | None, message: str | None, params: dict[str, Any] | None) -> Problem | None:
    if not message:
        return None
    return Problem(code=code or "error", message=gettext(message, **(params or {})))


class CensusRunPublic(BaseModel):
    id: str
    party_id: str = Field(description="The department the inventory is attributed to.")
    party_name: str
    started_by_party_id: str
    requested_by: str
    requested_at: datetime
    source_url: str = Field(description="The database, password hidden.")
    schema_name: str | None = Field(serialization_alias="schema")
    sample_rows: int
    domain: str | None
    status: CensusStatus
    final: bool = Field(description="Ended: succeeded, failed or cancelled.")
    resumable: bool
    attempts: int
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    schemas_total: int | None
    tables_total: int | None = Field(description="Tables and views listed; null before listing.")
    tables_done: int
    tables_failed: int
    rows_counted: int = Field(description="Rows of the tables read so far (exact counts).")
    current_table: str | None
    current_rows: int
    percent: int | None = Field(description="Tables read of tables listed, 0–100.")
    cancel_requested: bool
    error: Problem | None

    @classmethod
    def of(cls, run: CensusRun) -> CensusRunPublic:
        read = run.tables_done + run.tables_failed
        return cls(
            id=run.id,
            party_id=run.party_id,
            party_name=run.party_name,
            started_by_party_id=run.started_by_party_id,
            requested_by=run.requested_by_name,
            requested_at=run.requested_at,
            source_url=run.source_url,
            schema_name=run.schema_filter,
            sample_rows=run.sample_rows,
            domain=run.domain,
            status=CensusStatus(run.status),
            final=run.status in ENDED,
            resumable=run.status in RESUMABLE,
            attempts=run.attempts,
            started_at=run.started_at,
            heartbeat_at=run.heartbeat_at,
            finished_at=run.finished_at,
            schemas_total=run.schemas_total,
            tables_total=run.tables_total,
            tables_done=run.tables_done,
            tables_failed=run.tables_failed,
            rows_counted=run.rows_counted,
            current_table=run.current_table,
            current_rows=run.current_rows,
            percent=progress_percent(read, run.tables_total, run.status),
            cancel_requested=run.cancel_requested_at is not None,
            error=_error(run.error_code, run.error_message, run.error_params),
        )


class ColumnPublic(BaseModel):
    name: str
    type: str
    nullable: bool
    entity_types: list[str] = Field(description="Entity types the sample scan found.")
    sensitive: bool


class CensusTablePublic(BaseModel):
    """One inventory entry: a table or view of the department's database."""

    id: str
    schema_name: str = Field(serialization_alias="schema")
    table: str
    kind: str
    status: TableStatus
    row_count: int | None
    column_count: int | None
    columns: list[ColumnPublic]
    pi_types: list[str] = Field(
        description="Entity types of personal information found in any column (sample scan)."
    )
    has_pi: bool
    sensitive: bool = Field(description="Holds sensitive personal information (PIPL art. 28).")
    grade: str | None = Field(
        description="GB/T 43697 grade from the sample: general, important, core."
    )
    quality_score: float | None = Field(description="GB/T 36344 score 0–100 from the sample.")
    rows_scanned: int | None
    individuals: int | None = Field(description="Distinct individuals in the sample (lower bound).")
    read_at: datetime | None
    error: Problem | None

    @classmethod
    def of(cls, entry: CensusTable) -> CensusTablePublic:
        return cls(
            id=entry.id,
            schema_name=entry.schema_name,
            table=entry.table_name,
            kind=entry.kind,
            status=TableStatus(entry.status),
            row_count=entry.row_count,
            column_count=entry.column_count,
            columns=[
                ColumnPublic(
                    name=str(c.get("name", "")),
                    type=str(c.get("type", "")),
                    nullable=bool(c.get("nullable", True)),
                    entity_types=[str(t) for t in c.get("entity_types") or []],
                    sensitive=bool(c.get("sensitive")),
                )
                for c in entry.columns or []
            ],
            pi_types=list(entry.pi_types or []),
            has_pi=entry.has_pi,
            sensitive=entry.sensitive,
            grade=entry.grade,
            quality_score=entry.quality_score,
            rows_scanned=entry.rows_scanned,
            individuals=entry.individuals,
            read_at=entry.read_at,
            error=_error(entry.error_code, entry.error_message, entry.error_params),
        )


class TotalsPublic(BaseModel):
    tables: int = Field(description="Tables and views listed.")
    tables_read: int
    tables_failed: int = Field(description="Tables that could not be read (each says why).")
    rows: int
    columns: int
    pi_tables: int = Field(description="Tables with personal information.")
    sensitive_tables: int = Field(description="Tables with sensitive personal information.")
    grades: dict[str, int] = Field(description="Tables read per GB/T 43697 grade.")
    quality_average: float | None

    @classmethod
    def of(cls, totals: Totals) -> TotalsPublic:
        return cls(**totals.as_dict())


class CensusSummary(BaseModel):
    """A run with the figures of its inventory so far."""

    run: CensusRunPublic
    totals: TotalsPublic


class DepartmentTotalsPublic(BaseModel):
    party_id: str
    party_name: str
    last_census_at: datetime | None
    databases: int = Field(description="Databases whose last census succeeded.")
    totals: TotalsPublic

    @classmethod
    def of(cls, department: DepartmentTotals) -> DepartmentTotalsPublic:
        return cls(
            party_id=department.party_id,
            party_name=department.party_name,
            last_census_at=department.last_census_at,
            databases=department.databases,
            totals=TotalsPublic.of(department.totals),
        )


class RollupPublic(BaseModel):
    """Each department's current inventory and the province's sum (what the caller may see)."""

    departments: list[DepartmentTotalsPublic]
    province: TotalsPublic

    @classmethod
    def of(cls, rollup: Rollup) -> RollupPublic:
        return cls(
            departments=[DepartmentTotalsPublic.of(d) for d in rollup.departments],
            province=TotalsPublic.of(rollup.province),
        )

"""The census's rules (政务数据资产普查): run states and their timeouts, the checks on a request,
and how an inventory's figures add up — per run, per department, and to the province.

Pure Python (no web framework, no ORM): ``services.py`` loads rows, asks these functions what to
do, and writes. A census run walks::

    queued ──claim──▶ running ──▶ succeeded
      │                 │  ▲         (every table listed was read, or could not be and says why)
      │                 │  └── heartbeat stale: back to queued — the next claim resumes it
      │                 ├──▶ failed    (the database went away, a timeout): resumable
      │                 └──▶ cancelled (on request, at the runner's next check): resumable
      └──▶ cancelled / failed (never claimed within the queue timeout)
    failed | cancelled ──resume──▶ queued (tables already read are kept and not read again)

Each non-final state has an owner and a timeout, the rules every background job shares
(``datafactor.jobs.state``, re-exported here as ``CensusStatus``, ``RunTimeouts``, ``RunClock``,
``StopReason``, ``sweep_action``): a queued run belongs to the queue until ``queue_timeout`` has
passed since it last entered the queue, a running one to the runner named on it while its
heartbeat is fresh and at most ``max_run``. What a census adds is that one that loses its runner
*resumes* — the tables it already read stay read. ``succeeded`` is final; ``failed`` and ``cancelled`` end a run's work but leave it
resumable by the department (or the big-data bureau), so nothing needs a timeout there.

A run's figures (``Totals``) count the tables it listed, their rows and columns, the tables with
personal information and with sensitive personal information, and the GB/T 43697 grades. A
department's current inventory is, per database, the last *succeeded* run's tables; the
province's totals are the sum of its departments'.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from datafactor.errors import N_, InvalidInput
from datafactor.jobs.state import JobClock, JobStatus, JobTimeouts
from datafactor.jobs.state import StopReason as StopReason
from datafactor.jobs.state import SweepAction as SweepAction
from datafactor.jobs.state import overran as overran
from datafactor.jobs.state import sweep_action as sweep_action

MAX_SAMPLE_ROWS: Final = 1_000_000
NAME_MAX: Final = 128
REASON_MAX: Final = 500
GRADES: Final = ("general", "important", "core")  # GB/T 43697, lowest first
DEPARTMENT_KIND: Final = "government_department"


# A census run walks the state machine every background job shares (``datafactor.jobs.state``).
CensusStatus = JobStatus
RunTimeouts = JobTimeouts
RunClock = JobClock
ACTIVE: Final = frozenset({CensusStatus.QUEUED, CensusStatus.RUNNING})
ENDED: Final = frozenset({CensusStatus.SUCCEEDED, CensusStatus.FAILED, CensusStatus.CANCELLED})
RESUMABLE: Final = frozenset({CensusStatus.FAILED, CensusStatus.CANCELLED})


class TableStatus(StrEnum):
    """Where one table of a run stands: not read yet, read, or not readable (with the reason)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class TableKind(StrEnum):
    TABLE = "table"
    VIEW = "view"


class EventTag(StrEnum):
    """Audit action tags of the census (``scope:resource:action``)."""

    RUN_REQUEST = "census:run:request"
    RUN_START = "census:run:start"
    RUN_INVENTORY = "census:run:inventory"
    RUN_SUCCEED = "census:run:succeed"
    RUN_FAIL = "census:run:fail"
    RUN_CANCEL_REQUEST = "census:run:cancel-request"
    RUN_CANCELLED = "census:run:cancelled"
    RUN_FORCE_CANCEL = "census:run:force-cancel"
    RUN_REQUEUE = "census:run:requeue"
    RUN_RESUME = "census:run:resume"


STATUS_LABELS: dict[str, str] = {
    CensusStatus.QUEUED: N_("Queued"),
    CensusStatus.RUNNING: N_("Running"),
    CensusStatus.SUCCEEDED: N_("Finished"),
    CensusStatus.FAILED: N_("Failed"),
    CensusStatus.CANCELLED: N_("Cancelled"),
}
TABLE_STATUS_LABELS: dict[str, str] = {
    TableStatus.PENDING: N_("Not read yet"),
    TableStatus.DONE: N_("Read"),
    TableStatus.FAILED: N_("Could not be read"),
}
KIND_LABELS: dict[str, str] = {TableKind.TABLE: N_("Table"), TableKind.VIEW: N_("View")}
GRADE_LABELS: dict[str, str] = {
    "general": N_("General data"),
    "important": N_("Important data"),
    "core": N_("Core data"),
}
EVENT_LABELS: dict[str, str] = {
    EventTag.RUN_REQUEST: N_("Requested a census"),
    EventTag.RUN_START: N_("Census started"),
    EventTag.RUN_INVENTORY: N_("Census listed the tables"),
    EventTag.RUN_SUCCEED: N_("Census finished"),
    EventTag.RUN_FAIL: N_("Census failed"),
    EventTag.RUN_CANCEL_REQUEST: N_("Asked to cancel a census"),
    EventTag.RUN_CANCELLED: N_("Census cancelled"),
    EventTag.RUN_FORCE_CANCEL: N_("Force-cancelled a census"),
    EventTag.RUN_REQUEUE: N_("Census put back in the queue"),
    EventTag.RUN_RESUME: N_("Resumed a census"),
}

MSG_BAD_SAMPLE: Final = N_("Rows to sample per table: a whole number from 1 to {max:,}.")
MSG_BAD_SCHEMA: Final = N_(
    "A schema name has 1 to 128 characters and no control characters; leave it empty for all "
    "schemas."
)
MSG_REASON: Final = N_("Give a reason (1–500 characters).")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ------------------------------------------------------------------------------------- requests


def check_sample_rows(rows: int | None, default: int) -> int:
    """Rows read from each table (the first ones); ``default`` when not given."""
    value = default if rows is None else rows
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SAMPLE_ROWS:
        raise InvalidInput(MSG_BAD_SAMPLE, field="sample_rows", max=MAX_SAMPLE_ROWS)
    return value


def check_schema(schema: str | None) -> str | None:
    """The schema filter, trimmed; None for every schema."""
    schema = (schema or "").strip()
    if not schema:
        return None
    if len(schema) > NAME_MAX or _CONTROL.search(schema):
        raise InvalidInput(MSG_BAD_SCHEMA, field="schema")
    return schema


def check_reason(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if not reason or len(reason) > REASON_MAX:
        raise InvalidInput(MSG_REASON, field="reason")
    return reason


# ---------------------------------------------------------------------------- the state machine


def progress_percent(tables_read: int, tables_total: int | None, status: str) -> int | None:
    """0–100 for the progress bar (tables read of tables listed); None before the listing."""
    if status == CensusStatus.SUCCEEDED:
        return 100
    if tables_total is None:
        return None
    if tables_total == 0:
        return 0
    return max(0, min(100, int(tables_read * 100 / tables_total)))


# ------------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class ScannedTable:
    """What the census learnt about one table, as the inventory keeps it.

    ``columns`` are ``{name, type, nullable, entity_types, sensitive}``; ``pi_types`` the entity
    types of personal information found in any column, in column order (an organisation's credit
    code is an entity type but not personal information); ``grade`` and ``quality_score`` come from the sample
    scan (GB/T 43697, GB/T 36344).
    """

    row_count: int
    columns: tuple[Mapping[str, Any], ...]
    pi_types: tuple[str, ...]
    sensitive: bool
    grade: str | None
    quality_score: float | None
    rows_scanned: int
    individuals: int | None

    @property
    def has_pi(self) -> bool:
        return bool(self.pi_types)


def table_pi_types(
    columns: Iterable[Mapping[str, Any]], personal: Collection[str]
) -> tuple[str, ...]:
    """The entity types of personal information (``personal``) found in a table's columns, each
    once, in column order."""
    seen: dict[str, None] = {}
    for column in columns:
        for entity in column.get("entity_types") or ():
            if entity in personal:
                seen.setdefault(str(entity), None)
    return tuple(seen)


@dataclass
class Totals:
    """The figures of an inventory: one run, one department, or the province.

    ``tables`` counts every table listed; ``tables_read`` those read, ``tables_failed`` those
    that could not be; rows and columns are summed over the tables whose count is known; the
    quality average is over the tables that have a score.
    """

    tables: int = 0
    tables_read: int = 0
    tables_failed: int = 0
    rows: int = 0
    columns: int = 0
    pi_tables: int = 0
    sensitive_tables: int = 0
    grades: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GRADES, 0))
    quality_sum: float = 0.0
    quality_count: int = 0

    @property
    def quality_average(self) -> float | None:
        if not self.quality_count:
            return None
        return round(self.quality_sum / self.quality_count, 1)

    def add_group(
        self,
        *,
        tables: int,
        tables_read: int,
        tables_failed: int,
        rows: int | None,
        columns: int | None,
        pi_tables: int,
        sensitive_tables: int,
        grade: str | None,
        quality_sum: float | None,
        quality_count: int,
    ) -> None:
        """Add a group of tables of one grade (a row of a ``GROUP BY`` in the services)."""
        self.tables += tables
        self.tables_read += tables_read
        self.tables_failed += tables_failed
        self.rows += rows or 0
        self.columns += columns or 0
        self.pi_tables += pi_tables
        self.sensitive_tables += sensitive_tables
        if grade in self.grades:
            self.grades[grade] += tables_read
        self.quality_sum += quality_sum or 0.0
        self.quality_count += quality_count

    def merge(self, other: Totals) -> None:
        self.tables += other.tables
        self.tables_read += other.tables_read
        self.tables_failed += other.tables_failed
        self.rows += other.rows
        self.columns += other.columns
        self.pi_tables += other.pi_tables
        self.sensitive_tables += other.sensitive_tables
        for grade, count in other.grades.items():
            self.grades[grade] = self.grades.get(grade, 0) + count
        self.quality_sum += other.quality_sum
        self.quality_count += other.quality_count

    def as_dict(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "tables_read": self.tables_read,
            "tables_failed": self.tables_failed,
            "rows": self.rows,
            "columns": self.columns,
            "pi_tables": self.pi_tables,
            "sensitive_tables": self.sensitive_tables,
            "grades": dict(self.grades),
            "quality_average": self.quality_average,
        }


@dataclass(frozen=True)
class DepartmentTotals:
    """One department's current inventory: its figures and when its last census finished."""

    party_id: str
    party_name: str
    last_census_at: datetime | None
    databases: int
    totals: Totals


@dataclass(frozen=True)
class Rollup:
    """The province's roll-up: each department's figures and their sum."""

    departments: tuple[DepartmentTotals, ...]
    province: Totals


def roll_up(departments: Iterable[DepartmentTotals]) -> Rollup:
    """Departments in order of tables held (most first, then by name) and the province's sum."""
    ordered = sorted(departments, key=lambda d: (-d.totals.tables, d.party_name, d.party_id))
    province = Totals()
    for department in ordered:
        province.merge(department.totals)
    return Rollup(tuple(ordered), province)

"""The sandbox's vocabulary and the shapes its parts hand each other (pure: no web, no ORM).

* ``ColumnRole`` — what the holder's profile (and the grant's policy) make of each column:
  ``privacy_unit`` (the column identifying the individual or enterprise a row is about: the unit
  contributions are bounded per, and k counts), ``identifier`` (any other direct identifier:
  never a group key, never inside an aggregate that can return one value), ``group_key`` (may be
  grouped by and filtered on), ``measure`` (numeric, may be summed / averaged / counted, clamped to
  the profile's bounds) and ``forbidden`` (may not appear at all: the policy's ``df:fields`` leave
  it out, or the holder withheld it).
* ``ColumnSpec`` / ``TableSpec`` / ``Catalog`` — what a grant lets its grantee query: table names
  as the grantee writes them, each column with its type (DuckDB type name), role and, for
  measures, the clamping bounds.
* ``Aggregate`` / ``Plan`` — what the checker makes of an allowed query (see ``checker``): the
  output columns in the user's order, the group keys, the aggregates with the bounds their noise
  is calibrated to, and ``staged_sql``: the bounded query the worker runs, whose result has one
  row per group with the group keys, ``__units`` (distinct privacy units in the group) and the
  raw bounded parts of each aggregate (``<name>__count``, ``<name>__sum``).
* ``Limits`` — the worker's resource limits (memory, threads, seconds, result rows).
* ``Released`` — what the grantee gets back: columns, rows, the ε spent, groups suppressed
  not reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from datafactor.errors import N_
from datafactor.policy.engine import Reason

__all__ = [
    "RANK_COLUMN",
    "ROLE_LABELS",
    "Aggregate",
    "Catalog",
    "ColumnRole",
    "ColumnSpec",
    "Engine",
    "Limits",
    "Plan",
    "QueryState",
    "Reason",
    "Released",
    "TableSpec",
]


# The row's number within its privacy unit (1, 2, …, in a fixed order), added to a data set's
# file when it is materialised for the sandbox (``sources.ranked``): never a column the grantee
# can name, it lets the staged query count each unit once (``= 1``) and keep at most L rows of
# it (``<= L``) without a per-unit aggregation stage.
RANK_COLUMN = "__rn"


class ColumnRole(StrEnum):
    PRIVACY_UNIT = "privacy_unit"  # 隐私单元（个人或企业标识）
    IDENTIFIER = "identifier"  # 直接标识符
    GROUP_KEY = "group_key"  # 分组键
    MEASURE = "measure"  # 度量
    FORBIDDEN = "forbidden"  # 禁止使用


ROLE_LABELS = {
    ColumnRole.PRIVACY_UNIT: N_("Privacy unit"),
    ColumnRole.IDENTIFIER: N_("Direct identifier"),
    ColumnRole.GROUP_KEY: N_("Group key"),
    ColumnRole.MEASURE: N_("Measure"),
    ColumnRole.FORBIDDEN: N_("Forbidden column"),
}


class Engine(StrEnum):
    DUCKDB = "duckdb"
    SPARK = "spark"


class QueryState(StrEnum):
    """A recorded query: refused by the checker or the policy; failed while running (budget
    refunded); released to the grantee; held for the data holder's review, then released or
    withheld (budget not refunded: the computation happened)."""

    REFUSED = "refused"
    FAILED = "failed"
    RELEASED = "released"
    HELD = "held"
    WITHHELD = "withheld"


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    type: str  # DuckDB type name as the data has it: BIGINT, DOUBLE, VARCHAR, DATE …
    role: ColumnRole
    lower: float | None = None  # measures: the clamping bounds from the profile
    upper: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "role": self.role.value}
        if self.role is ColumnRole.MEASURE:
            out["lower"], out["upper"] = self.lower, self.upper
        return out


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A granted table: the name the grantee writes, its columns, and which is the privacy
    unit (exactly one column has that role)."""

    name: str
    columns: tuple[ColumnSpec, ...]
    large: bool = False  # run on the Spark engine
    # Columns whose value is the same on every row of a privacy unit (a household's district):
    # a query that groups and filters on these alone puts each unit in one group, so the
    # checker can count units and bound contributions in one pass over the rows (see RANK_COLUMN).
    unit_level: frozenset[str] = frozenset()

    def column(self, name: str) -> ColumnSpec | None:
        folded = name.casefold()
        return next((c for c in self.columns if c.name.casefold() == folded), None)

    @property
    def privacy_unit(self) -> str:
        return next(c.name for c in self.columns if c.role is ColumnRole.PRIVACY_UNIT)


Catalog = Mapping[str, TableSpec]  # by table name as written (case-insensitive lookup: lower)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One aggregate output column. ``kind``: ``count`` (COUNT(*) or COUNT(col)), ``sum`` or
    ``avg`` of a measure (``column``, clamped to [``lower``, ``upper``]). The staged result
    holds ``<name>__count`` for count and avg, ``<name>__sum`` for sum and avg."""

    name: str
    kind: Literal["count", "sum", "avg"]
    column: str | None = None
    lower: float | None = None
    upper: float | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        """The staged result's columns this aggregate is released from (each is one noisy
        measurement: an average is charged as its sum and its count)."""
        return {
            "count": (f"{self.name}__count",),
            "sum": (f"{self.name}__sum",),
            "avg": (f"{self.name}__sum", f"{self.name}__count"),
        }[self.kind]


@dataclass(frozen=True, slots=True)
class Plan:
    """An allowed query, ready to run (see the module docstring)."""

    sql: str  # the query as checked (normalised by sqlglot), for the record
    tables: tuple[str, ...]  # granted tables it reads (catalog names)
    columns: tuple[str, ...]  # output column names, in the user's order
    group_keys: tuple[str, ...]  # output names of the group keys
    aggregates: tuple[Aggregate, ...]
    staged_sql: str  # DuckDB dialect; reads the tables by their catalog names
    max_rows_per_unit: int  # contribution bound: rows a privacy unit adds to one group
    max_groups_per_unit: int  # groups one privacy unit may add to
    order_by: tuple[tuple[str, bool], ...] = ()  # (output column, descending), after noise
    limit: int | None = None
    # The staged SQL reads RANK_COLUMN: the worker's file must carry it (sources.ranked).
    ranked: bool = False

    @property
    def measurements(self) -> tuple[str, ...]:
        """Every noisy measurement the release makes (the staged parts, each once)."""
        return tuple(dict.fromkeys(p for a in self.aggregates for p in a.parts))


@dataclass(frozen=True, slots=True)
class Limits:
    memory_mb: int = 1024
    threads: int = 2
    seconds: float = 30.0
    max_result_rows: int = 10_000


@dataclass(frozen=True, slots=True)
class Released:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    epsilon_spent: float
    noise: Literal["none", "laplace", "geometric", "mixed"] = "none"
    notes: tuple[Reason, ...] = field(default=())  # e.g. "groups under k are not shown"

"""The census inventory as an Excel workbook (.xlsx): a summary sheet, a table sheet and a column
sheet, each header in Chinese and English, for the department's records and the bureau's.

Sheets:

* ``汇总 Summary`` — for one run, what was censused (department, database with its password
  hidden, schema, sample size, status, times) and its figures; for the province roll-up, one row
  per department and the province's total.
* ``资产清单 Tables`` — one row per table or view: department, database, schema, table, kind,
  rows, columns, entity types of personal information found, sensitive (是/否), grade, quality
  score, status and, when it could not be read, why.
* ``字段 Columns`` — one row per column: its table, name, declared type, nullable, entity types,
  sensitive.

Names come from the department's database, so they are written as text, never as formulas (a
table called ``=HYPERLINK(…)`` stays a name), and characters that XML cannot hold are dropped.
The workbook is written in openpyxl's write-only mode, row by row.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from datafactor.census.domain import GRADE_LABELS, STATUS_LABELS, TABLE_STATUS_LABELS, Totals

ZONE: Final = ZoneInfo("Asia/Shanghai")
MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

SUMMARY_SHEET: Final = "汇总 Summary"
TABLES_SHEET: Final = "资产清单 Tables"
COLUMNS_SHEET: Final = "字段 Columns"

# Chinese and English names of the grades and states, fixed here rather than translated per
# request: a workbook handed between offices reads the same whoever downloaded it.
_GRADE_ZH: Final = {"general": "一般数据", "important": "重要数据", "core": "核心数据"}
_STATUS_ZH: Final = {
    "queued": "排队中",
    "running": "进行中",
    "succeeded": "已完成",
    "failed": "失败",
    "cancelled": "已取消",
}
_TABLE_STATUS_ZH: Final = {"pending": "未读取", "done": "已读取", "failed": "无法读取"}
_KIND: Final = {"table": "表 table", "view": "视图 view"}

TABLE_HEADERS: Final = (
    "部门 Department",
    "数据库 Database",
    "模式 Schema",
    "表名 Table",
    "类型 Kind",
    "行数 Rows",
    "字段数 Columns",
    "个人信息类型 Personal information types",
    "敏感个人信息 Sensitive",
    "分级 Grade (GB/T 43697)",
    "质量评分 Quality score (GB/T 36344)",
    "抽样行数 Rows sampled",
    "状态 Status",
    "说明 Note",
)
COLUMN_HEADERS: Final = (
    "部门 Department",
    "模式 Schema",
    "表名 Table",
    "字段 Column",
    "数据类型 Type",
    "可空 Nullable",
    "识别类型 Entity types",
    "敏感个人信息 Sensitive",
)
ROLLUP_HEADERS: Final = (
    "部门 Department",
    "数据库数 Databases",
    "表数 Tables",
    "行数 Rows",
    "字段数 Columns",
    "含个人信息的表 Tables with personal information",
    "含敏感个人信息的表 Tables with sensitive personal information",
    "一般数据 General",
    "重要数据 Important",
    "核心数据 Core",
    "无法读取 Unreadable",
    "平均质量评分 Average quality score",
    "最近普查 Last census",
)


def _illegal() -> Any:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE


def _yes(value: bool) -> str:
    return "是 yes" if value else "否 no"


def _grade(value: str | None) -> str:
    if not value:
        return ""
    return f"{_GRADE_ZH.get(value, value)} {GRADE_LABELS.get(value, value)}"


def _time(value: datetime | None) -> str:
    return value.astimezone(ZONE).strftime("%Y-%m-%d %H:%M") if value else ""


@dataclass(frozen=True)
class RunFacts:
    """What the summary sheet says about one run (plain values, no ORM)."""

    department: str
    database: str
    schema: str | None
    sample_rows: int
    status: str
    requested_by: str
    requested_at: datetime | None
    finished_at: datetime | None
    run_id: str


@dataclass(frozen=True)
class TableRow:
    """One inventory entry as the workbook shows it."""

    department: str
    database: str
    schema: str
    table: str
    kind: str
    status: str
    row_count: int | None
    column_count: int | None
    pi_types: Sequence[str]
    sensitive: bool
    grade: str | None
    quality_score: float | None
    rows_scanned: int | None
    note: str
    columns: Sequence[Mapping[str, Any]]


class _Sheet:
    """A write-only sheet whose text cells are always text (never formulas)."""

    def __init__(self, book: Any, title: str, headers: Sequence[str], widths: Sequence[int]):
        from openpyxl.styles import Font
        from openpyxl.utils import get_column_letter

        self.sheet = book.create_sheet(title)
        for index, width in enumerate(widths, start=1):
            self.sheet.column_dimensions[get_column_letter(index)].width = width
        self.sheet.freeze_panes = "A2"
        self._bold = Font(bold=True)
        if headers:
            self.row(headers, bold=True)

    def row(self, values: Iterable[Any], *, bold: bool = False) -> None:
        from openpyxl.cell import WriteOnlyCell

        cells = []
        for value in values:
            if isinstance(value, str):
                value = _illegal().sub("", value)
            cell = WriteOnlyCell(self.sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # "=..." from a database name must not become a formula
            if bold:
                cell.font = self._bold
            cells.append(cell)
        self.sheet.append(cells)


def _totals_rows(totals: Totals) -> list[tuple[str, Any]]:
    return [
        ("表和视图 Tables and views", totals.tables),
        ("已读取 Read", totals.tables_read),
        ("无法读取 Could not be read", totals.tables_failed),
        ("行数 Rows", totals.rows),
        ("字段数 Columns", totals.columns),
        ("含个人信息的表 Tables with personal information", totals.pi_tables),
        ("含敏感个人信息的表 Tables with sensitive personal information", totals.sensitive_tables),
        *[(f"{_GRADE_ZH[g]} {GRADE_LABELS[g]}", n) for g, n in totals.grades.items()],
        ("平均质量评分 Average quality score", totals.quality_average),
    ]


def _tables(book: Any, rows: Iterable[TableRow]) -> None:
    tables = _Sheet(
        book, TABLES_SHEET, TABLE_HEADERS, (18, 30, 14, 28, 10, 12, 9, 40, 10, 18, 10, 10, 12, 40)
    )
    columns = _Sheet(book, COLUMNS_SHEET, COLUMN_HEADERS, (18, 14, 28, 24, 18, 9, 40, 10))
    for row in rows:
        tables.row(
            (
                row.department,
                row.database,
                row.schema,
                row.table,
                _KIND.get(row.kind, row.kind),
                row.row_count,
                row.column_count,
                ", ".join(row.pi_types),
                _yes(row.sensitive) if row.status == "done" else "",
                _grade(row.grade),
                row.quality_score,
                row.rows_scanned,
                f"{_TABLE_STATUS_ZH.get(row.status, row.status)} "
                f"{TABLE_STATUS_LABELS.get(row.status, row.status)}",
                row.note,
            )
        )
        for column in row.columns:
            columns.row(
                (
                    row.department,
                    row.schema,
                    row.table,
                    str(column.get("name", "")),
                    str(column.get("type", "")),
                    _yes(bool(column.get("nullable", True))),
                    ", ".join(str(t) for t in column.get("entity_types") or []),
                    _yes(bool(column.get("sensitive"))),
                )
            )


def _save(book: Any) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def run_workbook(facts: RunFacts, totals: Totals, rows: Iterable[TableRow]) -> bytes:
    """One run's inventory: summary (what was censused and its figures), tables, columns."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    summary = _Sheet(book, SUMMARY_SHEET, ("项目 Item", "值 Value"), (48, 60))
    status = f"{_STATUS_ZH.get(facts.status, facts.status)} {STATUS_LABELS.get(facts.status, facts.status)}"
    for label, value in [
        ("部门 Department", facts.department),
        ("数据库 Database", facts.database),
        ("模式 Schema", facts.schema or "全部 all"),
        ("每表抽样行数 Rows sampled per table", facts.sample_rows),
        ("状态 Status", status),
        ("发起人 Requested by", facts.requested_by),
        ("发起时间 Requested at (Asia/Shanghai)", _time(facts.requested_at)),
        ("完成时间 Finished at (Asia/Shanghai)", _time(facts.finished_at)),
        ("普查编号 Census id", facts.run_id),
        *_totals_rows(totals),
    ]:
        summary.row((label, value))
    _tables(book, rows)
    return _save(book)


@dataclass(frozen=True)
class DepartmentRow:
    department: str
    databases: int
    last_census_at: datetime | None
    totals: Totals


def rollup_workbook(
    departments: Sequence[DepartmentRow], province: Totals, rows: Iterable[TableRow]
) -> bytes:
    """The province's roll-up: a row per department and the total, then every current table."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    summary = _Sheet(
        book, SUMMARY_SHEET, ROLLUP_HEADERS, (30, 10, 10, 14, 10, 16, 16, 10, 10, 10, 10, 12, 18)
    )

    def line(name: str, databases: int | str, totals: Totals, last: datetime | None) -> None:
        summary.row(
            (
                name,
                databases,
                totals.tables,
                totals.rows,
                totals.columns,
                totals.pi_tables,
                totals.sensitive_tables,
                totals.grades.get("general", 0),
                totals.grades.get("important", 0),
                totals.grades.get("core", 0),
                totals.tables_failed,
                totals.quality_average,
                _time(last),
            )
        )

    for department in departments:
        line(
            department.department,
            department.databases,
            department.totals,
            department.last_census_at,
        )
    databases = sum(d.databases for d in departments)
    line("全省合计 Province total", databases, province, None)
    _tables(book, rows)
    return _save(book)

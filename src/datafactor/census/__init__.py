"""Census (政务数据资产普查): a department's database inventoried — schemas, tables, columns, row
counts and a sample scan of each table — attributed to the department, resumable, exportable to
Excel, and rolled up to the province (``docs/census.md``).

Other domains use the surface below: the use cases to start a census and read its inventory and
the province's roll-up, and the figures they return. The runner (``jobs``), the entry points and
the tables are the census's own.
"""

from datafactor import audit as _audit
from datafactor.census.domain import EVENT_LABELS as _EVENT_LABELS
from datafactor.census.domain import (
    CensusStatus,
    DepartmentTotals,
    Rollup,
    TableStatus,
    Totals,
)
from datafactor.census.services import (
    CensusRequest,
    get_run,
    list_runs,
    list_tables,
    rollup,
    run_totals,
    start_census,
)

_audit.register_action_labels(_EVENT_LABELS)

__all__ = [
    "CensusRequest",
    "CensusStatus",
    "DepartmentTotals",
    "Rollup",
    "TableStatus",
    "Totals",
    "get_run",
    "list_runs",
    "list_tables",
    "rollup",
    "run_totals",
    "start_census",
]

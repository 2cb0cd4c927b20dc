"""The query checker: refuse what may not run, rewrite what may into the bounded staged query.

``check_query(sql, catalog, dp=...)`` parses ``sql`` with sqlglot (DuckDB dialect) and either
raises ``QueryRefused`` with every reason found (rule ids from rules/sandbox.yaml) or returns a
``Plan`` (see ``domain``). The checker is an allow-list, not a deny-list: a query passes only in
the one shape the sandbox can bound and release (issue 8, item 2)::

    SELECT <group-key expressions and aggregates>
    FROM granted_table [AS a] [[INNER] JOIN granted_table [AS b] ON a.unit = b.unit [AND …]] …
    [WHERE <predicates over group keys and measures>]
    [GROUP BY <group-key expressions, output names or positions> | GROUP BY ALL]
    [ORDER BY <output columns or positions>] [LIMIT n]

Aggregates are COUNT(*), COUNT(col), COUNT(DISTINCT privacy_unit), SUM(measure), AVG(measure)
(a CAST of the measure is fine). Every other node — any function not on ``checker.
scalar_functions``, sub-queries, CTEs (recursive or not: write the query directly), set
operations, windows, HAVING, QUALIFY, samples, DISTINCT, OFFSET, outer/cross joins — is refused
with a reason. A join must equate the joined table's privacy unit with one already in the query:
a join on group keys alone would let one individual of the joined table count in the rows of many
privacy units, and no per-unit bound would hold.

The rewrite (``Plan.staged_sql``) runs in three or four stages, each portable SQL that sqlglot
transpiles to Spark: ``base`` (the filtered rows: group keys, the privacy unit as ``__pu``, the
aggregated columns), ``per_unit`` (one row per group and privacy unit: its count and sums),
optionally ``bounded`` (with ``dp``: each unit kept in at most G groups, the first G by group key —
deterministic and depending only on that unit's own rows), and the final GROUP BY that counts
units (``__units``) and sums the per-unit parts. With ``dp`` each measure is clamped to the
profile's bounds, each unit's per-group count to L and each per-unit sum to
[min(0, L·lower), max(0, L·upper)] (0 included: a unit that is absent contributes 0, so the
sensitivity stays L·max(|lower|, |upper|) per group). ``__units`` is COUNT(__pu): rows without a
privacy unit are counted and summed but are no unit. Count parts are BIGINT and 0 (not NULL) on no
rows; sum parts are NULL when a group has no value. No engine error may depend on a value
(attack tests: "division-by-zero or cast errors whose message leaks a value"): CAST becomes
TRY_CAST, every divisor is wrapped in NULLIF(…, 0), every group key, filter and aggregate
argument in DuckDB's TRY(…) (an integer overflow, a substring offset, an implicit cast: NULL),
SUM/AVG cast only to types whose sums cannot overflow, and a measure in WHERE may only be
compared (``kwh > 100``), never computed on. ``with_min_units`` drops groups of fewer than k
units before the result-size cap counts them (the service runs the staged query through it).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from datafactor.sandbox.domain import (
    RANK_COLUMN,
    Aggregate,
    Catalog,
    ColumnRole,
    ColumnSpec,
    Plan,
    Reason,
    TableSpec,
)
from datafactor.sandbox.errors import QueryRefused
from datafactor.sandbox.rulebook import rule_id, section

__all__ = ["CheckerSettings", "check_query", "checker_settings", "with_min_units"]

_DIALECT: Final = "duckdb"

# Operators and leaves a scalar expression may be built from (functions are on the yaml list).
_OPERATORS: Final[tuple[type[exp.Expr], ...]] = (
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Paren,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.IntDiv,
    exp.Neg,
    exp.DPipe,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.And,
    exp.Or,
    exp.Not,
    exp.Is,
    exp.Between,
    exp.In,
    exp.Like,
    exp.ILike,
)
_DATE_UNITS: Final = frozenset({"YEAR", "QUARTER", "MONTH", "WEEK", "DAY"})
_CAST_TYPES: Final = (
    exp.DataType.NUMERIC_TYPES
    | exp.DataType.TEMPORAL_TYPES
    | exp.DataType.TEXT_TYPES
    | {exp.DataType.Type.BOOLEAN}
)
# Types SUM/AVG may cast a measure to: their sums cannot overflow in DuckDB (DOUBLE goes to
# inf; integers of at most 64 bits add up in HUGEINT).
_SUM_CAST_TYPES: Final = exp.DataType.FLOAT_TYPES | (
    exp.DataType.INTEGER_TYPES
    - {
        exp.DataType.Type.INT128,
        exp.DataType.Type.UINT128,
        exp.DataType.Type.INT256,
        exp.DataType.Type.UINT256,
        exp.DataType.Type.BIT,
    }
)
_SELECT_ARGS: Final = frozenset(
    {"expressions", "from_", "joins", "where", "group", "order", "limit", "hint"}
)
_CLAUSE_NAMES: Final = {
    "having": "HAVING",
    "qualify": "QUALIFY",
    "distinct": "DISTINCT",
    "offset": "OFFSET",
    "windows": "WINDOW",
    "laterals": "LATERAL",
    "into": "INTO",
    "with_": "WITH",
}

# Where a column stands, which decides the roles it may have ("any": already checked, rendering).
Context = Literal["key", "where", "join", "sum", "count", "any"]


# ------------------------------------------------------------------------------------ settings
@dataclass(frozen=True, slots=True)
class CheckerSettings:
    """The ``checker:`` section of rules/sandbox.yaml, checked at load."""

    external_functions: frozenset[str]
    individual_aggregates: frozenset[str]
    scalar_functions: frozenset[str]
    max_rows_per_unit: int
    max_groups_per_unit: int
    max_query_chars: int
    max_joins: int


def _names(data: dict[str, Any], key: str) -> frozenset[str]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"sandbox.yaml: checker.{key} must be a non-empty list of names")
    return frozenset(v.lower() for v in value)


def _positive(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"sandbox.yaml: checker.{key} must be a positive integer")
    return value


@functools.cache
def checker_settings() -> CheckerSettings:
    data = section("checker")
    return CheckerSettings(
        external_functions=_names(data, "external_functions"),
        individual_aggregates=_names(data, "individual_aggregates"),
        scalar_functions=_names(data, "scalar_functions"),
        max_rows_per_unit=_positive(data, "max_rows_per_unit"),
        max_groups_per_unit=_positive(data, "max_groups_per_unit"),
        max_query_chars=_positive(data, "max_query_chars"),
        max_joins=_positive(data, "max_joins"),
    )


# ------------------------------------------------------------------------------------ helpers
def _func_names(node: exp.Func) -> set[str]:
    """The names a function goes by: as written (anonymous) or sqlglot's canonical name."""
    if isinstance(node, exp.Anonymous):
        return {node.name.lower()}
    return {node.sql_name().lower(), node.key.lower()}


def _shown(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    return node.sql_name().lower()


def _quote(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(_DIALECT)


def _number(value: float) -> str:
    return f"CAST({float(value)!r} AS DOUBLE)"


@dataclass(slots=True)
class _Source:
    """A granted table in the query: its spec, the alias it has in the staged SQL (``aN``) and
    the names the query may qualify its columns with."""

    spec: TableSpec
    alias: str
    written: set[str]


@dataclass(slots=True)
class _Output:
    name: str
    canon: str  # canonical rendering (resolved columns) for matching GROUP BY / ORDER BY
    key_sql: str | None = None  # group key: its staged expression
    aggregate: Aggregate | None = None
    arg_sql: str | None = None  # aggregate argument, staged (None for COUNT(*) and units)
    units: bool = False  # COUNT(DISTINCT privacy unit)
    named: bool = False  # the user gave the name (alias or bare column)


@dataclass(slots=True)
class _Check:
    catalog: Catalog
    dp: bool
    settings: CheckerSettings
    reasons: list[Reason] = field(default_factory=list)
    sources: list[_Source] = field(default_factory=list)

    # --------------------------------------------------------------------------- reasons
    def refuse(self, key: str, en: str, zh: str) -> None:
        reason = Reason(rule_id(key), en, zh)
        if reason not in self.reasons:
            self.reasons.append(reason)

    # --------------------------------------------------------------------------- whole tree
    def scan(self, statement: exp.Expr) -> None:
        """Constructs refused wherever they stand: external and individual-value functions,
        windows, sub-queries."""
        s = self.settings
        for node in statement.walk():
            if isinstance(node, exp.Func):
                names = _func_names(node)
                if names & s.external_functions:
                    self.refuse(
                        "q_functions",
                        f"The function {_shown(node)} reaches outside the granted data (files, "
                        "URLs, settings or the catalogue); query the granted tables only.",
                        f"函数 {_shown(node)} 会访问授权数据之外的资源（文件、网址、设置或目录），"
                        "请只查询授权的数据表。",
                    )
                elif names & s.individual_aggregates:
                    self.refuse(
                        "q_individual_value",
                        f"The aggregate {_shown(node)} can return one individual's value; use "
                        "COUNT, SUM or AVG instead.",
                        f"聚合函数 {_shown(node)} 可能返回单个个体的值，请改用 COUNT、SUM 或 AVG。",
                    )
            if isinstance(node, exp.Window):
                self.refuse(
                    "q_shape",
                    "Window functions (… OVER (…)) are not allowed; use GROUP BY with "
                    "COUNT, SUM or AVG.",
                    "不允许使用窗口函数（… OVER (…)），请使用 GROUP BY 配合 COUNT、SUM 或 AVG。",
                )
            if isinstance(node, exp.Subquery | exp.Exists) or (
                isinstance(node, exp.Query)
                and node is not statement
                and not isinstance(node.parent, exp.CTE | exp.Subquery)
            ):
                self.refuse(
                    "q_shape",
                    "Sub-queries are not allowed; write one SELECT over the granted tables.",
                    "不允许使用子查询，请对授权的数据表写一条 SELECT 语句。",
                )

    def known_refused(self, node: exp.Expr) -> bool:
        """Already reported by ``scan``: do not report again, do not descend."""
        if isinstance(node, exp.Window | exp.Subquery | exp.Exists | exp.Query):
            return True
        if isinstance(node, exp.Func):
            names = _func_names(node)
            return bool(
                names & (self.settings.external_functions | self.settings.individual_aggregates)
            )
        return False

    # --------------------------------------------------------------------------- FROM / JOIN
    def table(self, node: exp.Expr, index: int) -> _Source | None:
        if not isinstance(node, exp.Table):
            if isinstance(node, exp.Lateral):
                self.refuse(
                    "q_shape",
                    "LATERAL is not allowed; join granted tables with INNER JOIN … ON.",
                    "不允许使用 LATERAL，请用 INNER JOIN … ON 连接授权的数据表。",
                )
            elif not self.known_refused(node):
                self.refuse(
                    "q_shape",
                    "FROM may name only granted tables (no sub-query, VALUES or other source).",
                    "FROM 只能引用授权的数据表（不能是子查询、VALUES 或其他来源）。",
                )
            return None
        target = node.this
        if isinstance(target, exp.Func):
            if not _func_names(target) & self.settings.external_functions:
                self.refuse(
                    "q_functions",
                    f"The table function {_shown(target)} is not allowed in FROM; "
                    "query the granted tables by name.",
                    f"FROM 中不允许使用表函数 {_shown(target)}，请按名称查询授权的数据表。",
                )
            return None
        if not isinstance(target, exp.Identifier):
            self.refuse(
                "q_tables",
                "FROM may name only granted tables.",
                "FROM 只能引用授权的数据表。",
            )
            return None
        name = target.name
        ok = True
        if node.args.get("db") or node.args.get("catalog"):
            self.refuse(
                "q_tables",
                f"The table {node.sql(_DIALECT)} names another schema or database; write the "
                "granted table's name alone.",
                f"数据表 {node.sql(_DIALECT)} 指向其他模式或数据库，请只写授权数据表的名称。",
            )
            ok = False
        spec = self.lookup(name)
        if spec is None:
            if any(ch in name for ch in "./\\:"):
                self.refuse(
                    "q_tables",
                    f"'{name}' looks like a file or URL; the sandbox reads only the granted "
                    "tables, by name.",
                    f"“{name}”看起来是文件或网址；沙箱只读取授权的数据表，请按表名查询。",
                )
            else:
                granted = ", ".join(sorted(t.name for t in self.catalog.values())) or "—"
                self.refuse(
                    "q_tables",
                    f"The table {name} is not granted to you; the grant covers: {granted}.",
                    f"数据表 {name} 不在您的授权范围内；授权范围内的数据表：{granted}。",
                )
            ok = False
        if node.args.get("sample"):
            self.refuse(
                "q_shape",
                "USING SAMPLE / TABLESAMPLE is not supported; query the whole table.",
                "不支持 USING SAMPLE / TABLESAMPLE，请对整张表进行查询。",
            )
            ok = False
        extra = [
            k for k, v in node.args.items() if v and k not in {"this", "alias", "db", "catalog"}
        ]
        if any(k != "sample" for k in extra):
            self.refuse(
                "q_shape",
                f"The table reference {node.sql(_DIALECT)} uses a form the sandbox does not "
                "support; write the table name, optionally with an alias.",
                f"数据表引用 {node.sql(_DIALECT)} 的写法不受支持，请只写表名（可带别名）。",
            )
            ok = False
        alias = node.args.get("alias")
        written = {name.casefold()}
        if alias is not None:
            if alias.args.get("columns"):
                self.refuse(
                    "q_shape",
                    "Column aliases on a table (t AS x(a, b)) are not supported; "
                    "alias the output columns instead.",
                    "不支持为数据表的列起别名（t AS x(a, b)），请在输出列上使用别名。",
                )
                ok = False
            written = {alias.name.casefold()}
        if not ok or spec is None:
            return None
        source = _Source(spec=spec, alias=f"a{index}", written=written)
        clash = [s for s in self.sources if s.written & written]
        if clash:
            self.refuse(
                "q_shape",
                f"The name {sorted(written)[0]} is used for two tables; give each table its "
                "own alias.",
                f"名称 {sorted(written)[0]} 被用于两张数据表，请为每张表指定不同的别名。",
            )
            return None
        self.sources.append(source)
        return source

    def lookup(self, name: str) -> TableSpec | None:
        folded = name.casefold()
        for key, spec in self.catalog.items():
            if key.casefold() == folded:
                return spec
        return None

    def join(self, join: exp.Join, index: int) -> tuple[_Source, str] | None:
        kind = (join.args.get("kind") or "").upper()
        side = join.args.get("side")
        method = join.args.get("method")
        on = join.args.get("on")
        using = join.args.get("using")
        if isinstance(join.this, exp.Lateral):
            self.table(join.this, index)
            return None
        if kind == "CROSS" or (not on and not using and not side and not method):
            self.refuse(
                "q_shape",
                "Cross joins and comma-separated tables are not allowed; join with "
                "INNER JOIN … ON a.unit = b.unit.",
                "不允许交叉连接或以逗号分隔多张表，请用 INNER JOIN … ON a.单元 = b.单元 连接。",
            )
            self.table(join.this, index)
            return None
        if kind not in {"", "INNER"} or side or method or using:
            self.refuse(
                "q_shape",
                "Only INNER JOIN … ON is supported (no LEFT/RIGHT/FULL/SEMI/ANTI/NATURAL joins "
                "or USING).",
                "只支持 INNER JOIN … ON（不支持 LEFT/RIGHT/FULL/SEMI/ANTI/NATURAL 连接或 USING）。",
            )
            self.table(join.this, index)
            return None
        earlier = list(self.sources)
        source = self.table(join.this, index)
        if source is None or on is None:
            return None
        conjuncts = list(on.flatten()) if isinstance(on, exp.And) else [on]
        rendered: list[str] = []
        unit_linked = False
        for conjunct in conjuncts:
            if isinstance(conjunct, exp.Paren):
                conjunct = conjunct.unnest()
            if not (
                isinstance(conjunct, exp.EQ)
                and isinstance(conjunct.this, exp.Column)
                and isinstance(conjunct.expression, exp.Column)
            ):
                self.refuse(
                    "q_shape",
                    "A join condition may only equate columns (a.x = b.y, joined with AND); "
                    "put other conditions in WHERE.",
                    "连接条件只能是列之间的等式（a.x = b.y，用 AND 连接），其他条件请写在 WHERE 中。",
                )
                self.scalar(conjunct, "where")
                continue
            left = self.resolve(conjunct.this, "join")
            right = self.resolve(conjunct.expression, "join")
            if left is None or right is None:
                continue
            (ls, lc), (rs, rc) = left, right
            if ls is rs or source not in (ls, rs):
                self.refuse(
                    "q_shape",
                    f"The join condition {conjunct.sql(_DIALECT)} must compare a column of "
                    "the joined table with a column of a table before it.",
                    f"连接条件 {conjunct.sql(_DIALECT)} 须将被连接表的列与之前某张表的列比较。",
                )
                continue
            other = rs if ls is source else ls
            if (
                other in earlier
                and lc.role is ColumnRole.PRIVACY_UNIT
                and rc.role is ColumnRole.PRIVACY_UNIT
            ):
                unit_linked = True
            rendered.append(f"{ls.alias}.{_quote(lc.name)} = {rs.alias}.{_quote(rc.name)}")
        if not unit_linked and len(rendered) == len(conjuncts):
            self.refuse(
                "q_shape",
                f"The join of {source.spec.name} must equate its privacy unit "
                f"({source.spec.privacy_unit}) with the privacy unit of a table before it, so "
                "each individual's contribution can be bounded; add that equality to ON.",
                f"连接 {source.spec.name} 时须令其隐私单元（{source.spec.privacy_unit}）等于之前某张表的"
                "隐私单元，以便限制每个个体的贡献；请在 ON 中加入该等式。",
            )
            return None
        return source, " AND ".join(rendered)

    # --------------------------------------------------------------------------- columns
    def resolve(self, column: exp.Column, ctx: Context) -> tuple[_Source, ColumnSpec] | None:
        """The granted column a reference names, with the role checks of its context."""
        if isinstance(column.this, exp.Star):
            self.refuse(
                "q_aggregate_only",
                "SELECT * (or t.*) is not allowed: name the group keys and aggregates.",
                "不允许使用 SELECT *（或 t.*），请写明分组键与聚合值。",
            )
            return None
        if column.args.get("db") or column.args.get("catalog"):
            self.refuse(
                "q_columns",
                f"The column {column.sql(_DIALECT)} names another schema or database; "
                "qualify columns by table name or alias only.",
                f"字段 {column.sql(_DIALECT)} 指向其他模式或数据库，请只用表名或别名限定字段。",
            )
            return None
        name = column.name
        qualifier = column.table
        candidates = self.sources
        if qualifier:
            candidates = [s for s in self.sources if qualifier.casefold() in s.written]
            if not candidates:
                self.refuse(
                    "q_columns",
                    f"{qualifier}.{name}: {qualifier} is not a table of this query.",
                    f"{qualifier}.{name}：{qualifier} 不是本查询中的数据表。",
                )
                return None
        found = [(s, c) for s in candidates if (c := s.spec.column(name)) is not None]
        if not found:
            if self.sources:
                self.refuse(
                    "q_columns",
                    f"There is no granted column {name}; see the grant's tables and columns.",
                    f"没有已授权的字段 {name}，请查看授权中的数据表与字段。",
                )
            return None
        if len(found) > 1:
            self.refuse(
                "q_columns",
                f"The column {name} is in more than one table; qualify it (table.{name}).",
                f"字段 {name} 存在于多张数据表中，请加上表名限定（表名.{name}）。",
            )
            return None
        source, spec = found[0]
        role = spec.role
        if role is ColumnRole.FORBIDDEN:
            self.refuse(
                "q_columns",
                f"The column {spec.name} is withheld by the grant's policy and cannot be used.",
                f"字段 {spec.name} 被授权策略排除，不能使用。",
            )
            return None
        direct = role in (ColumnRole.IDENTIFIER, ColumnRole.PRIVACY_UNIT)
        what_en = "the privacy unit" if role is ColumnRole.PRIVACY_UNIT else "a direct identifier"
        what_zh = "隐私单元" if role is ColumnRole.PRIVACY_UNIT else "直接标识符"
        if ctx == "key":
            if direct:
                self.refuse(
                    "q_group_identifier",
                    f"{spec.name} is {what_en}; it cannot be a group key or an output column. "
                    "Group by a group-key column instead.",
                    f"{spec.name} 是{what_zh}，不能作为分组键或输出列，请按分组键字段分组。",
                )
                return None
            if role is ColumnRole.MEASURE:
                self.refuse(
                    "q_aggregate_only",
                    f"{spec.name} is a measure; it may only be summed, averaged or counted "
                    "(SUM, AVG, COUNT), not output or grouped by.",
                    f"{spec.name} 是度量字段，只能求和、求平均或计数（SUM、AVG、COUNT），"
                    "不能直接输出或作为分组键。",
                )
                return None
        elif ctx == "where":
            if direct:
                self.refuse(
                    "q_filter_identifier",
                    f"{spec.name} is {what_en}; filtering on it could single out one "
                    "individual (differencing). Filter on group keys or measures.",
                    f"{spec.name} 是{what_zh}，按其筛选可能锁定单个个体（差分攻击），"
                    "请按分组键或度量字段筛选。",
                )
                return None
            if role is ColumnRole.MEASURE and not _compared_directly(column):
                self.refuse(
                    "q_shape",
                    f"The measure {spec.name} may be compared with values in WHERE "
                    f"({spec.name} > 100, BETWEEN, IN, IS NULL), not computed on or passed to "
                    "functions.",
                    f"度量字段 {spec.name} 在 WHERE 中只能与取值比较（如 {spec.name} > 100、BETWEEN、"
                    "IN、IS NULL），不能参与运算或作为函数参数。",
                )
                return None
        elif ctx == "join":
            if role is ColumnRole.IDENTIFIER:
                self.refuse(
                    "q_filter_identifier",
                    f"{spec.name} is a direct identifier; join on privacy units or group keys.",
                    f"{spec.name} 是直接标识符，请按隐私单元或分组键连接。",
                )
                return None
            if role is ColumnRole.MEASURE:
                self.refuse(
                    "q_shape",
                    f"{spec.name} is a measure; join on privacy units or group keys.",
                    f"{spec.name} 是度量字段，请按隐私单元或分组键连接。",
                )
                return None
        elif ctx in ("sum", "count"):  # inside an aggregate
            if direct:
                self.refuse(
                    "q_individual_value",
                    f"{spec.name} is {what_en}; it may appear in an aggregate only as "
                    "COUNT(DISTINCT privacy unit).",
                    f"{spec.name} 是{what_zh}，在聚合中只能以 COUNT(DISTINCT 隐私单元) 的形式出现。",
                )
                return None
            if ctx == "sum" and role is not ColumnRole.MEASURE:
                self.refuse(
                    "q_aggregate_only",
                    f"{spec.name} is not a measure; SUM and AVG take measure columns only.",
                    f"{spec.name} 不是度量字段，SUM 与 AVG 只能用于度量字段。",
                )
                return None
        return source, spec

    # --------------------------------------------------------------------------- scalars
    def scalar(self, node: exp.Expr, ctx: Context) -> bool:
        """Check a scalar expression (no aggregate) in its context; True when it may run."""
        if isinstance(node, exp.Column):
            return self.resolve(node, ctx) is not None
        if self.known_refused(node):
            return False
        if isinstance(node, exp.AggFunc):
            if not isinstance(node, exp.Count | exp.Sum | exp.Avg):
                self.refuse(
                    "q_aggregate_only",
                    f"The aggregate {_shown(node)} is not supported; use COUNT, SUM or AVG.",
                    f"不支持聚合函数 {_shown(node)}，请使用 COUNT、SUM 或 AVG。",
                )
            elif ctx == "where":
                self.refuse(
                    "q_aggregate_only",
                    "Aggregates cannot appear in WHERE or inside other expressions; filter on "
                    "released values client-side.",
                    "聚合不能出现在 WHERE 中或嵌套在其他表达式内，请在客户端对已发布的结果筛选。",
                )
            else:
                self.refuse(
                    "q_aggregate_only",
                    "An aggregate must be a whole output column (SUM(x), not SUM(x) / 2 "
                    "or ROUND(AVG(x))); compute on the released values client-side.",
                    "聚合值须单独作为输出列（如 SUM(x)，而非 SUM(x) / 2 或 ROUND(AVG(x))），"
                    "请在客户端对已发布的结果计算。",
                )
            return False
        ok = True
        children: Iterable[exp.Expr]
        if isinstance(node, exp.Cast):  # also TryCast
            to = node.args.get("to")
            if not isinstance(to, exp.DataType) or to.this not in _CAST_TYPES:
                self.refuse(
                    "q_functions",
                    f"CAST to {to.sql(_DIALECT) if to else '?'} is not allowed; cast to a "
                    "number, date, timestamp, text or boolean type.",
                    f"不允许转换为 {to.sql(_DIALECT) if to else '?'} 类型，"
                    "请转换为数值、日期、时间戳、文本或布尔类型。",
                )
                ok = False
            children = [node.this]
        elif isinstance(node, exp.Extract | exp.TimestampTrunc | exp.DateTrunc):
            unit = node.this if isinstance(node, exp.Extract) else node.args.get("unit")
            unit_name = unit.name.upper() if isinstance(unit, exp.Var | exp.Literal) else ""
            if unit_name not in _DATE_UNITS:
                self.refuse(
                    "q_functions",
                    f"The date part {unit_name or '?'} is not allowed; use one of "
                    f"{', '.join(sorted(_DATE_UNITS)).lower()}.",
                    f"不允许使用日期单位 {unit_name or '?'}，请使用 "
                    f"{', '.join(sorted(_DATE_UNITS)).lower()} 之一。",
                )
                ok = False
            children = [node.expression if isinstance(node, exp.Extract) else node.this]
        elif isinstance(node, exp.In) and (
            node.args.get("query") or node.args.get("unnest") or node.args.get("field")
        ):
            self.refuse(
                "q_shape",
                "IN may only list values (x IN (1, 2)); sub-queries are not allowed.",
                "IN 只能列出取值（x IN (1, 2)），不允许使用子查询。",
            )
            return False
        elif isinstance(node, _OPERATORS):
            children = _children(node)
        elif isinstance(node, exp.Func):
            if not _func_names(node) & self.settings.scalar_functions:
                self.refuse(
                    "q_functions",
                    f"The function {_shown(node)} is not among the functions the sandbox "
                    "allows (arithmetic, CASE, COALESCE, CAST, date parts, SUBSTRING, "
                    "UPPER/LOWER, LENGTH, ROUND/FLOOR/CEIL/ABS …).",
                    f"函数 {_shown(node)} 不在沙箱允许的函数之列（算术、CASE、COALESCE、CAST、"
                    "日期部分、SUBSTRING、UPPER/LOWER、LENGTH、ROUND/FLOOR/CEIL/ABS 等）。",
                )
                ok = False
            children = _children(node)
        elif isinstance(node, exp.Star):
            self.refuse(
                "q_aggregate_only",
                "SELECT * (or t.*) is not allowed: name the group keys and aggregates.",
                "不允许使用 SELECT *（或 t.*），请写明分组键与聚合值。",
            )
            return False
        else:
            self.refuse(
                "q_shape",
                f"The expression {node.sql(_DIALECT)[:60]} is not supported in the sandbox.",
                f"沙箱不支持表达式 {node.sql(_DIALECT)[:60]}。",
            )
            ok = False
            children = _children(node)
        for child in children:
            if child is not None and not self.scalar(child, ctx):
                ok = False
        return ok

    def render(self, node: exp.Expr) -> str:
        """The staged form of a checked scalar: columns resolved to ``aN."col"``, CAST made
        TRY_CAST (a failed conversion is NULL, never an error that echoes a value)."""

        def fix(n: exp.Expr) -> exp.Expr:
            if isinstance(n, exp.Column):
                found = self.resolve(n, "any")
                assert found is not None  # checked before rendering
                source, spec = found
                return exp.column(spec.name, table=source.alias, quoted=True)
            if isinstance(n, exp.Cast) and not isinstance(n, exp.TryCast):
                return exp.TryCast(this=n.this, to=n.args["to"])
            if isinstance(n, exp.Div | exp.IntDiv | exp.Mod):
                # DuckDB raises on // 0 and % 0 (Spark in ANSI mode on / 0 too): an error
                # would tell whether some row holds that value. NULL instead.
                divisor = exp.Nullif(this=n.expression, expression=exp.Literal.number(0))
                return n.__class__(this=n.this, expression=divisor)
            return n

        # Every node, the ones under a replaced CAST or division too (sqlglot's transform does
        # not descend into a replacement: CAST(t.x AS …) kept the user's qualifier ``t``, which
        # the staged query does not have, and a self-join's alias names could even swap tables).
        fixed = node.copy()
        for n in list(fixed.walk()):
            new = fix(n)
            if new is not n:
                if n is fixed:
                    fixed = new
                else:
                    n.replace(new)
        if not isinstance(fixed, exp.Column | exp.Literal):
            # TRY: an error while evaluating (integer overflow in a * b, a substring offset out
            # of range, an implicit cast) is NULL, not a failure. A failure would be an oracle
            # that bypasses k and the noise: WHERE kwh > 5000 AND (month * 9e18) > 0 fails
            # exactly when some row passes the filter, and a failed query is refunded.
            fixed = exp.Try(this=fixed)
        # comments=False: nothing of the user's text but the checked tree reaches the staged SQL
        return fixed.sql(_DIALECT, comments=False)


_COMPARISONS: Final = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.Between,
    exp.In,
    exp.Is,
)


def _compared_directly(column: exp.Column) -> bool:
    """A measure in WHERE stands alone in a comparison (through brackets or a CAST): no
    arithmetic on it, whose overflow errors could echo a value or act as an oracle."""
    node: exp.Expr = column
    parent = node.parent
    while isinstance(parent, exp.Paren | exp.Cast):
        node, parent = parent, parent.parent
    return isinstance(parent, _COMPARISONS)


def _children(node: exp.Expr) -> list[exp.Expr]:
    out: list[exp.Expr] = []
    for value in node.args.values():
        if isinstance(value, exp.Expr):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, exp.Expr))
    return out


# ------------------------------------------------------------------------------------ parsing
def _parse(sql: str, settings: CheckerSettings) -> exp.Expr:
    syntax = rule_id("q_syntax")
    if len(sql) > settings.max_query_chars:
        raise QueryRefused(
            [
                Reason(
                    syntax,
                    f"The query is longer than {settings.max_query_chars} characters; shorten it.",
                    f"查询超过 {settings.max_query_chars} 个字符，请缩短。",
                )
            ]
        )
    if not sql.strip():
        raise QueryRefused(
            [
                Reason(
                    syntax,
                    "The query is empty; write one SELECT statement.",
                    "查询为空，请写一条 SELECT 语句。",
                )
            ]
        )
    try:
        parsed = sqlglot.parse(sql, read=_DIALECT)
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        where_en = where_zh = ""
        if first.get("line") is not None:
            where_en = f" at line {first['line']}, column {first.get('col')}"
            where_zh = f"（第 {first['line']} 行第 {first.get('col')} 列附近）"
        what = str(first.get("description") or "invalid SQL")
        raise QueryRefused(
            [
                Reason(
                    syntax,
                    f"The query does not parse{where_en}: {what}. Correct the SQL and try again.",
                    f"查询无法解析{where_zh}：{what}。请修正 SQL 后重试。",
                )
            ]
        ) from None
    except (SqlglotError, RecursionError, ValueError, IndexError, KeyError, TypeError):
        # sqlglot's tokenizer and parser raise a few kinds on malformed text; all mean the same
        raise QueryRefused(
            [
                Reason(
                    syntax,
                    "The query does not parse (check quotes, brackets and keywords) or is "
                    "nested too deeply. Correct the SQL and try again.",
                    "查询无法解析（请检查引号、括号与关键字）或嵌套过深。请修正 SQL 后重试。",
                )
            ]
        ) from None
    statements = [s for s in parsed if s is not None]
    if not statements:
        raise QueryRefused(
            [
                Reason(
                    syntax,
                    "The query is empty; write one SELECT statement.",
                    "查询为空，请写一条 SELECT 语句。",
                )
            ]
        )
    if len(statements) > 1:
        raise QueryRefused(
            [
                Reason(
                    rule_id("q_single_select"),
                    f"The query holds {len(statements)} statements; send exactly one SELECT.",
                    f"查询包含 {len(statements)} 条语句，请只提交一条 SELECT 语句。",
                )
            ]
        )
    return statements[0]


_STATEMENTS: Final[tuple[type[exp.Expr], ...]] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Create,
    exp.Drop,
    exp.Copy,
    exp.Attach,
    exp.Detach,
    exp.Pragma,
    exp.Set,
    exp.Install,
    exp.Use,
    exp.Describe,
    exp.Show,
    exp.Summarize,
    exp.Merge,
    exp.Alter,
)


def _statement_kind(statement: exp.Expr, sql: str) -> str:
    """What the user sent instead of a SELECT, in their words (``COPY``, ``LOAD`` …)."""
    if isinstance(statement, exp.Command):
        return str(statement.this).upper()
    if isinstance(statement, _STATEMENTS):
        return statement.key.upper()
    word = re.search(r"[A-Za-z_]+", sql)  # CHECKPOINT parses as a column, SELEC x as an alias
    return word.group(0).upper() if word else "this text"


# ------------------------------------------------------------------------------------ entry
def check_query(sql: str, catalog: Catalog, *, dp: bool) -> Plan:
    """Refuse ``sql`` with every reason found, or return its ``Plan`` (see the module doc)."""
    settings = checker_settings()
    statement = _parse(sql, settings)
    check = _Check(catalog=catalog, dp=dp, settings=settings)
    if isinstance(statement, exp.SetOperation):
        check.refuse(
            "q_shape",
            "UNION, INTERSECT and EXCEPT are not supported; send each SELECT as its own query.",
            "不支持 UNION、INTERSECT 与 EXCEPT，请将每条 SELECT 分别作为查询提交。",
        )
        raise QueryRefused(check.reasons)
    if not isinstance(statement, exp.Select):
        kind = _statement_kind(statement, sql)
        check.refuse(
            "q_single_select",
            f"Only a read-only SELECT may run; {kind} is not allowed.",
            f"只允许运行只读的 SELECT 语句，不允许 {kind}。",
        )
        raise QueryRefused(check.reasons)
    try:
        plan = _check_select(check, statement)
    except RecursionError:
        check.refuse(
            "q_syntax",
            "The query is nested too deeply; simplify it.",
            "查询嵌套过深，请简化。",
        )
        plan = None
    if check.reasons or plan is None:
        raise QueryRefused(check.reasons)
    return plan


def _check_select(check: _Check, select: exp.Select) -> Plan | None:
    check.scan(select)
    for key, value in select.args.items():
        if not value or key in _SELECT_ARGS:
            continue
        if key == "with_":
            if value.args.get("recursive"):
                check.refuse(
                    "q_shape",
                    "Recursive CTEs (WITH RECURSIVE) are not allowed.",
                    "不允许使用递归 CTE（WITH RECURSIVE）。",
                )
            else:
                check.refuse(
                    "q_shape",
                    "WITH (common table expressions) is not supported; write one SELECT over "
                    "the granted tables.",
                    "不支持 WITH（公用表表达式），请对授权的数据表写一条 SELECT 语句。",
                )
        elif key == "having":
            check.refuse(
                "q_shape",
                "HAVING is not supported: the released values are noisy or thresholded; "
                "filter on them client-side.",
                "不支持 HAVING：发布的结果经过加噪或阈值处理，请在客户端对其筛选。",
            )
        elif key == "distinct":
            check.refuse(
                "q_shape",
                "SELECT DISTINCT is not supported; use GROUP BY with COUNT(*).",
                "不支持 SELECT DISTINCT，请使用 GROUP BY 配合 COUNT(*)。",
            )
        elif key == "sample":
            check.refuse(
                "q_shape",
                "USING SAMPLE / TABLESAMPLE is not supported; query the whole table.",
                "不支持 USING SAMPLE / TABLESAMPLE，请对整张表进行查询。",
            )
        elif key == "offset":
            check.refuse(
                "q_shape",
                "OFFSET is not supported; page through the released rows client-side.",
                "不支持 OFFSET，请在客户端对已发布的结果分页。",
            )
        else:
            clause = _CLAUSE_NAMES.get(key, key.upper().rstrip("_"))
            check.refuse(
                "q_shape",
                f"{clause} is not supported in the sandbox.",
                f"沙箱不支持 {clause}。",
            )

    # FROM and JOIN
    from_ = select.args.get("from_")
    join_sql: list[str] = []
    if from_ is None:
        check.refuse(
            "q_tables",
            "The query reads no table; select FROM a granted table.",
            "查询未读取任何数据表，请从授权的数据表中 SELECT … FROM。",
        )
    else:
        check.table(from_.this, 0)
    joins = select.args.get("joins") or []
    if len(joins) > check.settings.max_joins:
        check.refuse(
            "q_shape",
            f"The query joins {len(joins)} tables; at most {check.settings.max_joins} joins "
            "are allowed.",
            f"查询连接了 {len(joins)} 张表，最多允许 {check.settings.max_joins} 次连接。",
        )
    for index, join in enumerate(joins, start=1):
        joined = check.join(join, index)
        if joined is not None:
            source, on = joined
            join_sql.append(f"INNER JOIN {_quote(source.spec.name)} AS {source.alias} ON {on}")
    if not check.sources:
        return None
    first = check.sources[0]

    # SELECT list
    # (a refused item leaves its slot empty, so positions in GROUP BY / ORDER BY still line up
    # and the rest of the query is checked too: every reason is reported at once)
    slots = [
        _projection(check, item, position)
        for position, item in enumerate(select.expressions, start=1)
    ]
    outputs = [o for o in slots if o is not None]

    # names: unique, not reserved
    seen: set[str] = set()
    for output in outputs:
        if "__" in output.name:
            check.refuse(
                "q_shape",
                f"The output name {output.name} contains '__', which the sandbox reserves; "
                "choose another alias.",
                f"输出列名 {output.name} 含有沙箱保留的“__”，请换一个别名。",
            )
        base, n = output.name, 2
        while output.name.casefold() in seen:
            if output.named:
                check.refuse(
                    "q_shape",
                    f"Two output columns are named {base}; give each its own alias.",
                    f"有两个输出列都名为 {base}，请为每列指定不同的别名。",
                )
                break
            output.name, n = f"{base}_{n}", n + 1
        seen.add(output.name.casefold())

    # GROUP BY
    keys = [o for o in outputs if o.aggregate is None]
    group = select.args.get("group")
    grouped: list[_Output] = []
    if group is not None:
        if group.args.get("all"):
            grouped = list(keys)
        for extra in ("grouping_sets", "cube", "rollup"):
            if group.args.get(extra):
                check.refuse(
                    "q_shape",
                    "GROUPING SETS, CUBE and ROLLUP are not supported; send one query per "
                    "grouping.",
                    "不支持 GROUPING SETS、CUBE 与 ROLLUP，请每种分组各提交一条查询。",
                )
        for item in group.expressions:
            target = _group_item(check, item, slots)
            if target is not None and target not in grouped:
                grouped.append(target)
    missing = [k for k in keys if k not in grouped]
    if missing:
        names = ", ".join(k.name for k in missing)
        check.refuse(
            "q_aggregate_only",
            f"The output column(s) {names} are neither an aggregate nor in GROUP BY; add them "
            "to GROUP BY or aggregate them.",
            f"输出列 {names} 既不是聚合值也不在 GROUP BY 中，请将其加入 GROUP BY 或对其聚合。",
        )
    if not any(o.aggregate is not None for o in outputs):
        check.refuse(
            "q_aggregate_only",
            "The query has no aggregate; add COUNT(*), SUM(measure) or AVG(measure).",
            "查询没有聚合值，请加入 COUNT(*)、SUM(度量) 或 AVG(度量)。",
        )

    # WHERE
    where_sql = None
    where = select.args.get("where")
    if where is not None and check.scalar(where.this, "where"):
        where_sql = check.render(where.this)

    order_by = _order(check, select.args.get("order"), slots)
    limit = _limit(check, select.args.get("limit"))

    # bounds for dp
    if check.dp:
        for output in outputs:
            agg = output.aggregate
            if agg and agg.kind in ("sum", "avg") and not _finite_bounds(agg):
                check.refuse(
                    "out_bounding",
                    f"The data set's profile gives no bounds for the measure {agg.column}, so "
                    "its sum cannot be bounded; ask the data holder to set them.",
                    f"数据集画像未给出度量字段 {agg.column} 的取值边界，无法限制其求和；"
                    "请联系数据持有方设置。",
                )
    if check.reasons or len(outputs) != len(slots):
        return None

    settings = check.settings
    # Every group key and filter over columns constant within a privacy unit (and one table):
    # each unit falls in exactly one group, so units are counted and bounded in one pass.
    unit_level = {c.casefold() for c in first.spec.unit_level}
    keyed = [
        item
        for item, slot in zip(select.expressions, slots, strict=True)
        if slot is not None and slot.aggregate is None
    ]
    single_pass = (
        bool(unit_level)
        and not joins
        and all(_columns_of(node) <= unit_level for node in keyed)
        and (where is None or _columns_of(where.this) <= unit_level)
    )
    groups = 1 if single_pass else settings.max_groups_per_unit
    if single_pass:
        staged = _single_pass_sql(check, outputs, first, where_sql, rows=settings.max_rows_per_unit)
    else:
        staged = _staged_sql(
            check,
            outputs,
            first,
            join_sql,
            where_sql,
            rows=settings.max_rows_per_unit,
            groups=settings.max_groups_per_unit,
        )
    return Plan(
        sql=select.sql(_DIALECT),
        tables=tuple(dict.fromkeys(s.spec.name for s in check.sources)),
        columns=tuple(o.name for o in outputs),
        group_keys=tuple(k.name for k in keys),
        aggregates=tuple(o.aggregate for o in outputs if o.aggregate is not None),
        staged_sql=staged,
        max_rows_per_unit=settings.max_rows_per_unit,
        max_groups_per_unit=groups,
        order_by=order_by,
        limit=limit,
        ranked=single_pass,
    )


def _columns_of(node: exp.Expr) -> set[str]:
    """The (case-folded) names of the columns ``node`` reads."""
    return {c.name.casefold() for c in node.find_all(exp.Column)}


def _finite_bounds(agg: Aggregate) -> bool:
    return (
        agg.lower is not None
        and agg.upper is not None
        and math.isfinite(agg.lower)
        and math.isfinite(agg.upper)
        and agg.lower <= agg.upper
    )


def _contains_aggregate(node: exp.Expr) -> bool:
    return any(isinstance(n, exp.AggFunc) for n in node.walk())


def _projection(check: _Check, item: exp.Expr, position: int) -> _Output | None:
    alias: str | None = None
    inner = item
    if isinstance(item, exp.Alias):
        alias, inner = item.alias, item.this
    if isinstance(inner, exp.Star) or (
        isinstance(inner, exp.Column) and isinstance(inner.this, exp.Star)
    ):
        check.resolve(exp.Column(this=exp.Star()), "key")
        return None
    if isinstance(inner, exp.Count | exp.Sum | exp.Avg):
        return _aggregate(check, inner, alias, position)
    if _contains_aggregate(inner):
        check.scalar(inner, "key")  # reports the nested aggregate
        return None
    if not check.scalar(inner, "key"):
        return None
    name = alias or (inner.name if isinstance(inner, exp.Column) else _key_name(inner, position))
    named = bool(alias) or isinstance(inner, exp.Column)
    rendered = check.render(inner)
    return _Output(name=name, canon=rendered, key_sql=rendered, named=named)


def _key_name(node: exp.Expr, position: int) -> str:
    columns = [c.name for c in node.find_all(exp.Column)]
    if isinstance(node, exp.Extract):
        head = node.this.name.lower()
    elif isinstance(node, exp.TimestampTrunc | exp.DateTrunc):
        head = "date_trunc"
    elif isinstance(node, exp.Func):
        head = _shown(node)
    else:
        return f"col{position}"
    return "_".join([head, *columns]) if columns else f"col{position}"


def _aggregate(
    check: _Check, node: exp.Count | exp.Sum | exp.Avg, alias: str | None, position: int
) -> _Output | None:
    arg = node.this
    if isinstance(node, exp.Count):
        if arg is None or isinstance(arg, exp.Star):
            name = alias or "count"
            return _Output(
                name=name, canon="count(*)", aggregate=Aggregate(name, "count"), named=bool(alias)
            )
        if isinstance(arg, exp.Distinct):
            cols = arg.expressions
            if len(cols) == 1 and isinstance(cols[0], exp.Column):
                unit = _unit_reference(check, cols[0])
                if unit is not None:
                    name = alias or f"count_distinct_{cols[0].name}"
                    return _Output(
                        name=name,
                        canon="count(distinct __pu)",
                        aggregate=Aggregate(name, "count", column=unit),
                        units=True,
                        named=bool(alias),
                    )
                if check.resolve(cols[0], "count") is None:  # an identifier, forbidden, unknown
                    return None
            check.refuse(
                "q_aggregate_only",
                "COUNT(DISTINCT …) may only count privacy units (COUNT(DISTINCT unit column)).",
                "COUNT(DISTINCT …) 只能用于统计隐私单元（COUNT(DISTINCT 隐私单元字段)）。",
            )
            return None
        column = _aggregate_column(check, arg, "count")
        if column is None:
            return None
        rendered, spec = column
        name = alias or f"count_{spec.name}"
        return _Output(
            name=name,
            canon=f"count({rendered})",
            aggregate=Aggregate(name, "count", column=spec.name),
            arg_sql=rendered,
            named=bool(alias),
        )
    kind: Literal["sum", "avg"] = "sum" if isinstance(node, exp.Sum) else "avg"
    if isinstance(arg, exp.Distinct):
        check.refuse(
            "q_aggregate_only",
            f"{kind.upper()}(DISTINCT …) is not supported; use {kind.upper()}(measure).",
            f"不支持 {kind.upper()}(DISTINCT …)，请使用 {kind.upper()}(度量)。",
        )
        return None
    column = _aggregate_column(check, arg, "sum")
    if column is None:
        return None
    rendered, spec = column
    name = alias or f"{kind}_{spec.name}"
    return _Output(
        name=name,
        canon=f"{kind}({rendered})",
        aggregate=Aggregate(name, kind, column=spec.name, lower=spec.lower, upper=spec.upper),
        arg_sql=rendered,
        named=bool(alias),
    )


def _unit_reference(check: _Check, column: exp.Column) -> str | None:
    """The privacy unit's name when ``column`` is one (joined tables share theirs)."""
    qualifier = column.table.casefold() if column.table else None
    for source in check.sources:
        if qualifier is not None and qualifier not in source.written:
            continue
        spec = source.spec.column(column.name)
        if spec is not None and spec.role is ColumnRole.PRIVACY_UNIT:
            return spec.name
    return None


def _aggregate_column(
    check: _Check, arg: exp.Expr | None, ctx: Context
) -> tuple[str, ColumnSpec] | None:
    inner = arg.this if isinstance(arg, exp.Cast) else arg
    if not isinstance(inner, exp.Column):
        if arg is not None and _contains_aggregate(arg):
            check.refuse(
                "q_aggregate_only",
                "Aggregates cannot be nested.",
                "聚合不能嵌套。",
            )
        elif arg is not None and not check.known_refused(arg):
            check.scalar(arg, ctx)  # report what it contains
            check.refuse(
                "q_aggregate_only",
                "COUNT, SUM and AVG take one column (a CAST of it is fine), e.g. SUM(amount).",
                "COUNT、SUM 与 AVG 只能作用于单个字段（可对其 CAST），例如 SUM(amount)。",
            )
        return None
    if isinstance(arg, exp.Cast) and not check.scalar(arg, ctx):
        return None
    to = arg.args.get("to") if isinstance(arg, exp.Cast) else None
    if ctx == "sum" and isinstance(to, exp.DataType) and not _summable(to):
        # SUM of a DECIMAL(38, 37) overflows (an engine error) once the values add up past
        # 10: the failure would tell whether the rows' sum passes a threshold, k or not.
        check.refuse(
            "q_functions",
            f"SUM and AVG may cast to DOUBLE, FLOAT, DECIMAL of at most 18 digits or an "
            f"integer type of at most 64 bits, not {to.sql(_DIALECT)} (a sum of it can "
            "overflow); write SUM(CAST(x AS DOUBLE)).",
            f"SUM 与 AVG 中只能转换为 DOUBLE、FLOAT、不超过 18 位的 DECIMAL 或不超过 64 位的整数"
            f"类型，不能转换为 {to.sql(_DIALECT)}（其求和可能溢出）；请写 SUM(CAST(x AS DOUBLE))。",
        )
        return None
    found = check.resolve(inner, ctx)
    if found is None or arg is None:
        return None
    return check.render(arg), found[1]


def _summable(to: exp.DataType) -> bool:
    """A type whose DuckDB SUM cannot overflow: floats (they go to inf), integers of at most
    64 bits (summed in HUGEINT), DECIMAL of at most 18 digits (summed as DECIMAL(38, s))."""
    if to.this in _SUM_CAST_TYPES:
        return True
    if to.this is not exp.DataType.Type.DECIMAL:
        return False
    if not to.expressions:
        return True  # DECIMAL alone is DECIMAL(18, 3)
    precision = to.expressions[0].this
    return (
        isinstance(precision, exp.Literal)
        and not precision.is_string
        and precision.this.isdigit()
        and int(precision.this) <= 18
    )


def _group_item(check: _Check, item: exp.Expr, slots: Sequence[_Output | None]) -> _Output | None:
    outputs = [o for o in slots if o is not None]
    if isinstance(item, exp.Literal) and not item.is_string:
        try:
            index = int(item.this)
        except ValueError:
            index = 0
        if 1 <= index <= len(slots):
            target = slots[index - 1]
            if target is None:  # refused already
                return None
            if target.aggregate is None:
                return target
            check.refuse(
                "q_aggregate_only",
                f"GROUP BY {index} names an aggregate; group by group keys only.",
                f"GROUP BY {index} 指向的是聚合值，请只按分组键分组。",
            )
            return None
        check.refuse(
            "q_shape",
            f"GROUP BY {item.this}: there is no output column at that position.",
            f"GROUP BY {item.this}：该位置没有输出列。",
        )
        return None
    if isinstance(item, exp.Column) and not item.table:
        by_name = [
            o for o in outputs if o.aggregate is None and o.name.casefold() == item.name.casefold()
        ]
        if by_name and not any(s.spec.column(item.name) for s in check.sources):
            return by_name[0]
    if _contains_aggregate(item):
        check.refuse(
            "q_aggregate_only",
            "GROUP BY cannot hold an aggregate; group by group keys only.",
            "GROUP BY 中不能有聚合，请只按分组键分组。",
        )
        return None
    if not check.scalar(item, "key"):
        return None
    rendered = check.render(item)
    for output in outputs:
        if output.aggregate is None and output.canon == rendered:
            return output
    check.refuse(
        "q_shape",
        f"GROUP BY {item.sql(_DIALECT)} is not in the SELECT list; add it as an output column.",
        f"GROUP BY {item.sql(_DIALECT)} 不在 SELECT 列表中，请将其加入输出列。",
    )
    return None


def _order(
    check: _Check, order: exp.Order | None, slots: Sequence[_Output | None]
) -> tuple[tuple[str, bool], ...]:
    if order is None:
        return ()
    result: list[tuple[str, bool]] = []
    for ordered in order.expressions:
        node = ordered.this if isinstance(ordered, exp.Ordered) else ordered
        desc = bool(ordered.args.get("desc")) if isinstance(ordered, exp.Ordered) else False
        target = _order_target(check, node, slots)
        if target is _REFUSED:
            continue
        if target is None:
            check.refuse(
                "q_shape",
                f"ORDER BY {node.sql(_DIALECT)[:60]} is not an output column; order by output "
                "columns (name or position) only — the order is applied to the released rows.",
                f"ORDER BY {node.sql(_DIALECT)[:60]} 不是输出列，只能按输出列（名称或位置）排序，"
                "排序作用于已发布的结果。",
            )
            continue
        result.append((target.name, desc))
    return tuple(result)


_REFUSED: Final = _Output(name="", canon="")  # an ORDER BY position naming a refused output


def _order_target(check: _Check, node: exp.Expr, slots: Sequence[_Output | None]) -> _Output | None:
    outputs = [o for o in slots if o is not None]
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            index = int(node.this)
        except ValueError:
            return None
        if not 1 <= index <= len(slots):
            return None
        return slots[index - 1] or _REFUSED
    if isinstance(node, exp.Column) and not node.table:
        for output in outputs:
            if output.name.casefold() == node.name.casefold():
                return output
    canon = _canon_quietly(check, node)
    if canon is None:
        return None
    return next((o for o in outputs if o.canon == canon), None)


def _canon_quietly(check: _Check, node: exp.Expr) -> str | None:
    """The canonical form of an ORDER BY expression, if it is one the outputs hold, without
    adding reasons of its own (the ORDER BY reason says what to do)."""
    saved = list(check.reasons)
    try:
        if isinstance(node, exp.Count | exp.Sum | exp.Avg):
            output = _aggregate(check, node, None, 0)
            return output.canon if output is not None else None
        if not _contains_aggregate(node) and check.scalar(node, "key"):
            return check.render(node)
        return None
    finally:
        check.reasons[:] = saved


def _limit(check: _Check, limit: exp.Expr | None) -> int | None:
    if limit is None:
        return None
    value = limit.args.get("expression")
    if (
        isinstance(limit, exp.Limit)
        and isinstance(value, exp.Literal)
        and not value.is_string
        and value.this.isdigit()
        and not any(v for k, v in limit.args.items() if k != "expression")
    ):
        return int(value.this)
    check.refuse(
        "q_shape",
        "LIMIT takes a whole number (LIMIT 10).",
        "LIMIT 只能是一个非负整数（如 LIMIT 10）。",
    )
    return None


# ------------------------------------------------------------------------------------ rewrite
def _select(columns: Sequence[str], source: str, tail: str = "") -> str:
    # Every piece is rendered by sqlglot from the checked tree, quoted by _quote or a constant:
    # no text of the user's reaches the staged SQL unparsed.
    return f"SELECT {', '.join(columns)} FROM {source}{tail}"  # noqa: S608


def _count_part(column: str, name: str) -> str:
    # BIGINT: DuckDB sums BIGINT to HUGEINT (Arrow decimal128); a sum of counts never exceeds
    # the row count, and 0 rather than NULL when there are no rows (as COUNT(*) would say).
    return f"CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS {_quote(name + '__count')}"


def _clamp(value: str, lower: float, upper: float) -> str:
    # GREATEST/LEAST skip NULLs in DuckDB and Spark, and a NULL measure must stay NULL (not
    # count as the bound): hence the guard. ``value`` is evaluated once per row either way.
    lo, hi = _number(lower), _number(upper)
    return f"CASE WHEN {value} IS NULL THEN NULL ELSE LEAST(GREATEST({value}, {lo}), {hi}) END"


def _as_double(value: str) -> str:
    # A measure is numeric (the profile refuses any other) and so is every cast of it the
    # checker lets through: converting it to DOUBLE cannot fail.
    return f"CAST({value} AS DOUBLE)"


def _staged_sql(
    check: _Check,
    outputs: Sequence[_Output],
    first: _Source,
    join_sql: Sequence[str],
    where_sql: str | None,
    *,
    rows: int,
    groups: int,
) -> str:
    dp = check.dp
    keys = [o for o in outputs if o.aggregate is None]
    key_names = [_quote(k.name) for k in keys]

    # base: group keys, the privacy unit, one column per distinct aggregated argument
    base_cols = [f"{k.key_sql} AS {q}" for k, q in zip(keys, key_names, strict=True)]
    base_cols.append(f"{first.alias}.{_quote(first.spec.privacy_unit)} AS __pu")
    args: dict[tuple[str, bool], str] = {}  # (argument, clamped) → base column
    for output in outputs:
        agg = output.aggregate
        if agg is None or output.arg_sql is None:
            continue
        clamped = dp and agg.kind in ("sum", "avg")
        slot = (output.arg_sql, clamped)
        if slot in args:
            continue
        column = f"__a{len(args)}"
        value = output.arg_sql
        if clamped:
            assert agg.lower is not None
            assert agg.upper is not None
            value = _clamp(_as_double(value), agg.lower, agg.upper)
        base_cols.append(f"{value} AS {column}")
        args[slot] = column
    base = _select(
        base_cols,
        f"{_quote(first.spec.name)} AS {first.alias}",
        "".join(f" {j}" for j in join_sql) + (f" WHERE {where_sql}" if where_sql else ""),
    )

    # per_unit: one row per group and unit, its (bounded) count and sums
    unit_cols = [*key_names, "__pu"]
    unit_names = list(unit_cols)
    parts: list[str] = []  # final-stage select items
    seen_parts: dict[str, str] = {}  # per-unit expression → per-unit column

    def per_unit(expression: str) -> str:
        if expression not in seen_parts:
            seen_parts[expression] = f"__p{len(seen_parts)}"
            unit_cols.append(f"{expression} AS {seen_parts[expression]}")
            unit_names.append(seen_parts[expression])
        return seen_parts[expression]

    def bounded_count(expression: str) -> str:
        return f"LEAST({expression}, {rows})" if dp else expression

    for output in outputs:
        agg = output.aggregate
        if agg is None:
            continue
        if output.units:
            parts.append(f"COUNT(__pu) AS {_quote(agg.name + '__count')}")
            continue
        if agg.kind == "count":
            inner = (
                "COUNT(*)" if output.arg_sql is None else f"COUNT({args[(output.arg_sql, False)]})"
            )
            column = per_unit(bounded_count(inner))
            parts.append(_count_part(column, agg.name))
            continue
        assert output.arg_sql is not None
        arg = args[(output.arg_sql, dp)]
        total = f"SUM({arg})"
        if dp:
            assert agg.lower is not None
            assert agg.upper is not None
            # A unit with more than L rows adds its mean times L (as its count adds L), not its
            # whole sum cut at the bound: an average stays unbiased, the bound the same.
            scaled = f"{total} * LEAST(COUNT({arg}), {rows}) / NULLIF(COUNT({arg}), 0)"
            total = _clamp(scaled, min(0.0, rows * agg.lower), max(0.0, rows * agg.upper))
        parts.append(f"SUM({per_unit(total)}) AS {_quote(agg.name + '__sum')}")
        if agg.kind == "avg":
            count = per_unit(bounded_count(f"COUNT({arg})"))
            parts.append(_count_part(count, agg.name))
    group_base = f" GROUP BY {', '.join(key_names)}, __pu" if key_names else " GROUP BY __pu"
    stages = [
        f"base AS ({base})",
        f"per_unit AS ({_select(unit_cols, 'base', group_base)})",
    ]
    source = "per_unit"
    if dp and keys:
        # each unit in at most G groups: its first G by group key (deterministic, and decided
        # by the unit's own rows only, so the bound is a stable transformation)
        order = ", ".join(f"{k} NULLS LAST" for k in key_names)
        rank = f"ROW_NUMBER() OVER (PARTITION BY __pu ORDER BY {order}) AS __rank"
        stages.append(f"ranked AS ({_select([*unit_names, rank], 'per_unit')})")
        stages.append(f"bounded AS ({_select(unit_names, 'ranked', f' WHERE __rank <= {groups}')})")
        source = "bounded"
    # COUNT(__pu): rows without a privacy unit are counted and summed, but are no unit (as
    # COUNT(DISTINCT unit) would have it)
    final_cols = [*key_names, "COUNT(__pu) AS __units", *parts]
    final = _select(final_cols, source, f" GROUP BY {', '.join(key_names)}" if key_names else "")
    return f"WITH {', '.join(stages)} {final}"


def _single_pass_sql(
    check: _Check,
    outputs: Sequence[_Output],
    first: _Source,
    where_sql: str | None,
    *,
    rows: int,
) -> str:
    """The staged query when every group key and filter is constant within a privacy unit:
    one aggregation over the rows. The file carries each row's number within its unit
    (``RANK_COLUMN``): a unit is counted on its first row, and with dp only its first ``rows``
    rows are read — each unit adds at most ``rows`` to a count and lies in one group (G = 1),
    its measures clamped row by row. Without dp the answers are exact, as on the general path."""
    keys = [o for o in outputs if o.aggregate is None]
    rank = f"{first.alias}.{_quote(RANK_COLUMN)}"
    # Rows without a unit have no number (``sources.rank_file``): never a unit's first row, and
    # with dp not read at all.
    # (An aggregate FILTER, not SUM(CASE …): DuckDB skips the rows instead of adding zeros.)
    first_row = f"CAST(COUNT(*) FILTER (WHERE {rank} = 1) AS BIGINT)"
    cols = [f"{k.key_sql} AS {_quote(k.name)}" for k in keys]
    cols.append(f"{first_row} AS __units")
    for output in outputs:
        agg = output.aggregate
        if agg is None:
            continue
        if output.units:
            cols.append(f"{first_row} AS {_quote(agg.name + '__count')}")
            continue
        if agg.kind == "count":
            inner = "COUNT(*)" if output.arg_sql is None else f"COUNT({output.arg_sql})"
            cols.append(f"CAST({inner} AS BIGINT) AS {_quote(agg.name + '__count')}")
            continue
        assert output.arg_sql is not None
        value = output.arg_sql
        if check.dp:
            assert agg.lower is not None
            assert agg.upper is not None
            value = _clamp(_as_double(value), agg.lower, agg.upper)
        cols.append(f"SUM({value}) AS {_quote(agg.name + '__sum')}")
        if agg.kind == "avg":  # clamping keeps NULLs NULL: count the argument itself
            cols.append(
                f"CAST(COUNT({output.arg_sql}) AS BIGINT) AS {_quote(agg.name + '__count')}"
            )
    conditions = [c for c in (where_sql, f"{rank} <= {rows}" if check.dp else None) if c]
    tail = " WHERE " + " AND ".join(f"({c})" for c in conditions) if conditions else ""
    if keys:
        tail += f" GROUP BY {', '.join(str(k.key_sql) for k in keys)}"
    return _select(cols, f"{_quote(first.spec.name)} AS {first.alias}", tail)


def with_min_units(staged_sql: str, k: int) -> str:
    """``staged_sql`` keeping only the groups of at least ``k`` privacy units (``__units``).

    The worker refuses a staged result over ``output.max_result_rows`` rows, and a refusal
    is refunded: were groups of fewer than k units (even of none) still in it, that refusal
    would tell whether one more group exists — WHERE x < 'm' OR (rare = 'a' AND kwh > 300),
    grouped by a key with exactly the cap of groups, fails only if that one person's kWh is
    over 300. Filtered here, the count is of groups k lets through anyway. Under differential
    privacy the filter is the threshold mechanism on counts shifted by k − 1 (a group of k
    units appears as a new group of one would; the threshold is T_δ + k − 1), so it costs no
    privacy."""
    tree = sqlglot.parse_one(staged_sql, read=_DIALECT)
    with_ = tree.args.get("with_")
    stages = [cte.sql(_DIALECT, comments=False) for cte in with_.expressions] if with_ else []
    tree.set("with_", None)
    stages.append(f"staged AS ({tree.sql(_DIALECT, comments=False)})")
    # every piece: sqlglot's rendering of the checker's own staged query, or a whole number
    return f"WITH {', '.join(stages)} SELECT * FROM staged WHERE __units >= {max(int(k), 1)}"  # noqa: S608

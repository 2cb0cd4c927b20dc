"""Output controls: minimum group size k, differential-privacy noise from OpenDP, the ε a query
costs and the budget arithmetic the account is charged by (issue 8, item 3). Pure: no web, no ORM.

**Without differential privacy** (the policy sets k but no ε): groups of fewer than k privacy
units are dropped, averages computed as sum / count, and the result ordered and cut by the
query's ORDER BY / LIMIT *after* suppression (so LIMIT cannot reach a suppressed group). The
answer never says how many groups were dropped: the note about k is the same whether none or
all were (SBX-OUT-K).

**With differential privacy** (ε given). The checker bounds each privacy unit's contribution:
it reaches at most G = ``plan.max_groups_per_unit`` groups, adds at most L =
``plan.max_rows_per_unit`` to a count and a value in [L·lower, L·upper] to a sum. The query's ε
is split evenly over ``n = 1 + len(plan.measurements)`` measurements (sequential composition,
SBX-BUD-COMP): the noisy count of units per group that decides which groups are shown, and each
staged part — an average is its sum *and* its count, two measurements. Each gets ε/n and noise
whose scale is its l1 sensitivity over ε/n:

====================  =================================  ======================================
measurement           l1 sensitivity (one unit added)    OpenDP 0.16 mechanism
====================  =================================  ======================================
units per group       G (1 in each of ≤ G groups)        ``make_laplace_threshold`` over a
                                                         map of i64 (discrete Laplace)
``<agg>__count``      L·G                                ``make_laplace`` on a vector of i64
                                                         (discrete Laplace, "geometric")
``<agg>__sum``        L·G·max(|lower|, |upper|)          ``make_laplace`` on a vector of f64
====================  =================================  ======================================

Every scale is checked against OpenDP's own privacy map (``meas.map(d_in) <= ε/n``), nudged up
by an ulp where float rounding would overshoot. Which groups exist is itself private: a group
is shown only when its noisy unit count reaches ``threshold = T_δ + k − 1``, where T_δ is the
smallest threshold for which OpenDP's map gives δ ≤ ``dp_delta_per_epsilon × ε`` for one added
unit (a brand-new group of one unit). The ``k − 1`` margin makes a group of fewer than k units
as unlikely to be shown as a brand-new one, so no exact (non-private) k filter is needed. The
query as a whole is (ε, δ)-DP with δ = ``dp_delta_per_epsilon × ε``; since δ is proportional
to ε, a budget of total ε_T spends at most δ = ε_T × ``dp_delta_per_epsilon`` however it is split
into queries. Counts are released rounded and never negative, sums as they come, averages as
noisy sum / max(noisy count, 1) clamped to the measure's bounds — all post-processing. Noise is
added to the groups shown only (same distribution; the set shown is the first measurement's
output), each measurement built once per (kind, scale) and applied to the whole column.

**The charge** (``query_cost``) is the query's ε: the sum of its measurements' shares. A query
without DP costs 0. ``charge`` turns a requested ε into the micro-ε to take from the account, or
refuses (SBX-BUD-CAP, SBX-BUD-TOTAL); the run must then use ``from_micro(charged)`` as its ε, so
the noise and the ledger agree to the micro-ε.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import opendp.prelude as dp
import pyarrow as pa

from datafactor.sandbox.domain import Aggregate, Plan, Reason, Released
from datafactor.sandbox.errors import QueryRefused
from datafactor.sandbox.rulebook import rule_id, section

__all__ = [
    "MICRO",
    "UNITS",
    "BudgetValues",
    "Calibration",
    "Noise",
    "OutputValues",
    "budget_values",
    "calibrate",
    "charge",
    "from_micro",
    "output_values",
    "query_cost",
    "release",
    "to_micro",
]

dp.enable_features("contrib")

MICRO = 1_000_000  # micro-ε per ε (as ``models.MICRO``: the account stores whole micro-ε)
UNITS = "__units"  # the staged column of distinct privacy units per group

NoiseKind = Literal["units", "count", "sum"]


# --- values from rules/sandbox.yaml ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputValues:
    default_k: int
    max_result_rows: int
    dp_delta_per_epsilon: float


@dataclass(frozen=True, slots=True)
class BudgetValues:
    """In ε (the account itself stores micro-ε)."""

    default_epsilon_per_query: float
    max_epsilon_per_query: float
    default_total_epsilon: float


def _positive(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"sandbox.yaml {where}.{key}: a number is required")
    if kind is int and not isinstance(value, int):
        raise ValueError(f"sandbox.yaml {where}.{key}: a whole number is required")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"sandbox.yaml {where}.{key}: must be positive")
    return kind(value)


@functools.cache
def output_values() -> OutputValues:
    data = section("output")
    values = OutputValues(
        default_k=_positive(data, "default_k", int, "output"),
        max_result_rows=_positive(data, "max_result_rows", int, "output"),
        dp_delta_per_epsilon=_positive(data, "dp_delta_per_epsilon", float, "output"),
    )
    if values.dp_delta_per_epsilon >= 1e-3:
        raise ValueError("sandbox.yaml output.dp_delta_per_epsilon: must be far below 1e-3")
    return values


@functools.cache
def budget_values() -> BudgetValues:
    data = section("budget")
    values = BudgetValues(
        default_epsilon_per_query=_positive(data, "default_epsilon_per_query", float, "budget"),
        max_epsilon_per_query=_positive(data, "max_epsilon_per_query", float, "budget"),
        default_total_epsilon=_positive(data, "default_total_epsilon", float, "budget"),
    )
    if not (
        values.default_epsilon_per_query
        <= values.max_epsilon_per_query
        <= values.default_total_epsilon
    ):
        raise ValueError(
            "sandbox.yaml budget: needs default_epsilon_per_query <= max_epsilon_per_query"
            " <= default_total_epsilon"
        )
    return values


# --- budget arithmetic -------------------------------------------------------------------------


def to_micro(epsilon: float) -> int:
    """Whole micro-ε, rounded to the nearest."""
    return round(epsilon * MICRO)


def from_micro(micro: int) -> float:
    return micro / MICRO


def _fmt(epsilon: float) -> str:
    """ε for people: up to six decimals, no trailing zeros."""
    return f"{epsilon:.6f}".rstrip("0").rstrip(".") or "0"


def charge(requested: float | None, *, default: float, cap: float, left_micro: int) -> int:
    """The micro-ε to take from the account for a query that asks for ``requested`` ε (the
    ``default`` when it names none, never more than the cap), or ``QueryRefused``: an ε that is not a positive finite
    number or is over the per-query ``cap`` (SBX-BUD-CAP), or more than the ``left_micro`` the
    account has left (SBX-BUD-TOTAL). Nothing is charged here; the caller takes the amount under
    the account's lock and runs the query with ``from_micro(amount)``."""
    cap_rule, total_rule = rule_id("budget_query_cap"), rule_id("budget_total")
    epsilon = min(default, cap) if requested is None else requested
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        epsilon = math.nan
    epsilon = float(epsilon)
    if not math.isfinite(epsilon) or epsilon <= 0 or to_micro(epsilon) <= 0:
        raise QueryRefused(
            [
                Reason(
                    cap_rule,
                    f"The privacy budget ε asked for must be a positive number of at least "
                    f"0.000001 and at most {_fmt(cap)}; ask for, for example, "
                    f"{_fmt(min(default, cap))}.",
                    f"申请的隐私预算 ε 须为不小于 0.000001、不超过 {_fmt(cap)} 的正数；"
                    f"例如可申请 {_fmt(min(default, cap))}。",
                )
            ]
        )
    micro = to_micro(epsilon)
    if micro > to_micro(cap):
        raise QueryRefused(
            [
                Reason(
                    cap_rule,
                    f"ε {_fmt(epsilon)} is over the cap of {_fmt(cap)} one query may spend; "
                    f"ask for ε of at most {_fmt(cap)} (a smaller ε adds more noise).",
                    f"ε {_fmt(epsilon)} 超过单次查询上限 {_fmt(cap)}；请申请不超过 "
                    f"{_fmt(cap)} 的 ε（ε 越小，噪声越大）。",
                )
            ]
        )
    if micro > left_micro:
        left = from_micro(max(left_micro, 0))
        if left_micro <= 0:
            en = (
                "The privacy budget for this grant and data set is spent (ε 0 left); no "
                "query with differential privacy can run until the data holder adds budget."
            )
            zh = "该授权与数据集的隐私预算已用尽（剩余 ε 0）；在数据持有方追加预算前不能再运行差分隐私查询。"
        else:
            en = (
                f"This query needs ε {_fmt(epsilon)} but only ε {_fmt(left)} is left of the "
                f"privacy budget for this grant and data set; ask for ε of at most "
                f"{_fmt(left)}, or ask the data holder to add budget."
            )
            zh = (
                f"本次查询需要 ε {_fmt(epsilon)}，但该授权与数据集的隐私预算仅剩 ε "
                f"{_fmt(left)}；请申请不超过 {_fmt(left)} 的 ε，或请数据持有方追加预算。"
            )
        raise QueryRefused([Reason(total_rule, en, zh)])
    return micro


def query_cost(plan: Plan, epsilon: float | None) -> float:
    """The ε a run of ``plan`` is charged: 0 without differential privacy (k only); otherwise
    ``epsilon`` itself, the sum of the ε/n shares of its n = 1 + len(plan.measurements)
    measurements (``calibrate``): the noisy unit counts that pick the groups shown, and each
    staged part, an average counting twice (its sum and its count)."""
    if epsilon is None:
        return 0.0
    _check_epsilon(epsilon)
    return float(epsilon)


def _check_epsilon(epsilon: float) -> None:
    if isinstance(epsilon, bool) or not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"ε must be a positive finite number, not {epsilon!r}")


# --- calibration -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Noise:
    """One measurement: the staged column it noises, its kind, its share of ε, its l1
    sensitivity to one privacy unit, and the Laplace scale OpenDP adds (sensitivity / ε)."""

    part: str
    kind: NoiseKind
    epsilon: float
    sensitivity: float
    scale: float


@dataclass(frozen=True, slots=True)
class Calibration:
    """How a DP release of a plan is calibrated: the query's ε and δ, the noisy-unit threshold a
    group must reach to be shown, and the measurements (the units threshold first)."""

    epsilon: float
    delta: float
    threshold: int
    noises: tuple[Noise, ...]

    def noise(self, part: str) -> Noise:
        return next(n for n in self.noises if n.part == part)


def _aggregate_of(plan: Plan, part: str) -> Aggregate:
    return next(a for a in plan.aggregates if part in a.parts)


def calibrate(plan: Plan, epsilon: float, *, k: int) -> Calibration:
    """The calibration of a DP release of ``plan`` at ``epsilon`` with minimum group size ``k``
    (see the module docstring): deterministic, from public values only."""
    _check_epsilon(epsilon)
    groups, rows = plan.max_groups_per_unit, plan.max_rows_per_unit
    if groups < 1 or rows < 1:
        raise ValueError("a DP plan needs max_groups_per_unit and max_rows_per_unit of at least 1")
    share = epsilon / (1 + len(plan.measurements))
    noises = [Noise(UNITS, "units", share, float(groups), _units_scale(groups, share))]
    for part in plan.measurements:
        aggregate = _aggregate_of(plan, part)
        if part.endswith("__count"):
            sensitivity = float(rows * groups)
            noises.append(
                Noise(part, "count", share, sensitivity, _count_scale(rows * groups, share))
            )
            continue
        if aggregate.lower is None or aggregate.upper is None:
            raise ValueError(f"aggregate {aggregate.name}: a sum needs clamping bounds")
        sensitivity = float(rows * groups * max(abs(aggregate.lower), abs(aggregate.upper)))
        scale = _sum_scale(sensitivity, share) if sensitivity else 0.0  # bounds [0, 0]: no noise
        noises.append(Noise(part, "sum", share, sensitivity, scale))
    delta = output_values().dp_delta_per_epsilon * epsilon
    threshold = _delta_threshold(noises[0].scale, groups, delta) + max(k, 1) - 1
    # OpenDP's own accounting of the measurement that picks the groups, at the final threshold.
    spent, risk = _threshold_measurement(noises[0].scale, threshold).map(_unit_neighbour(groups))
    if spent > share or risk > delta:
        raise ValueError(f"the unit threshold spends ({spent}, {risk}), over ({share}, {delta})")
    return Calibration(epsilon, delta, threshold, tuple(noises))


def _fitted(build: Callable[[float], Any], d_in: Any, sensitivity: float, epsilon: float) -> float:
    """sensitivity / ε, or the next float up where OpenDP's privacy map of ``d_in`` at that
    scale would exceed ``epsilon`` by a rounding error."""
    scale = sensitivity / epsilon
    for _ in range(64):
        loss = build(scale).map(d_in)
        if (loss[0] if isinstance(loss, tuple) else loss) <= epsilon:
            return scale
        scale = math.nextafter(scale, math.inf) * (1 + 1e-15)
    raise ValueError(f"no Laplace scale meets ε {epsilon} for sensitivity {sensitivity}")


_I64_SPACE = (dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"))
_F64_SPACE = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float))
_MAP_SPACE = (
    dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64")),
    dp.l01inf_distance(dp.absolute_distance(T="i64")),
)


@functools.lru_cache(maxsize=256)
def _count_measurement(scale: float) -> Any:
    return dp.m.make_laplace(*_I64_SPACE, scale=scale)


@functools.lru_cache(maxsize=256)
def _sum_measurement(scale: float) -> Any:
    return dp.m.make_laplace(*_F64_SPACE, scale=scale)


@functools.lru_cache(maxsize=1024)
def _threshold_measurement(scale: float, threshold: int) -> Any:
    return dp.m.make_laplace_threshold(*_MAP_SPACE, scale=scale, threshold=threshold)


@functools.lru_cache(maxsize=256)
def _count_scale(sensitivity: int, epsilon: float) -> float:
    return _fitted(_count_measurement, sensitivity, sensitivity, epsilon)


@functools.lru_cache(maxsize=256)
def _sum_scale(sensitivity: float, epsilon: float) -> float:
    return _fitted(_sum_measurement, sensitivity, sensitivity, epsilon)


def _unit_neighbour(groups: int) -> tuple[int, int, int]:
    """OpenDP's l0/l1/l∞ distance of the units-per-group map when one unit is added: G groups
    change (new ones appear with 1 unit), by 1 each."""
    return (groups, groups, 1)


@functools.lru_cache(maxsize=256)
def _units_scale(groups: int, epsilon: float) -> float:
    return _fitted(
        lambda scale: _threshold_measurement(scale, 1), _unit_neighbour(groups), groups, epsilon
    )


@functools.lru_cache(maxsize=256)
def _delta_threshold(scale: float, groups: int, delta: float) -> int:
    """T_δ: the smallest threshold at which OpenDP's map gives δ ≤ ``delta`` for one added
    unit (binary search; δ falls as the threshold rises)."""

    def delta_at(threshold: int) -> float:
        return float(_threshold_measurement(scale, threshold).map(_unit_neighbour(groups))[1])

    low, high = 1, max(2, math.ceil(1 + scale * math.log(groups / delta)) + 2)
    while delta_at(high) > delta:
        low, high = high, high * 2
    while low < high:
        middle = (low + high) // 2
        if delta_at(middle) <= delta:
            high = middle
        else:
            low = middle + 1
    return high


# --- release -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """An engine value as a plain Python one (DuckDB's HUGEINT sums arrive as decimals)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _column(staged: pa.Table, name: str) -> list[Any]:
    if name not in staged.column_names:
        raise ValueError(f"the staged result has no column {name!r}")
    return [_plain(v) for v in staged.column(name).to_pylist()]


def _sorted(rows: list[tuple[Any, ...]], keys: Sequence[tuple[int, bool]]) -> list[tuple[Any, ...]]:
    """Rows sorted by (column index, descending) pairs, the first pair major; NULL last."""
    for index, descending in reversed(keys):
        rows.sort(key=functools.partial(_sort_key, index, descending), reverse=descending)
    return rows


def _sort_key(index: int, descending: bool, row: tuple[Any, ...]) -> tuple[bool, Any]:
    value = row[index]
    # NULL sorts last either way: reversed for DESC, so its flag flips.
    return (value is not None, value) if descending else (value is None, value)


def _k_note(k: int, threshold: int | None) -> Reason:
    if threshold is None:
        return Reason(
            rule_id("out_k"),
            f"Groups of fewer than {k} privacy units are not shown.",
            f"少于 {k} 个隐私单元的分组不予显示。",
        )
    return Reason(
        rule_id("out_k"),
        f"Groups of fewer than {k} privacy units are not shown: a group is shown only when its "
        f"noisy count of privacy units reaches {threshold} (k plus a margin that also keeps "
        f"private which groups exist).",
        f"少于 {k} 个隐私单元的分组不予显示：仅当分组加噪后的隐私单元数达到 {threshold} 时才显示"
        f"（k 加上一段余量，同时保护哪些分组存在这一信息）。",
    )


def _dp_note(calibration: Calibration) -> Reason:
    n = len(calibration.noises)
    eps, delta = _fmt(calibration.epsilon), f"{calibration.delta:.1e}"
    return Reason(
        rule_id("out_dp"),
        f"Differential-privacy noise was added (ε = {eps} in {n} equal shares, δ = {delta}): "
        f"counts are rounded and never negative, averages are clamped to the measure's bounds.",
        f"已添加差分隐私噪声（ε = {eps}，平均分为 {n} 份，δ = {delta}）："
        f"计数取整且不为负，平均值截断在度量的边界之内。",
    )


def release(plan: Plan, staged: pa.Table, *, k: int, epsilon: float | None) -> Released:
    """The grantee's answer from the staged result (one row per group: the group keys,
    ``__units`` and each aggregate's parts): k suppression, DP noise when ``epsilon`` is given,
    then ORDER BY / LIMIT and the row cap (see the module docstring)."""
    units = _column(staged, UNITS)
    parts = {p: _column(staged, p) for p in plan.measurements}
    keys = {g: _column(staged, g) for g in plan.group_keys}
    notes: list[Reason] = []
    calibration: Calibration | None = None
    if epsilon is None:
        shown = [i for i, u in enumerate(units) if u is not None and u >= k]
        values = {p: [column[i] for i in shown] for p, column in parts.items()}
        notes.append(_k_note(k, None))
    else:
        calibration = calibrate(plan, epsilon, k=k)
        shown = _noisy_groups(units, calibration)
        values = {p: _noisy(calibration.noise(p), [parts[p][i] for i in shown]) for p in parts}
        notes += [_k_note(k, calibration.threshold), _dp_note(calibration)]

    outputs: dict[str, list[Any]] = {g: [keys[g][i] for i in shown] for g in plan.group_keys}
    for aggregate in plan.aggregates:
        outputs[aggregate.name] = _output(aggregate, values, dp_on=calibration is not None)
    for name in plan.columns:
        if name not in outputs:
            raise ValueError(f"output column {name!r} is neither a group key nor an aggregate")
    rows = list(zip(*(outputs[c] for c in plan.columns), strict=True)) if plan.columns else []
    index = {c: i for i, c in enumerate(plan.columns)}
    order = [(index[g], False) for g in plan.group_keys if g in index]
    rows = _sorted(rows, order)  # a stable base order, so both engines answer alike
    rows = _sorted(rows, [(index[c], descending) for c, descending in plan.order_by])
    if plan.limit is not None:
        rows = rows[: max(plan.limit, 0)]
    cap = output_values().max_result_rows
    if len(rows) > cap:
        rows = rows[:cap]
        notes.append(
            Reason(
                rule_id("out_size"),
                f"Only the first {cap} rows are shown (the sandbox's cap on a result); group by "
                f"fewer or coarser keys, or add a LIMIT, to see the rows you need.",
                f"仅显示前 {cap} 行（沙箱结果行数上限）；请减少或放粗分组键，或加 LIMIT。",
            )
        )
    noise = _noise_label(calibration)
    return Released(
        columns=tuple(plan.columns),
        rows=tuple(tuple(r) for r in rows),
        epsilon_spent=query_cost(plan, epsilon),
        noise=noise,
        notes=tuple(notes),
    )


def _noisy_groups(units: list[Any], calibration: Calibration) -> list[int]:
    """The staged rows whose noisy unit count reaches the threshold (OpenDP's Laplace
    threshold mechanism over the map row → units), in staged order."""
    noise = calibration.noises[0]
    measurement = _threshold_measurement(noise.scale, calibration.threshold)
    counts = {str(i): int(u) for i, u in enumerate(units) if u}
    return sorted(int(key) for key in measurement(counts)) if counts else []


def _noisy(noise: Noise, values: list[Any]) -> list[float]:
    if not values:
        return []
    if noise.sensitivity == 0:  # bounds [0, 0]: the sum is 0 whatever the data
        return [0.0 for _ in values]
    if noise.kind == "count":
        return [float(v) for v in _count_measurement(noise.scale)([int(v or 0) for v in values])]
    return [float(v) for v in _sum_measurement(noise.scale)([float(v or 0) for v in values])]


def _output(aggregate: Aggregate, values: dict[str, list[Any]], *, dp_on: bool) -> list[Any]:
    name = aggregate.name
    if aggregate.kind == "count":
        counts = values[f"{name}__count"]
        return [max(0, round(c)) for c in counts] if dp_on else [c or 0 for c in counts]
    if aggregate.kind == "sum":
        return list(values[f"{name}__sum"])
    sums, counts = values[f"{name}__sum"], values[f"{name}__count"]
    if not dp_on:
        return [s / c if c and s is not None else None for s, c in zip(sums, counts, strict=True)]
    lower, upper = aggregate.lower, aggregate.upper
    averages = [s / max(c, 1.0) for s, c in zip(sums, counts, strict=True)]
    if lower is None or upper is None:  # calibrate() refuses a sum without bounds
        return averages
    return [min(max(a, lower), upper) for a in averages]


def _noise_label(
    calibration: Calibration | None,
) -> Literal["none", "laplace", "geometric", "mixed"]:
    """The noise on the released values: discrete Laplace ("geometric") on counts, Laplace on
    sums. (The unit threshold that picks the groups is always discrete Laplace.)"""
    if calibration is None:
        return "none"
    kinds = {n.kind for n in calibration.noises[1:]}
    if "sum" in kinds:
        return "mixed" if "count" in kinds else "laplace"
    return "geometric"

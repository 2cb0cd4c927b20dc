"""Output controls and differential privacy (sandbox/dp.py): k suppression that never tells how
many groups it hid, ORDER BY / LIMIT applied after suppression and noise, what a query is
charged, the budget refusals, and stochastic checks that the count, histogram, sum and
group-threshold mechanisms meet the ε they are said to spend.

The stochastic checks run the release on neighbouring staged tables (one privacy unit added)
and test, for sets S of outputs chosen where the Laplace bound is *tight*,
P[M(D)∈S] ≤ e^ε·P[M(D')∈S] + tolerance in both directions. OpenDP draws from the OS's CSPRNG
and cannot be seeded, so the tolerance is Z = 5.5 standard errors of the estimated difference
(a false alarm about 2e-8 per check, ~2e-6 for the ~115 checks here); a mechanism with half its
calibrated noise overshoots the bound by ~0.2, over five times the tolerance (the negative
control below shows the check catches it). Many independent groups in one release each give
one sample, so a few releases give tens of thousands of samples in well under a second.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import opendp.prelude as opendp
import pyarrow as pa
import pytest

from datafactor.sandbox import dp
from datafactor.sandbox.domain import Aggregate, Plan
from datafactor.sandbox.errors import QueryRefused

Z = 5.5  # standard errors of tolerance in the stochastic checks (see the module docstring)


def make_plan(
    *aggregates: Aggregate,
    keys: tuple[str, ...] = ("region",),
    columns: tuple[str, ...] | None = None,
    rows_per_unit: int = 1,
    groups_per_unit: int = 1,
    order_by: tuple[tuple[str, bool], ...] = (),
    limit: int | None = None,
) -> Plan:
    return Plan(
        sql="SELECT …",
        tables=("households",),
        columns=columns or (*keys, *(a.name for a in aggregates)),
        group_keys=keys,
        aggregates=aggregates,
        staged_sql="SELECT …",
        max_rows_per_unit=rows_per_unit,
        max_groups_per_unit=groups_per_unit,
        order_by=order_by,
        limit=limit,
    )


COUNT = Aggregate("n", "count")
AVG = Aggregate("avg_kwh", "avg", "kwh", 0.0, 500.0)
SUM = Aggregate("total_kwh", "sum", "kwh", -50.0, 100.0)


def table(**columns: Sequence[Any]) -> pa.Table:
    return pa.table({name: list(values) for name, values in columns.items()})


# --- k without differential privacy --------------------------------------------------------------


def test_groups_under_k_are_dropped_and_averages_computed() -> None:
    plan = make_plan(COUNT, AVG, columns=("avg_kwh", "region", "n"))
    staged = table(
        region=["north", "south", "east"],
        __units=[9, 10, 250],
        n__count=[9, 10, 250],
        avg_kwh__sum=[900.0, 1500.0, 50_000.0],
        avg_kwh__count=[9, 10, 250],
    )
    released = dp.release(plan, staged, k=10, epsilon=None)
    assert released.columns == ("avg_kwh", "region", "n")
    assert released.rows == ((200.0, "east", 250), (150.0, "south", 10))  # by group key
    assert released.epsilon_spent == 0
    assert released.noise == "none"
    assert [n.rule for n in released.notes] == ["SBX-OUT-K"]


def test_how_many_groups_were_suppressed_is_never_told() -> None:
    plan = make_plan(COUNT)
    big: dict[str, list[Any]] = {"region": ["a", "b"], "__units": [40, 50], "n__count": [40, 50]}
    none_hidden = dp.release(plan, table(**big), k=10, epsilon=None)
    small: dict[str, list[Any]] = {
        "region": [f"s{i}" for i in range(7)],
        "__units": [1] * 7,
        "n__count": [3] * 7,
    }
    seven_hidden = dp.release(
        plan, table(**{c: big[c] + small[c] for c in big}), k=10, epsilon=None
    )
    assert seven_hidden == none_hidden  # rows, notes and all: nothing tells the two apart
    text = " ".join(n.en + n.zh for n in seven_hidden.notes)
    assert "7" not in text
    assert "10" in text  # k itself is public


def test_order_by_and_limit_apply_after_suppression() -> None:
    plan = make_plan(COUNT, AVG, order_by=(("n", True),), limit=2)
    staged = table(
        region=["tiny", "b", "c", "d"],
        __units=[3, 50, 40, 60],
        n__count=[900, 50, 40, 60],  # the suppressed group has the largest count
        avg_kwh__sum=[1.0, 100.0, 80.0, 0.0],
        avg_kwh__count=[1, 50, 40, 0],
    )
    released = dp.release(plan, staged, k=10, epsilon=None)
    assert released.rows == (("d", 60, None), ("b", 50, 2.0))

    by_average = make_plan(COUNT, AVG, order_by=(("avg_kwh", True),))
    rows = dp.release(by_average, staged, k=10, epsilon=None).rows
    assert [r[0] for r in rows] == ["b", "c", "d"]  # an empty average (NULL) sorts last


def test_results_are_capped_in_size() -> None:
    cap = dp.output_values().max_result_rows
    groups = cap + 1
    staged = table(region=range(groups), __units=[20] * groups, n__count=[20] * groups)
    released = dp.release(make_plan(COUNT), staged, k=10, epsilon=None)
    assert len(released.rows) == cap
    assert "SBX-OUT-SIZE" in [n.rule for n in released.notes]


# --- what a query costs -------------------------------------------------------------------------


def test_a_query_is_charged_its_epsilon_split_over_its_measurements() -> None:
    assert dp.query_cost(make_plan(COUNT, AVG), None) == 0
    assert dp.query_cost(make_plan(COUNT, AVG), 0.5) == 0.5

    counted = dp.calibrate(make_plan(COUNT), 0.6, k=10)
    assert [n.part for n in counted.noises] == ["__units", "n__count"]
    assert [n.epsilon for n in counted.noises] == pytest.approx([0.3, 0.3])

    # An average is two measurements, its sum and its count: each gets less ε, more noise.
    averaged = dp.calibrate(make_plan(AVG), 0.6, k=10)
    assert [n.part for n in averaged.noises] == ["__units", "avg_kwh__sum", "avg_kwh__count"]
    assert [n.epsilon for n in averaged.noises] == pytest.approx([0.2, 0.2, 0.2])
    assert sum(n.epsilon for n in averaged.noises) == pytest.approx(0.6)
    assert averaged.noise("avg_kwh__count").scale > counted.noise("n__count").scale
    with pytest.raises(ValueError, match="positive"):
        dp.query_cost(make_plan(COUNT), 0.0)


def test_noise_is_calibrated_to_the_contribution_bounds() -> None:
    plan = make_plan(COUNT, SUM, rows_per_unit=2, groups_per_unit=3)
    calibration = dp.calibrate(plan, 0.9, k=10)
    share = 0.3
    assert calibration.noise("__units").sensitivity == 3  # G
    assert calibration.noise("n__count").sensitivity == 6  # L·G
    assert calibration.noise("total_kwh__sum").sensitivity == 600  # L·G·max(|-50|, |100|)
    for noise in calibration.noises:
        assert noise.scale == pytest.approx(noise.sensitivity / share, rel=1e-9)
    # The threshold is k plus a margin, and rises with the δ it has to meet.
    assert calibration.threshold >= 10 + calibration.noise("__units").scale
    assert calibration.delta == pytest.approx(0.9 * dp.output_values().dp_delta_per_epsilon)


# --- the budget ---------------------------------------------------------------------------------


def test_charge_takes_the_default_or_the_requested_epsilon() -> None:
    assert dp.charge(None, default=0.5, cap=1.0, left_micro=10_000_000) == 500_000
    assert dp.charge(0.25, default=0.5, cap=1.0, left_micro=10_000_000) == 250_000
    assert dp.charge(1.0, default=0.5, cap=1.0, left_micro=1_000_000) == 1_000_000  # all left
    assert dp.charge(None, default=0.5, cap=0.3, left_micro=10_000_000) == 300_000  # a lower cap
    assert dp.from_micro(dp.to_micro(0.123456)) == 0.123456


def refusal(requested: float | None, *, cap: float = 1.0, left_micro: int = 10**7) -> Any:
    with pytest.raises(QueryRefused) as caught:
        dp.charge(requested, default=0.5, cap=cap, left_micro=left_micro)
    (reason,) = caught.value.reasons
    assert reason.en and reason.zh
    return reason


def test_an_epsilon_over_the_per_query_cap_is_refused_with_the_cap() -> None:
    reason = refusal(1.5, cap=1.0)
    assert reason.rule == "SBX-BUD-CAP"
    assert "1.5" in reason.en and "at most 1" in reason.en
    assert "不超过 1" in reason.zh


@pytest.mark.parametrize("bad", [0.0, -0.1, math.nan, math.inf, 1e-9])
def test_an_epsilon_that_is_not_a_positive_number_is_refused(bad: float) -> None:
    reason = refusal(bad)
    assert reason.rule == "SBX-BUD-CAP"
    assert "positive" in reason.en


def test_a_query_over_the_budget_left_is_refused_with_what_is_left() -> None:
    reason = refusal(0.5, left_micro=200_000)
    assert reason.rule == "SBX-BUD-TOTAL"
    assert "0.2 is left" in reason.en and "0.2" in reason.zh
    spent = refusal(0.5, left_micro=0)
    assert spent.rule == "SBX-BUD-TOTAL"
    assert "spent" in spent.en and "用尽" in spent.zh


# --- releases with differential privacy ----------------------------------------------------------


def test_noisy_release_shape() -> None:
    plan = make_plan(COUNT, AVG, SUM)
    staged = table(
        region=["a", "b"],
        __units=[100_000, 100_000],
        n__count=[0, 100_000],
        avg_kwh__sum=[100.0, 1_000_000.0],
        avg_kwh__count=[1, 100_000],
        total_kwh__sum=[5.0, -3.0],
    )
    for _ in range(20):
        released = dp.release(plan, staged, k=10, epsilon=0.5)
        assert released.epsilon_spent == 0.5
        assert released.noise == "mixed"
        assert [r[0] for r in released.rows] == ["a", "b"]
        for _region, n, average, total in released.rows:
            assert isinstance(n, int) and n >= 0  # rounded, never negative
            assert 0.0 <= average <= 500.0  # clamped to the measure's bounds
            assert isinstance(total, float)
        assert {n.rule for n in released.notes} == {"SBX-OUT-K", "SBX-OUT-DP"}
    assert dp.release(make_plan(COUNT), staged, k=10, epsilon=0.5).noise == "geometric"
    assert dp.release(make_plan(SUM), staged, k=10, epsilon=0.5).noise == "laplace"


def test_noisy_order_by_and_limit_apply_to_the_noisy_values() -> None:
    plan = make_plan(COUNT, order_by=(("n", True),), limit=3)
    sizes = [10_000, 10_010, 10_020, 10_030, 10_040]
    staged = table(region=list("abcde"), __units=sizes, n__count=sizes)
    for _ in range(10):
        rows = dp.release(plan, staged, k=10, epsilon=1.0).rows
        assert len(rows) == 3
        assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)


def test_noisy_k_never_shows_a_group_under_k_and_keeps_its_count_private() -> None:
    plan = make_plan(COUNT)
    threshold = dp.calibrate(plan, 1.0, k=10).threshold
    staged = table(
        region=["under_k", "at_threshold_plus", "big"],
        __units=[9, threshold + 200, 100_000],
        n__count=[9, threshold + 200, 100_000],
    )
    notes = set()
    for _ in range(200):
        released = dp.release(plan, staged, k=10, epsilon=1.0)
        assert [r[0] for r in released.rows] == ["at_threshold_plus", "big"]
        notes.add(released.notes)
    hidden = dp.release(
        plan, table(region=["big"], __units=[10**5], n__count=[10**5]), k=10, epsilon=1.0
    )
    assert notes == {hidden.notes}  # the notes do not depend on what was hidden


# --- stochastic checks of the stated ε ------------------------------------------------------------

Sample = tuple[float, ...]


def dp_violations(
    first: Sequence[Sample],
    second: Sequence[Sample],
    sets: Sequence[Callable[[Sample], bool]],
    epsilon: float,
    delta: float = 0.0,
) -> list[str]:
    """The sets S for which P̂[M(D)∈S] > e^ε·P̂[M(D')∈S] + δ + tolerance, either way round; the
    tolerance is Z standard errors of the estimated difference (a floor of one sample's weight
    keeps it honest for rare sets)."""
    out = []
    bound = math.exp(epsilon)
    for number, contains in enumerate(sets):
        p = sum(map(contains, first)) / len(first)
        q = sum(map(contains, second)) / len(second)
        for a, b, na, nb in ((p, q, len(first), len(second)), (q, p, len(second), len(first))):
            variance = max(a * (1 - a), 1 / na) / na + bound**2 * max(b * (1 - b), 1 / nb) / nb
            if a > bound * b + delta + Z * math.sqrt(variance):
                out.append(f"set {number}: {a:.4f} > e^{epsilon:.3f}·{b:.4f}")
    return out


def tails(
    centre: float, offsets: Sequence[float], index: int = 0
) -> list[Callable[[Sample], bool]]:
    """Sets {x ≤ centre + o} and {x ≥ centre + o} on one coordinate: the Laplace bound is tight
    on the lower tails below the shift."""
    sets: list[Callable[[Sample], bool]] = []
    for offset in offsets:
        sets.append(functools.partial(at_most, index, centre + offset))
        sets.append(functools.partial(at_least, index, centre + offset))
    return sets


def at_most(index: int, bound: float, sample: Sample) -> bool:
    return sample[index] <= bound


def at_least(index: int, bound: float, sample: Sample) -> bool:
    return sample[index] >= bound


def both_at_most(first: float, second: float, sample: Sample) -> bool:
    return sample[0] <= first and sample[1] <= second


Pick = Callable[[Sequence[tuple[Any, ...]]], list[Sample]]


def runs(plan: Plan, staged: pa.Table, epsilon: float, times: int, pick: Pick) -> list[Sample]:
    samples: list[Sample] = []
    for _ in range(times):
        released = dp.release(plan, staged, k=10, epsilon=epsilon)
        samples += pick(released.rows)
    return samples


def assert_variance(noise: Sequence[float], expected: float) -> None:
    """The noise's mean is 0 and its variance is the calibrated one, within Z standard errors."""
    n = len(noise)
    squares = [x * x for x in noise]
    mean_square = sum(squares) / n
    spread = math.sqrt(sum((s - mean_square) ** 2 for s in squares) / (n - 1))
    assert abs(sum(noise) / n) <= Z * math.sqrt(expected / n)
    assert abs(mean_square - expected) <= Z * spread / math.sqrt(n), (mean_square, expected)


def discrete_laplace_variance(scale: float) -> float:
    alpha = math.exp(-1 / scale)
    return 2 * alpha / (1 - alpha) ** 2


GROUPS = 4000  # per release; 5 releases per table give 20 000 samples
BIG = 100_000  # units per group: far over any threshold, so every group is shown


def test_count_mechanism_meets_its_epsilon() -> None:
    plan = make_plan(COUNT)
    noise = dp.calibrate(plan, 1.0, k=10).noise("n__count")
    stated = 1.0 / 2  # the query's ε over its two measurements (units, count)
    region = list(range(GROUPS))
    d = table(region=region, __units=[BIG] * GROUPS, n__count=[BIG] * GROUPS)
    # D': one more unit in every group (each group's output is that of its own neighbour).
    d2 = table(region=region, __units=[BIG + 1] * GROUPS, n__count=[BIG + 1] * GROUPS)
    first = runs(plan, d, 1.0, 5, lambda rows: [(r[1],) for r in rows])
    second = runs(plan, d2, 1.0, 5, lambda rows: [(r[1],) for r in rows])
    sets = tails(BIG, [-6, -3, -1, 0, 1, 2, 4, 7])
    assert dp_violations(first, second, sets, stated) == []
    assert_variance([s[0] - BIG for s in first], discrete_laplace_variance(1 / stated))

    # Negative control: the same check catches OpenDP's Laplace at half the calibrated scale.
    half = opendp.m.make_laplace(
        opendp.vector_domain(opendp.atom_domain(T="i64")),
        opendp.l1_distance(T="i64"),
        scale=noise.scale / 2,
    )
    loud = [(float(x),) for x in half([BIG] * len(first))]
    loud2 = [(float(x),) for x in half([BIG + 1] * len(first))]
    assert dp_violations(loud, loud2, sets, stated) != []


def test_histogram_mechanism_meets_its_epsilon() -> None:
    # Each unit adds up to L = 2 rows to each of G = 2 groups: a pair of cells moves by 2 each.
    plan = make_plan(COUNT, rows_per_unit=2, groups_per_unit=2)
    stated = 1.0 / 2
    region = list(range(GROUPS))
    d = table(region=region, __units=[BIG] * GROUPS, n__count=[BIG] * GROUPS)
    d2 = table(region=region, __units=[BIG + 1] * GROUPS, n__count=[BIG + 2] * GROUPS)

    def pairs(rows: Sequence[tuple[Any, ...]]) -> list[Sample]:
        counts = [r[1] for r in rows]
        return list(zip(counts[0::2], counts[1::2], strict=True))

    first, second = runs(plan, d, 1.0, 5, pairs), runs(plan, d2, 1.0, 5, pairs)
    sets: list[Callable[[Sample], bool]] = [
        functools.partial(both_at_most, BIG + a, BIG + b)
        for a in (-4, -1, 0, 2)
        for b in (-3, 0, 1, 3)
    ]
    sets += [lambda s: s[0] + s[1] >= 2 * BIG + 2, lambda s: s[0] - s[1] >= 2]
    assert dp_violations(first, second, sets, stated) == []
    assert_variance([s[0] - BIG for s in first], discrete_laplace_variance(4 / stated))


def test_sum_mechanism_meets_its_epsilon() -> None:
    plan = make_plan(SUM)  # bounds [-50, 100]: one unit moves a sum by up to 100
    stated = 1.0 / 2
    region = list(range(GROUPS))
    d = table(region=region, __units=[BIG] * GROUPS, total_kwh__sum=[0.0] * GROUPS)
    d2 = table(region=region, __units=[BIG + 1] * GROUPS, total_kwh__sum=[100.0] * GROUPS)
    first = runs(plan, d, 1.0, 5, lambda rows: [(r[1],) for r in rows])
    second = runs(plan, d2, 1.0, 5, lambda rows: [(r[1],) for r in rows])
    sets = tails(0.0, [-600, -300, -100, 0, 50, 100, 200, 400, 700])
    assert dp_violations(first, second, sets, stated) == []
    assert_variance([s[0] for s in first], 2 * (100 / stated) ** 2)


def test_group_threshold_meets_its_epsilon() -> None:
    # Whether a group is shown: units at the threshold against one unit fewer.
    plan = make_plan(COUNT)
    calibration = dp.calibrate(plan, 1.0, k=10)
    stated, t = 1.0 / 2, calibration.threshold
    region = list(range(GROUPS))
    d = table(region=region, __units=[t] * GROUPS, n__count=[t] * GROUPS)
    d2 = table(region=region, __units=[t - 1] * GROUPS, n__count=[t - 1] * GROUPS)

    def shown(rows: Sequence[tuple[Any, ...]]) -> list[Sample]:
        present = {r[0] for r in rows}
        return [(float(g in present),) for g in region]

    first, second = runs(plan, d, 1.0, 5, shown), runs(plan, d2, 1.0, 5, shown)
    sets = [lambda s: s[0] == 1.0, lambda s: s[0] == 0.0]
    assert dp_violations(first, second, sets, stated, calibration.delta) == []
    rate = sum(s[0] for s in first) / len(first)
    assert 0.4 < rate < 0.7  # a group right at the threshold is shown about half the time
